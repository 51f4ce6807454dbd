"""TUF's fast-forward attack against the online half, with the in-memory server double.

Whoever holds the server-managed timestamp (or snapshot) key can serve a validly signed
version far ahead of the honest one. The online half cannot tell it from an honest one,
so it records it as its rollback floor and then refuses every honest version. The way
out is TUF's (spec 5.3.11): a new root that rotates the timestamp keys voids the
timestamp floor; one that rotates the snapshot keys voids the snapshot and timestamp
floors. A root that rotates neither keeps them.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ceremony.core.errors import VerificationFailed
from ceremony.core.gotime import GoTime
from ceremony.core.metadata import Envelope, Key, RoleKeys, Root
from ceremony.core.verify import parse_role_file
from ceremony.signing.signer import KeySigner
from online.home import Home
from online.operations import export_request, repository_status, stage_init
from tests.online.test_operations_double import GUN, Keyholder, add, ceremony
from tests.server_double import ServerDouble

AHEAD = 10**9


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def server(now: datetime) -> ServerDouble:
    return ServerDouble(now=now)


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "online")


@pytest.fixture
def holder(home: Home, server: ServerDouble, now: datetime) -> Keyholder:
    keyholder = Keyholder(now)
    stage_init(home, server, GUN, keyholder.public_keys())
    add(home, "a")
    ceremony(home, server, keyholder, now)
    return keyholder


def served_version(server: ServerDouble, role: str) -> int:
    data = server.repos[GUN].current(role)
    assert data is not None
    version: int = parse_role_file(data, role).body.version
    return version


def publish_root(server: ServerDouble, holder: Keyholder, **server_keys: Key) -> None:
    """Publish root v+1 signed by the root key: `server_keys` (role -> new key) replace the
    snapshot/timestamp keys; with none, only the expiry changes."""
    old: Root = parse_role_file(server.repos[GUN].current("root") or b"", "root").body
    keys = dict(old.keys)
    roles = dict(old.roles)
    for role, key in server_keys.items():
        for kid in roles[role].keyids:
            keys.pop(kid)
        keys[key.key_id] = key
        roles[role] = RoleKeys((key.key_id,), 1)
    expires = GoTime.from_datetime(holder.now + timedelta(days=3650 + old.version))
    body = replace(old, version=old.version + 1, keys=keys, roles=roles, expires=expires)
    envelope: Envelope[Root] = Envelope.create(body)
    (root_kid,) = old.roles["root"].keyids
    signature = KeySigner(holder.root, old.keys[root_kid]).sign(envelope.signed_bytes)
    server.publish(GUN, {"root": envelope.with_signatures((signature,)).to_bytes()})


def fast_forwarded(home: Home, server: ServerDouble, now: datetime, role: str) -> None:
    """The server fast-forwards `role`, the online half records it, then honest versions
    come back and are refused as a rollback."""
    server.fast_forward(GUN, role, AHEAD)
    status = repository_status(home, server, GUN, now)
    # Validly signed by the server's own key: nothing tells it from an honest version.
    assert status.server_problem is None
    assert home.repository(GUN).versions()[role] == AHEAD
    server.lies.clear()
    status = repository_status(home, server, GUN, now)
    assert isinstance(status.server_problem, VerificationFailed)
    assert "rollback" in status.server_problem.message


def test_a_fast_forwarded_timestamp_is_accepted_and_then_locks_out_honest_versions(
    home: Home, server: ServerDouble, holder: Keyholder, now: datetime
) -> None:
    """The fast-forwarded timestamp is validly signed by the server-managed key, so status
    accepts it; from then on honest versions are a rollback, refused in one sentence, and
    nothing staged is lost."""
    fast_forwarded(home, server, now, "timestamp")
    add(home, "b")
    with pytest.raises(VerificationFailed, match="rollback") as refused:
        export_request(home, server, GUN, now)
    assert refused.value.exit_code == 1
    message = refused.value.message
    assert message.endswith(".") and "\n" not in message and message.count(". ") == 0
    repo = home.repository(GUN)
    assert [s.change.name for s in repo.staged()] == ["b"]  # type: ignore[union-attr]
    assert repo.versions()["timestamp"] == AHEAD


def test_a_root_rotating_the_timestamp_key_replaces_the_timestamp_floor(
    home: Home, server: ServerDouble, holder: Keyholder, now: datetime
) -> None:
    fast_forwarded(home, server, now, "timestamp")
    add(home, "b")
    publish_root(server, holder, timestamp=server.rotate_server_key(GUN, "timestamp"))
    status = repository_status(home, server, GUN, now)
    assert status.server_problem is None
    versions = home.repository(GUN).versions()
    assert versions["timestamp"] == served_version(server, "timestamp") < AHEAD
    assert versions["root"] == 2
    export_request(home, server, GUN, now)  # the staged change can go to a ceremony again


def test_a_root_rotating_the_snapshot_key_replaces_the_snapshot_and_timestamp_floors(
    home: Home, server: ServerDouble, holder: Keyholder, now: datetime
) -> None:
    fast_forwarded(home, server, now, "snapshot")
    assert home.repository(GUN).versions()["timestamp"] == AHEAD
    publish_root(server, holder, snapshot=server.rotate_server_key(GUN, "snapshot"))
    status = repository_status(home, server, GUN, now)
    assert status.server_problem is None
    versions = home.repository(GUN).versions()
    assert versions["snapshot"] == served_version(server, "snapshot") < AHEAD
    assert versions["timestamp"] == served_version(server, "timestamp") < AHEAD


@pytest.mark.parametrize("rotated", [None, "timestamp"])
def test_a_root_that_keeps_the_snapshot_key_does_not_reset_its_floor(
    home: Home, server: ServerDouble, holder: Keyholder, now: datetime, rotated: str | None
) -> None:
    """The attack cannot be laundered through a root change that leaves the fast-forwarded
    role's keys alone (a new expiry, or new keys for another role)."""
    fast_forwarded(home, server, now, "snapshot")
    if rotated is None:
        publish_root(server, holder)
    else:
        publish_root(server, holder, **{rotated: server.rotate_server_key(GUN, rotated)})
    status = repository_status(home, server, GUN, now)
    assert isinstance(status.server_problem, VerificationFailed)
    assert "rollback" in status.server_problem.message
    assert home.repository(GUN).versions()["snapshot"] == AHEAD


def test_a_root_that_keeps_the_timestamp_key_does_not_reset_its_floor(
    home: Home, server: ServerDouble, holder: Keyholder, now: datetime
) -> None:
    """The attack cannot be laundered through an unrelated root change (here a new expiry)."""
    fast_forwarded(home, server, now, "timestamp")
    publish_root(server, holder)
    status = repository_status(home, server, GUN, now)
    assert isinstance(status.server_problem, VerificationFailed)
    assert "rollback" in status.server_problem.message
    versions = home.repository(GUN).versions()
    assert versions["timestamp"] == AHEAD
    assert versions["root"] == 1  # nothing of the refused fetch was recorded
