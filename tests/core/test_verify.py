"""`verify_repository` on real notary repositories and on tampered copies.

`now` always comes from the metadata (the timestamp's expiry minus a day) or
from a fixed date for self-built repositories; the wall clock is never read.

Two constructions, chosen per case:

* Real files (made by the notary client and server). Editing one role's file
  there breaks the hash its parent recorded, so the failure is reported for
  that role by the hash check; signatures, thresholds, the root chain, GUN,
  expiry and rollback are checked directly.
* `OfflineRepo` (`tests.core.repos`): every key, root certificate included, is
  made with `ceremony.core.keys`, so a test can edit one role without its key but
  re-hash and re-sign every parent. Only this isolates the signature check of
  each role, per-role expiry, and a delegation signing outside its paths (the
  real client refuses to sign outside paths, and the real snapshot and
  timestamp are signed by server keys a test cannot hold).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from ceremony.core.errors import MalformedInput, VerificationFailed
from ceremony.core.metadata import FileMeta, Root, parse_any, parse_envelope
from ceremony.core.verify import RepositoryReport, verify_repository
from tests.core import repos
from tests.core.repos import (
    NotaryRepo,
    OfflineRepo,
    assert_one_sentence,
    flip_signature,
    with_signatures,
)
from tests.notary_env import NotaryServer


@pytest.fixture(scope="module")
def repo(notary_server: NotaryServer, tmp_path_factory: pytest.TempPathFactory) -> NotaryRepo:
    return repos.notary_repo(notary_server, tmp_path_factory)


@pytest.fixture(scope="module")
def offline() -> OfflineRepo:
    return OfflineRepo()


def fails(
    files: Mapping[str, bytes],
    gun: str,
    now: datetime,
    role: str,
    fragment: str = "",
    **kw: object,
) -> str:
    """Assert verification fails with one sentence naming `role`; return the message."""
    with pytest.raises(VerificationFailed) as err:
        verify_repository(files, gun, now, **kw)  # type: ignore[arg-type]
    message = err.value.message
    assert_one_sentence(message)
    pattern = rf"{re.escape(role)}( v\d+)?( \(as successor of v\d+\))? failed verification: "
    assert re.match(pattern, message), message
    assert fragment in message, message
    return message


def replace_bytes_after(data: bytes, anchor: bytes, old: bytes, new: bytes) -> bytes:
    at = data.index(anchor)
    head, tail = data[:at], data[at:]
    assert old in tail
    return head + tail.replace(old, new, 1)


# ---------------------------------------------------------------------------
# real repositories pass


def test_real_repository_verifies(repo: NotaryRepo) -> None:
    report = verify_repository(repo.files, repo.gun, repo.now)
    assert report.root_chain == (1, 2, 3)  # v1 -> snapshot rotation -> root rotation
    assert [r.name for r in report.roles] == [
        "root", "timestamp", "snapshot", "targets", "targets/releases",
    ]  # fmt: skip
    entries = {(t.role, t.name): t.meta for t in report.target_entries}
    assert set(entries) == {("targets", n) for n in repos.TARGET_CONTENTS} | {
        ("targets/releases", repos.RELEASE_NAME)
    }
    for (_, name), meta in entries.items():
        assert meta.sha256_hex == repo.listed[name]  # agrees with `notary list`
    for r in report.roles:
        assert r.signed_by and len(r.signed_by) >= r.threshold
    assert set(report.delegations) == {"targets/releases"}


def test_real_client_cache_verifies(repo: NotaryRepo) -> None:
    report = verify_repository(repo.cache_files(), repo.gun, repo.now)
    assert report.root_chain == (3,)  # no older roots cached: the newest is trusted on first use
    assert report.root.to_bytes() == repo.files["root"]


def test_real_early_set_verifies(repo: NotaryRepo) -> None:
    """The set captured after the three targets: root v1, client-signed snapshot."""
    report = verify_repository(repo.early, repo.gun, repo.now)
    assert report.root_chain == (1,)
    assert not report.delegations


def test_root_chain_from_a_trusted_v1(repo: NotaryRepo) -> None:
    v1 = parse_envelope(repo.files["1.root"], Root)
    report = verify_repository(repo.files, repo.gun, repo.now, trusted_root=v1)
    assert report.root_chain == (1, 2, 3)
    without_v2 = {k: v for k, v in repo.files.items() if k != "2.root"}
    fails(without_v2, repo.gun, repo.now, "root", "root v2 is missing", trusted_root=v1)


def test_root_chain_trusted_newest(repo: NotaryRepo) -> None:
    v3 = parse_envelope(repo.files["root"], Root)
    report = verify_repository(repo.cache_files(), repo.gun, repo.now, trusted_root=v3)
    assert report.root_chain == (3,)


def test_root_files_must_agree(repo: NotaryRepo) -> None:
    # root.json is v2, but a newer 3.root.json is present
    files = dict(repo.files, root=repo.files["2.root"], **{"3.root": repo.versioned_roots[3]})
    fails(files, repo.gun, repo.now, "root", "root.json is version 2")


def test_missing_role_file(repo: NotaryRepo) -> None:
    for role in ("root", "timestamp", "snapshot", "targets"):
        files = {k: v for k, v in repo.files.items() if k != role}
        with pytest.raises(VerificationFailed) as err:
            verify_repository(files, repo.gun, repo.now)
        assert f"{role}.json" in err.value.message
        assert_one_sentence(err.value.message)
    files = {k: v for k, v in repo.files.items() if k != "targets/releases"}
    fails(files, repo.gun, repo.now, "targets/releases", "file is missing")


# ---------------------------------------------------------------------------
# tampering with real files


@pytest.mark.parametrize(
    ("name", "role", "fragment"),
    [
        ("root", "root", "valid signature"),
        ("1.root", "root", "valid signature"),
        ("timestamp", "timestamp", "0 valid signature(s) of the 1 required"),
        # an edited child no longer matches the hash its parent recorded
        ("snapshot", "snapshot", "sha256 does not match in the timestamp"),
        ("targets", "targets", "sha256 does not match in the snapshot"),
        ("targets/releases", "targets/releases", "sha256 does not match in the snapshot"),
    ],
)
def test_real_signature_flipped(repo: NotaryRepo, name: str, role: str, fragment: str) -> None:
    for index in range(len(parse_any(repo.files[name]).signatures)):
        files = dict(repo.files)
        files[name] = flip_signature(files[name], index)
        assert len(files[name]) == len(repo.files[name])
        fails(files, repo.gun, repo.now, role, fragment)


def test_real_root_v3_needs_both_old_and_new_key(repo: NotaryRepo) -> None:
    v3 = parse_any(repo.files["root"])
    new_ids = set(v3.body.roles["root"].keyids)
    only_old = with_signatures(
        repo.files["root"], lambda s: [x for x in s if x.keyid not in new_ids]
    )
    only_new = with_signatures(repo.files["root"], lambda s: [x for x in s if x.keyid in new_ids])
    for root in (only_old, only_new):
        files = {**repo.files, "root": root}
        message = fails(files, repo.gun, repo.now, "root", "0 valid signature(s) of the 1 required")
        assert message.startswith("root v3")
    assert "as successor of v2" in fails(
        {**repo.files, "root": only_new}, repo.gun, repo.now, "root"
    )


@pytest.mark.parametrize("role", ["timestamp", "root"])
def test_real_threshold_not_met_when_signature_removed(repo: NotaryRepo, role: str) -> None:
    files = dict(repo.files)
    files[role] = with_signatures(files[role], lambda s: [])
    fails(files, repo.gun, repo.now, role, "0 valid signature(s)")


@pytest.mark.parametrize(
    ("role", "target", "old", "new", "fragment"),
    [
        ("targets", b'"hello.txt":', b'"sha256":"', b'"sha256":"A', "sha256"),
        ("targets", b'"hello.txt":', b'"length":6', b'"length":7', "sha256"),
        ("targets/releases", b'"rel-1":', b'"length":', b'"length":1', "length"),
    ],
)
def test_real_target_edited(
    repo: NotaryRepo, role: str, target: bytes, old: bytes, new: bytes, fragment: str
) -> None:
    files = dict(repo.files)
    if old == b'"sha256":"':  # keep a valid 32-byte base64 value: replace the whole digest
        meta = parse_any(files[role]).body.targets["hello.txt"]
        digest = FileMeta.for_bytes(b"evil").to_dict()["hashes"]["sha256"]
        old_digest = meta.to_dict()["hashes"]["sha256"]
        files[role] = files[role].replace(old_digest.encode(), digest.encode(), 1)
    else:
        files[role] = replace_bytes_after(files[role], target, old, new)
    assert files[role] != repo.files[role]
    parse_any(files[role])  # still well-formed metadata
    fails(files, repo.gun, repo.now, role, fragment)


def test_real_wrong_gun(repo: NotaryRepo) -> None:
    message = fails(repo.files, "example.com/core/other", repo.now, "root", "not valid for")
    assert repo.gun in message


def test_real_expired(repo: NotaryRepo) -> None:
    expiry = parse_any(repo.files["timestamp"]).body.expires.to_datetime()
    verify_repository(repo.files, repo.gun, expiry)  # still valid at the instant itself
    fails(repo.files, repo.gun, expiry + timedelta(seconds=1), "timestamp", "it expired at")
    root_expiry = parse_any(repo.files["root"]).body.expires.to_datetime()
    fails(repo.files, repo.gun, root_expiry + timedelta(days=1), "root", "")


def _versions(report: RepositoryReport) -> dict[str, int]:
    return {r.name: r.version for r in report.roles}


@pytest.mark.parametrize("role", ["root", "timestamp", "snapshot", "targets", "targets/releases"])
def test_real_version_rollback_by_previous_versions(repo: NotaryRepo, role: str) -> None:
    current = _versions(verify_repository(repo.files, repo.gun, repo.now))
    verify_repository(repo.files, repo.gun, repo.now, previous_versions=current)  # equal is fine
    fails(
        repo.files, repo.gun, repo.now, role, "(rollback)",
        previous_versions={role: current[role] + 1},
    )  # fmt: skip


@pytest.mark.parametrize("role", ["timestamp", "snapshot", "targets"])
def test_real_older_validly_signed_files_rejected(repo: NotaryRepo, role: str) -> None:
    """The early set is genuine, validly signed metadata; only its versions are old."""
    current = _versions(verify_repository(repo.files, repo.gun, repo.now))
    early = _versions(verify_repository(repo.early, repo.gun, repo.now))
    assert early[role] < current[role]
    message = fails(
        repo.early, repo.gun, repo.now, role, "(rollback)",
        previous_versions={role: current[role]},
    )  # fmt: skip
    assert f"version {early[role]}, older than the trusted version {current[role]}" in message


def test_real_older_root_rejected_against_trusted_root(repo: NotaryRepo) -> None:
    trusted = parse_envelope(repo.files["root"], Root)
    fails(repo.early, repo.gun, repo.now, "root", "(rollback)", trusted_root=trusted)


def test_real_mixed_old_and_new_files(repo: NotaryRepo) -> None:
    """A genuine older targets file in an otherwise current repository."""
    files = dict(repo.files, targets=repo.early["targets"])
    fails(files, repo.gun, repo.now, "targets", "in the snapshot")


def test_real_file_not_in_go_form(repo: NotaryRepo) -> None:
    doc = json.loads(repo.files["timestamp"])
    pretty = json.dumps(doc, indent=1).encode()  # same content, not Notary's bytes
    fails(dict(repo.files, timestamp=pretty), repo.gun, repo.now, "timestamp", "exact form")


# ---------------------------------------------------------------------------
# self-built repositories: every key held by the test


def test_offline_repository_verifies(offline: OfflineRepo) -> None:
    report = verify_repository(offline.files(), offline.gun, offline.now)
    assert [r.name for r in report.roles][-1] == "targets/releases"
    assert {t.name for t in report.target_entries} == {"hello.txt", "a&b<c>\u2028é", "rel-1"}


@pytest.mark.parametrize("role", ["root", "targets", "targets/releases", "snapshot", "timestamp"])
def test_offline_edit_without_key_breaks_signature(offline: OfflineRepo, role: str) -> None:
    """A body edited after signing, with every parent re-hashed and re-signed properly."""
    evil = {"hello.txt": FileMeta.for_bytes(b"evil payload")}
    if role == "root":
        body = offline.root_body()
        part = offline.unsigned_swap(role, body, replace(body, version=2))
        files = offline.files(root=part)
    elif role in ("targets", "targets/releases"):
        body = offline.targets_body() if role == "targets" else offline.releases_body()
        part = offline.unsigned_swap(role, body, replace(body, targets={**body.targets, **evil}))
        files = offline.files(**{"targets" if role == "targets" else "releases": part})
    else:
        good = offline.files()
        body = parse_any(good[role]).body
        part = offline.unsigned_swap(role, body, replace(body, version=body.version + 1))
        files = offline.files(**{role: part})
    fails(files, offline.gun, offline.now, role, "0 valid signature(s) of the 1 required")


@pytest.mark.parametrize("role", ["targets", "targets/releases", "snapshot", "timestamp"])
def test_offline_signed_by_the_wrong_key(offline: OfflineRepo, role: str) -> None:
    wrong = offline.keys["targets/releases" if role != "targets/releases" else "targets"]
    good = offline.files()
    env = offline.sign(parse_any(good[role]).body, [wrong])
    key = {"targets/releases": "releases"}.get(role, role)
    fails(offline.files(**{key: env}), offline.gun, offline.now, role, "0 valid signature(s)")


@pytest.mark.parametrize(
    ("role", "edit", "fragment"),
    [
        ("targets", lambda m: replace(m, length=m.length + 1), "its length is"),
        ("targets", lambda m: replace(m, hashes={**m.hashes, "sha256": bytes(32)}), "its sha256 does not match"),
        ("targets/releases", lambda m: replace(m, hashes={**m.hashes, "sha512": bytes(64)}), "its sha512 does not match"),
        ("targets/releases", lambda m: replace(m, hashes={"sha512": m.hashes["sha512"]}), ""),  # one known hash suffices
        ("targets/releases", lambda m: replace(m, hashes={"md5": bytes(16)}), "no known hash algorithm"),
    ],
)  # fmt: skip
def test_offline_snapshot_meta_checks(
    offline: OfflineRepo, role: str, edit: object, fragment: str
) -> None:
    """The snapshot, properly signed, records the wrong length or hash for a role."""
    good = offline.files()
    snap = parse_any(good["snapshot"]).body
    meta = {**snap.meta, role: edit(snap.meta[role])}  # type: ignore[operator]
    files = offline.files(snapshot=replace(snap, meta=meta))
    if fragment:
        fails(files, offline.gun, offline.now, role, fragment)
    else:
        verify_repository(files, offline.gun, offline.now)


def test_offline_snapshot_without_sha256_for_targets(offline: OfflineRepo) -> None:
    """Go requires a sha256 for root and targets in the snapshot: refused while parsing."""
    snap = parse_any(offline.files()["snapshot"]).body
    meta = {**snap.meta, "targets": replace(snap.meta["targets"], hashes={"sha512": bytes(64)})}
    with pytest.raises(MalformedInput) as err:
        verify_repository(
            offline.files(snapshot=replace(snap, meta=meta)), offline.gun, offline.now
        )
    assert "sha256 for targets" in err.value.message
    assert_one_sentence(err.value.message)


@pytest.mark.parametrize("role", ["root", "targets", "targets/releases", "snapshot", "timestamp"])
def test_offline_expired_role(offline: OfflineRepo, role: str) -> None:
    expired = offline.expires(role, timedelta(hours=1))  # one hour after START, before `now`
    good = offline.files()
    body = parse_any(good[role]).body
    key = {"targets/releases": "releases"}.get(role, role)
    files = offline.files(**{key: replace(body, expires=expired)})
    fails(files, offline.gun, offline.now, role, f"it expired at {expired.format()}")
    verify_repository(files, offline.gun, offline.start + timedelta(minutes=59))


def test_offline_delegation_outside_paths(offline: OfflineRepo) -> None:
    targets = offline.targets_body(paths=("foo/",))
    inside = offline.releases_body(targets={"foo/ok": FileMeta.for_bytes(b"x")})
    verify_repository(offline.files(targets=targets, releases=inside), offline.gun, offline.now)
    outside = offline.releases_body(
        targets={"foo/ok": FileMeta.for_bytes(b"x"), "bar/evil": FileMeta.for_bytes(b"y")}
    )
    files = offline.files(targets=targets, releases=outside)
    fails(files, offline.gun, offline.now, "targets/releases", "'bar/evil', which is outside")


def test_offline_delegation_without_paths_signs_nothing(offline: OfflineRepo) -> None:
    targets = offline.targets_body(paths=())
    fails(offline.files(targets=targets), offline.gun, offline.now, "targets/releases", "outside")


def test_offline_nested_delegation_paths_are_restricted(offline: OfflineRepo) -> None:
    """targets/releases may sign foo/; its child asks for foo/a and bar/ but only gets foo/a."""
    targets = offline.targets_body(paths=("foo/",))
    releases = offline.releases_body(targets={}, nested_paths=("foo/a", "bar/"))
    ok = offline.releases_body(targets={"foo/a1": FileMeta.for_bytes(b"1")})
    files = offline.files(targets=targets, releases=releases, nightly=ok)
    report = verify_repository(files, offline.gun, offline.now)
    assert list(report.delegations) == ["targets/releases", "targets/releases/nightly"]
    for evil in ("bar/x", "foo/b"):
        bad = offline.releases_body(targets={evil: FileMeta.for_bytes(b"2")})
        files = offline.files(targets=targets, releases=releases, nightly=bad)
        fails(files, offline.gun, offline.now, "targets/releases/nightly", "outside")


def test_offline_snapshot_must_record_delegation(offline: OfflineRepo) -> None:
    good = offline.files()
    snap = parse_any(good["snapshot"]).body
    meta = {k: v for k, v in snap.meta.items() if k != "targets/releases"}
    files = offline.files(snapshot=replace(snap, meta=meta))
    fails(files, offline.gun, offline.now, "targets/releases", "does not record it")
    # A role nothing delegates is ignored with a warning, as Notary's client does
    # (notary-server keeps a removed delegation in its snapshot).
    extra = dict(snap.meta, **{"targets/ghost": FileMeta.for_bytes(b"")})
    files = offline.files(snapshot=replace(snap, meta=extra))
    report = verify_repository(files, offline.gun, offline.now)
    assert "targets/ghost" not in report.delegations
    assert any("targets/ghost" in w for w in report.warnings)


def test_offline_root_threshold_counts_distinct_keys(offline: OfflineRepo) -> None:
    second = offline.new_root_key()
    body = offline.root_body(root_keys=[*offline.root_keys, second], threshold=2)
    both = offline.sign(body, [*offline.root_keys, second])
    verify_repository(offline.files(root=both), offline.gun, offline.now)
    first = offline.root_keys[0]
    twice = offline.sign(body, [first, first])  # two signatures, one key
    fails(
        offline.files(root=twice), offline.gun, offline.now, "root", "1 valid signature(s) of the 2"
    )


def test_offline_root_rotation_chain(offline: OfflineRepo) -> None:
    v1 = offline.signed("root", offline.root_body())
    new = offline.new_root_key()
    body2 = offline.root_body(version=2, root_keys=[new])
    body2 = replace(body2, keys={**body2.keys, **v1.body.keys})  # the old certificate stays
    good = offline.sign(body2, [*offline.root_keys, new])
    files = offline.files(root=good, extra={"1.root": v1.to_bytes()})
    assert verify_repository(files, offline.gun, offline.now).root_chain == (1, 2)
    only_new = offline.sign(body2, [new])
    files = offline.files(root=only_new, extra={"1.root": v1.to_bytes()})
    fails(files, offline.gun, offline.now, "root", "as successor of v1")
    only_old = offline.sign(body2, list(offline.root_keys))
    files = offline.files(root=only_old, extra={"1.root": v1.to_bytes()})
    fails(files, offline.gun, offline.now, "root", "0 valid signature(s)")
    skipped = offline.sign(replace(body2, version=3), [*offline.root_keys, new])
    files = offline.files(root=skipped, extra={"1.root": v1.to_bytes()})
    fails(files, offline.gun, offline.now, "root", "root v2 is missing")


def test_offline_root_certificate_for_another_gun() -> None:
    other = OfflineRepo(gun="example.com/core/someone-else")
    files = other.files()
    verify_repository(files, other.gun, other.now)
    fails(files, "example.com/core/offline", other.now, "root", "not valid for")


def test_offline_root_certificate_not_yet_valid_or_expired(offline: OfflineRepo) -> None:
    files = offline.files()
    fails(files, offline.gun, offline.start - timedelta(days=2), "root", "not valid until")
    late = offline.start + timedelta(days=3651)
    fails(files, offline.gun, late, "root", "expired")


def test_offline_key_listed_under_wrong_id(offline: OfflineRepo) -> None:
    body = offline.root_body()
    kid = offline.keys["targets"].keyid
    keys = dict(body.keys)
    keys[kid] = offline.keys["snapshot"].key  # the snapshot key, filed under the targets id
    fails(
        offline.files(root=replace(body, keys=keys)),
        offline.gun,
        offline.now,
        "root",
        "not its own",
    )
