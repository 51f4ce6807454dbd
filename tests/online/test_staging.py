"""The online home (staging, requests, signatures, trust anchor) and the pure flow decisions."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ceremony.core.changes import (
    AddTarget,
    InitRepository,
    RemoveDelegation,
    SetDelegation,
    SetExpiry,
    touched_roles,
)
from ceremony.core.documents import BaseFile, Request, SignaturesDocument
from ceremony.core.errors import EnvironmentFailure, InputRejected
from ceremony.core.gotime import GoTime
from ceremony.core.metadata import FileMeta
from ceremony.core.verify import parse_role_file
from online.flow import build_request, moved_since_export, with_default_expiries
from online.home import Home, RequestRecord
from tests.notary_env import NotaryServer
from tests.online.signer_util import Online, plain_key, root_key, sign_request

NOW = datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def _add(name: str, role: str = "targets") -> AddTarget:
    return AddTarget(role, name, FileMeta(1, {"sha256": hashlib.sha256(name.encode()).digest()}))


def _init(gun: str) -> InitRepository:
    return InitRepository(
        (root_key(gun).key,),
        1,
        (plain_key("targets").key,),
        1,
        plain_key("snapshot").key,
        plain_key("timestamp").key,
    )


def test_staged_changes_keep_their_ids_and_order(tmp_path: Path) -> None:
    repo = Home(tmp_path).repository("example.com/a/b")
    first = repo.stage([_add("a"), _add("b")])
    second = repo.stage([_add("c")])
    assert [s.id for s in (*first, *second)] == [1, 2, 3]
    assert repo.unstage([1, 3]) == 2
    fourth = repo.stage([_add("d")])
    assert [(s.id, s.change.name) for s in repo.staged()] == [(2, "b"), (4, "d")]  # type: ignore[union-attr]
    assert fourth[0].id == 4  # ids are never reused
    assert [p.name for p in repo.path.iterdir() if not p.name.startswith(".")] == ["staged.json"]
    assert Home(tmp_path).guns() == ["example.com/a/b"]


def test_concurrent_staging_loses_nothing(tmp_path: Path) -> None:
    home = Home(tmp_path)

    def worker(n: int) -> None:
        for i in range(20):
            home.repository("example.com/c").stage([_add(f"{n}-{i}")])

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    staged = home.repository("example.com/c").staged()
    assert len(staged) == 80 and sorted(s.id for s in staged) == list(range(1, 81))


def test_damaged_home_file_is_an_environment_failure(tmp_path: Path) -> None:
    repo = Home(tmp_path).repository("example.com/d")
    repo.stage([_add("a")])
    (repo.path / "staged.json").write_bytes(b'{"changes": [')
    with pytest.raises(EnvironmentFailure) as caught:
        repo.staged()
    assert "staged.json" in caught.value.message and caught.value.exit_code == 3


def test_unreadable_change_is_refused_before_it_is_staged(tmp_path: Path) -> None:
    repo = Home(tmp_path).repository("example.com/e")
    bad = AddTarget("targets", "x", FileMeta(1, {"sha512": b"\0" * 64}))  # no sha256
    with pytest.raises(InputRejected, match="nothing was staged"):
        repo.stage([_add("ok"), bad])
    assert repo.staged() == ()


def test_default_expiries_cover_every_touched_role() -> None:
    gun = "example.com/f"
    changes = [
        _init(gun),
        SetDelegation("targets/rel", (plain_key("d").key,), 1, ("",)),
        _add("x", "targets/rel"),
        SetExpiry("targets", GoTime.parse("2031-01-01T00:00:00Z")),
    ]
    assert touched_roles(changes) == ["root", "targets", "targets/rel"]
    full = with_default_expiries(changes, NOW)
    added = {c.role: c.expires.format() for c in full[len(changes) :] if isinstance(c, SetExpiry)}
    assert added == {
        "root": "2039-12-31T03:04:05.123456Z",
        "targets/rel": "2033-01-01T03:04:05.123456Z",
    }
    request, plan = build_request(gun=gun, files=None, changes=changes, now=NOW, nonce="0" * 32)
    assert set(plan.roles) == {"root", "targets", "targets/rel"}
    assert plan.roles["targets"].body.expires.format() == "2031-01-01T00:00:00Z"
    assert request.created == "2030-01-02T03:04:05.123456Z" and request.base == ()
    assert touched_roles([RemoveDelegation("targets/a/b")]) == ["targets/a"]


def test_moved_since_export_names_the_role_and_version() -> None:
    base = BaseFile("targets", 3, "a" * 64, "b" * 64, (), None)
    request = Request("1" * 32, "2" * 32, "g", "2030-01-01T00:00:00Z", (base,), (_add("x"),), ())
    served = b'{"signed":{"_type":"Targets","delegations":{"keys":{},"roles":[]},"expires":"2031-01-01T00:00:00Z","targets":{},"version":7},"signatures":[]}'
    parsed = parse_role_file(served, "targets")
    assert moved_since_export(request, {"targets": parsed}) == ["targets is now v7"]
    assert moved_since_export(request, None) == ["targets is no longer served"]


def test_home_keeps_the_full_request_and_each_signatures_document_once(
    notary_server: NotaryServer, new_gun: Callable[[], str], tmp_path: Path
) -> None:
    online = Online(tmp_path / "home", notary_server.url, notary_server.ca)
    gun = new_gun()
    root, targets = root_key(gun), plain_key("targets")
    online.create(gun, tmp_path, root, targets)
    online.ok("add", gun, "t", "--sha256", "12" * 32, "--length", "2")
    thin = tmp_path / "thin.request.json"
    online.ok("export", gun, "--out", str(thin), "--thin")
    exported = Request.from_bytes(thin.read_bytes())
    assert exported.thin

    repo = Home(online.home).repository(gun)
    (record,) = [r for r in repo.records() if r.published is None]
    assert isinstance(record, RequestRecord) and record.thin and record.id == exported.id
    kept = repo.load_request(record.id)
    assert not kept.thin and kept.digest == exported.digest  # same request, full form
    assert [b.version for b in kept.base if b.role == "root"] == [1]

    doc = SignaturesDocument.from_bytes(sign_request(kept.to_bytes(), [targets]))
    assert repo.save_signatures(doc) is True
    assert repo.save_signatures(doc) is False
    assert len(repo.signatures(record.id)) == 1

    anchor = repo.anchor()
    assert anchor is not None and anchor.body.version == 1
    assert repo.versions()["targets"] == 1 and repo.versions()["timestamp"] >= 1
