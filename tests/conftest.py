"""Session fixtures: one real notary-server for the whole run, fresh client trust dirs."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.notary_env import NotaryCli, NotaryServer, start_server

_counter = itertools.count()


@pytest.fixture(scope="session")
def notary_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NotaryServer]:
    server = start_server(tmp_path_factory.mktemp("notary-server"))
    yield server
    server.stop()


@pytest.fixture
def notary_cli(notary_server: NotaryServer, tmp_path: Path) -> NotaryCli:
    return NotaryCli(notary_server, tmp_path / "notary-trust")


@pytest.fixture
def new_gun(request: pytest.FixtureRequest) -> Callable[[], str]:
    """Unique GUNs, so tests sharing one server never collide."""
    base = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:40].strip("-")

    def make() -> str:
        return f"example.com/test/{base}-{next(_counter)}"

    return make
