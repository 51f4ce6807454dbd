"""The online operations against the in-memory server double: no socket, any fault.

Signatures are made by the real offline code (`review_request`, `sign_review`) with keys
held in memory, so what is published here is what a ceremony would publish. The real
notary-server tests stay the proof of compatibility; these add the staleness, conflict,
partial-failure, rollback and lying-server cases a real server cannot be made to produce.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ceremony.core.changes import AddTarget
from ceremony.core.documents import PublicKeyEntry, PublicKeysDocument, Request
from ceremony.core.errors import EnvironmentFailure, InputRejected, VerificationFailed
from ceremony.core.gotime import GoTime
from ceremony.core.keys import canonical_key_id
from ceremony.core.metadata import FileMeta, Key
from ceremony.offline.review import (
    Acknowledgements,
    keys_to_sign,
    record_signing,
    review_request,
    sign_review,
)
from ceremony.offline.trust import TrustState
from ceremony.signing.certificates import make_root_certificate
from ceremony.signing.private import PrivateKey
from ceremony.signing.signer import KeySigner
from online.home import Home
from online.operations import export_request, publish_documents, repository_status, stage_init
from tests.server_double import ServerDouble

GUN = "example.com/double/app"


@dataclass
class Keyholder:
    """An offline machine in memory: a root and a targets key, and its trust state."""

    now: datetime
    root: PrivateKey = field(default_factory=PrivateKey.generate_ecdsa)
    targets: PrivateKey = field(default_factory=PrivateKey.generate_ecdsa)
    state: TrustState | None = None

    def __post_init__(self) -> None:
        self.certificate = make_root_certificate(self.root, GUN, self.now)

    def public_keys(self) -> PublicKeysDocument:
        return PublicKeysDocument(
            GUN,
            (
                PublicKeyEntry("root", self.root.canonical_id, self.certificate),
                PublicKeyEntry("targets", self.targets.canonical_id, self.targets.public_key()),
            ),
        )

    def _private(self, key: Key) -> PrivateKey | None:
        cid = canonical_key_id(key)
        return next((k for k in (self.root, self.targets) if k.canonical_id == cid), None)

    def holder(self, key: Key) -> str | None:
        private = self._private(key)
        return None if private is None else ("root" if private is self.root else "targets")

    def sign(self, request: Request) -> bytes:
        result = review_request(request, self.state, lambda _d: None, self.now, holder=self.holder)
        keys = keys_to_sign(result, again=False)

        def signer_for(key: Key) -> KeySigner | None:
            private = self._private(key)
            return None if private is None else KeySigner(private, key)

        given = Acknowledgements(  # a keyholder who checked everything against the record
            keys=tuple(n.names[0] for n in result.needed if n.kind == "key"),
            roles=tuple(n.names[0] for n in result.needed if n.kind == "role"),
            abandoned=tuple(n.names[0] for n in result.needed if n.kind == "abandon"),
        )
        outcome = sign_review(
            result, signer_for, keys, given, GoTime.from_datetime(self.now).format()
        )
        self.state = record_signing(self.state, outcome.state)
        return outcome.document.to_bytes()


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def server(now: datetime) -> ServerDouble:
    return ServerDouble(now=now)


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "online")


def add(home: Home, name: str) -> None:
    home.repository(GUN).stage([AddTarget("targets", name, FileMeta.for_bytes(name.encode()))])


def ceremony(home: Home, server: ServerDouble, holder: Keyholder, now: datetime) -> Request:
    request = export_request(home, server, GUN, now)
    publish_documents(home, server, [holder.sign(request)], now)
    return request


@pytest.fixture
def published(home: Home, server: ServerDouble, now: datetime) -> Keyholder:
    holder = Keyholder(now)
    stage_init(home, server, GUN, holder.public_keys())
    add(home, "a")
    ceremony(home, server, holder, now)
    return holder


def test_a_whole_ceremony_against_the_double(
    home: Home, server: ServerDouble, published: Keyholder, now: datetime
) -> None:
    status = repository_status(home, server, GUN, now)
    assert status.published is not None and status.server_problem is None
    assert {r.role: r.version for r in status.published} == {
        "root": 1,
        "targets": 1,
        "snapshot": 1,
        "timestamp": 1,
    }
    assert status.staged == ()
    add(home, "b")
    ceremony(home, server, published, now)
    assert [sorted(f) for _, f in server.uploads] == [["root", "targets"], ["targets"]]


def test_publish_refuses_when_the_server_moved_and_keeps_everything(
    tmp_path: Path, home: Home, server: ServerDouble, published: Keyholder, now: datetime
) -> None:
    add(home, "b")
    mine = export_request(home, server, GUN, now)
    signatures = published.sign(mine)
    # A second online machine and a second keyholder's machine (same keys) publish first.
    other = Home(tmp_path / "other-online")
    add(other, "c")
    ceremony(other, server, Keyholder(now, published.root, published.targets), now)
    with pytest.raises(VerificationFailed, match="moved since request"):
        publish_documents(home, server, [signatures], now)
    repo = home.repository(GUN)
    assert [s.change.name for s in repo.staged()] == ["b"]  # type: ignore[union-attr]
    assert len(repo.signatures(mine.id)) == 1
    # Re-exported, the same staged change makes a new request on the new base.
    again = export_request(home, server, GUN, now)
    assert again.id != mine.id
    assert (repo.record(mine.id).cancelled or "").startswith(f"superseded by {again.id}")


@pytest.mark.parametrize("after_storing", [False, True])
def test_a_failed_upload_loses_nothing_and_the_rerun_finishes(
    home: Home, server: ServerDouble, published: Keyholder, now: datetime, after_storing: bool
) -> None:
    add(home, "b")
    request = export_request(home, server, GUN, now)
    signatures = published.sign(request)
    server.fail_next_publish = (EnvironmentFailure("The double went away."), after_storing)
    with pytest.raises(EnvironmentFailure):
        publish_documents(home, server, [signatures], now)
    repo = home.repository(GUN)
    assert repo.record(request.id).published is None
    assert [s.change.name for s in repo.staged()] == ["b"]  # type: ignore[union-attr]
    assert len(repo.signatures(request.id)) == 1
    (result,) = publish_documents(home, server, [signatures], now)
    assert result.versions == {"targets": 2} and repo.staged() == ()
    assert len(server.uploads) == 2 + (0 if after_storing else 1)  # no second upload if stored


def test_the_server_serving_an_older_repository_is_refused(
    home: Home, server: ServerDouble, published: Keyholder, now: datetime
) -> None:
    add(home, "b")
    ceremony(home, server, published, now)
    server.roll_back(GUN, "targets", 1)
    status = repository_status(home, server, GUN, now)
    assert isinstance(status.server_problem, VerificationFailed)
    assert "rollback" in status.server_problem.message
    add(home, "c")
    with pytest.raises(VerificationFailed, match="rollback"):
        export_request(home, server, GUN, now)


def test_a_file_that_is_not_what_the_snapshot_records_is_refused(
    tmp_path: Path, home: Home, server: ServerDouble, published: Keyholder, now: datetime
) -> None:
    files = server.repos[GUN].files
    sha = hashlib.sha256(files["targets"][-1]).hexdigest()
    server.lie(GUN, f"targets.{sha}.json", files["root"][-1])
    status = repository_status(home, server, GUN, now)
    assert status.server_problem is None  # its cache holds the file the snapshot names
    other = Home(tmp_path / "other-online")  # a machine that must download it
    status = repository_status(other, server, GUN, now)
    assert isinstance(status.server_problem, InputRejected)


def test_an_expired_timestamp_is_re_signed_and_a_frozen_one_is_reported(
    home: Home, server: ServerDouble, published: Keyholder, now: datetime
) -> None:
    old_timestamp = server.repos[GUN].current("timestamp")
    assert old_timestamp is not None
    later = now + timedelta(days=20)
    server.now = later
    status = repository_status(home, server, GUN, later)
    assert status.server_problem is None and not status.warnings  # re-signed on request
    server.lie(GUN, "timestamp.json", old_timestamp)  # a server stuck on the old one
    stuck = repository_status(home, server, GUN, later)
    assert stuck.server_problem is not None or any("expired" in w for w in stuck.warnings)
