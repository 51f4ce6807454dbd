"""The production-shaped Notary (PostgreSQL + notary-signer + notary-server) for these tests.

`notary_server` is overridden here: every test in this folder, including the memory-store
tests it re-runs, talks to one shared production stack. Tests that kill processes take a
`dedicated` stack of their own.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from online.localserver import LocalServer
from online.production import ProductionStack, restart, start_production, stop_production
from tests.notary_env import NotaryServer


def stack_dir() -> Path:
    """Under /tmp: PostgreSQL runs as its own user and cannot enter pytest's 0700 folders."""
    return Path(tempfile.mkdtemp(prefix="ceremony-production-", dir="/tmp"))


def as_notary_server(stack: ProductionStack) -> NotaryServer:
    """The stack in the shape the existing tests and `NotaryCli` take."""
    url = f"https://127.0.0.1:{stack.ports['server']}"
    return NotaryServer(LocalServer(url, stack.ca, stack.directory, ()))


@pytest.fixture(scope="session")
def production() -> Iterator[ProductionStack]:
    stack = start_production(stack_dir())
    yield stack
    stop_production(stack)
    shutil.rmtree(stack.directory, ignore_errors=True)


@pytest.fixture(scope="session")
def notary_server(production: ProductionStack) -> NotaryServer:
    return as_notary_server(production)


class Running:
    """A dedicated stack whose processes a test kills (SIGKILL to the whole process group,
    so PostgreSQL's backends die with it, as in a crash) and starts again."""

    def __init__(self) -> None:
        self.stack = start_production(stack_dir())

    def kill(self, name: str) -> None:
        proc = self.stack.processes[name]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def restart(self, name: str) -> None:
        self.stack = restart(self.stack, name)


@pytest.fixture
def dedicated() -> Iterator[Running]:
    running = Running()
    yield running
    stop_production(running.stack)
    shutil.rmtree(running.stack.directory, ignore_errors=True)
