"""The online home's cache of targets files: used only for the exact bytes the freshly
verified snapshot names; a damaged, planted or stale file is downloaded again, never an error.

Against the in-memory server double, which records what is read from it; signatures are
made by the real offline code (`tests/online/test_operations_double.py`'s keyholder).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from online.home import Home
from online.operations import export_request, publish_documents, stage_init
from tests.online.test_operations_double import GUN, Keyholder, add, ceremony
from tests.server_double import ServerDouble


class CountingServer(ServerDouble):
    """The double, noting every file name asked for."""

    def __init__(self, now: datetime) -> None:
        super().__init__(now=now)
        self.asked: list[str] = []

    def get_metadata(self, gun: str, name: str, max_length: int | None = None) -> bytes | None:
        self.asked.append(name)
        return super().get_metadata(gun, name, max_length)

    def targets_reads(self) -> list[str]:
        return [n for n in self.asked if n.startswith("targets.")]


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def server(now: datetime) -> CountingServer:
    return CountingServer(now)


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "online")


@pytest.fixture
def published(home: Home, server: CountingServer, now: datetime) -> Keyholder:
    holder = Keyholder(now)
    stage_init(home, server, GUN, holder.public_keys())
    add(home, "a")
    ceremony(home, server, holder, now)
    return holder


def _served_targets(server: CountingServer) -> bytes:
    data = server.repos[GUN].current("targets")
    assert data is not None
    return data


def _cache_file(home: Home, data: bytes) -> Path:
    return home.repository(GUN).path / "cache" / f"{hashlib.sha256(data).hexdigest()}.json"


def test_publish_keeps_what_it_uploaded_and_export_reads_it_from_the_cache(
    home: Home, server: CountingServer, published: Keyholder, now: datetime
) -> None:
    served = _served_targets(server)
    assert _cache_file(home, served).read_bytes() == served
    server.asked.clear()
    add(home, "b")
    request = export_request(home, server, GUN, now)
    assert server.targets_reads() == []  # the snapshot names the cached bytes: no download
    publish_documents(home, server, [published.sign(request)], now)
    newer = _served_targets(server)
    assert newer != served
    cached = sorted(p.name for p in (home.repository(GUN).path / "cache").iterdir())
    assert cached == [_cache_file(home, newer).name]  # only what the newest snapshot names


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: b"x" * len(data),  # same length, other bytes
        lambda data: data[: len(data) // 2],  # torn
        lambda data: data + b" ",  # longer
        lambda data: b"",
    ],
)
def test_a_damaged_cache_file_is_downloaded_again(
    home: Home, server: CountingServer, published: Keyholder, now: datetime, damage: object
) -> None:
    served = _served_targets(server)
    path = _cache_file(home, served)
    path.write_bytes(damage(served))  # type: ignore[operator]
    server.asked.clear()
    add(home, "b")
    request = export_request(home, server, GUN, now)
    assert len(server.targets_reads()) == 1
    assert path.read_bytes() == served  # repaired
    assert request.base  # and the request is built on what the server serves
    publish_documents(home, server, [published.sign(request)], now)


def test_a_planted_file_never_stands_in_for_what_the_snapshot_names(
    tmp_path: Path, home: Home, server: CountingServer, published: Keyholder, now: datetime
) -> None:
    """Another machine publishes; the cache holds the older targets (valid, signed), even
    under the new file's name: the newer file is downloaded, and the request builds on it."""
    old = _served_targets(server)
    other = Home(tmp_path / "other-online")
    add(other, "c")
    ceremony(other, server, Keyholder(now, published.root, published.targets), now)
    newer = _served_targets(server)
    _cache_file(home, newer).write_bytes(old)
    server.asked.clear()
    add(home, "b")
    request = export_request(home, server, GUN, now)
    assert len(server.targets_reads()) == 1
    base = {b.role: b for b in request.base}
    assert base["targets"].sha256 == hashlib.sha256(newer).hexdigest()
    assert _cache_file(home, newer).read_bytes() == newer
    assert not _cache_file(home, old).exists()
