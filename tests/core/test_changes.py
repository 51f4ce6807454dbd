"""The pure `plan()` both halves run: versions, expiries, signers, paths, and bulk edits."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from ceremony.core.changes import (
    AddTarget,
    ChangeError,
    RemoveDelegation,
    RemoveTarget,
    ReplaceKeys,
    SetDelegation,
    SetExpiry,
    change_from_dict,
)
from ceremony.core.gotime import GoTime
from ceremony.core.metadata import FileMeta, RoleKeys, Root, Targets
from ceremony.core.plan import plan
from ceremony.signing.certificates import make_root_certificate
from ceremony.signing.private import PrivateKey

NOW = datetime(2030, 1, 1, tzinfo=UTC)
GUN = "example.com/plan/test"


def expiry(days: int) -> GoTime:
    return GoTime.from_datetime(NOW + timedelta(days=days))


def meta(text: str) -> FileMeta:
    return FileMeta.for_bytes(text.encode())


@pytest.fixture(scope="module")
def base() -> dict[str, Root | Targets]:
    root_key = make_root_certificate(PrivateKey.generate_ecdsa(), GUN, NOW)
    targets_key = PrivateKey.generate_ecdsa().public_key()
    server = PrivateKey.generate_ecdsa().public_key()
    keys = {k.key_id: k for k in (root_key, targets_key, server)}
    roles = {
        "root": RoleKeys((root_key.key_id,), 1),
        "targets": RoleKeys((targets_key.key_id,), 1),
        "snapshot": RoleKeys((server.key_id,), 1),
        "timestamp": RoleKeys((server.key_id,), 1),
    }
    root = Root(expires=expiry(3650), version=3, keys=keys, roles=roles)
    targets = Targets(expires=expiry(100), version=7, targets={"old": meta("old")})
    return {"root": root, "targets": targets}


def test_versions_bump_and_expiries_come_from_changes(base: dict[str, Root | Targets]) -> None:
    result = plan(
        base, [AddTarget("targets", "new", meta("new")), SetExpiry("targets", expiry(1095))]
    )
    rp = result.roles["targets"]
    assert set(result.roles) == {"targets"}
    assert rp.body.version == 8 and rp.body.expires == expiry(1095)
    assert isinstance(rp.body, Targets) and set(rp.body.targets) == {"old", "new"}
    assert rp.digest == hashlib.sha256(rp.signed_bytes).hexdigest()
    # no SetExpiry: the base expiry is kept (the online half always adds one)
    assert plan(base, [AddTarget("targets", "n", meta("n"))]).roles[
        "targets"
    ].body.expires == expiry(100)


def test_add_then_remove_and_delegation_edits_in_one_plan(base: dict[str, Root | Targets]) -> None:
    key = PrivateKey.generate_ecdsa().public_key()
    changes = [
        AddTarget("targets", "a", meta("a")),
        SetDelegation("targets/releases", (key,), 1, ("rel/",)),
        AddTarget("targets", "b", meta("b")),
        RemoveTarget("targets", "a"),
        RemoveTarget("targets", "old"),
    ]
    body = plan(base, changes).roles["targets"].body
    assert isinstance(body, Targets)
    assert set(body.targets) == {"b"}
    assert [r.name for r in body.delegations.roles] == ["targets/releases"]
    assert set(body.delegations.keys) == {key.key_id}


def test_delegated_targets_and_their_paths(base: dict[str, Root | Targets]) -> None:
    key = PrivateKey.generate_ecdsa().public_key()
    delegated = SetDelegation("targets/releases", (key,), 1, ("rel/",))
    with_role = plan(base, [delegated]).roles["targets"].body
    assert isinstance(with_role, Targets)
    published = {**base, "targets": with_role}
    result = plan(
        published,
        [
            AddTarget("targets/releases", "rel/1", meta("1")),
            SetExpiry("targets/releases", expiry(9)),
        ],
    )
    rp = result.roles["targets/releases"]
    assert rp.body.version == 1 and rp.signers[0].keys == {key.key_id: key}
    with pytest.raises(ChangeError, match="outside the paths"):
        plan(published, [AddTarget("targets/releases", "other/1", meta("1"))])
    with pytest.raises(ChangeError, match="no expiry"):
        plan(published, [AddTarget("targets/releases", "rel/2", meta("2"))])
    removed = plan(published, [RemoveDelegation("targets/releases")]).roles["targets"].body
    assert (
        isinstance(removed, Targets)
        and not removed.delegations.roles
        and not removed.delegations.keys
    )


def test_root_rotation_needs_old_and_new_root_keys(base: dict[str, Root | Targets]) -> None:
    new_root = make_root_certificate(PrivateKey.generate_ecdsa(), GUN, NOW)
    result = plan(base, [ReplaceKeys("root", (new_root,), 1)])
    rp = result.roles["root"]
    old_ids = base["root"].roles["root"].keyids  # type: ignore[union-attr]
    assert [set(s.keys) for s in rp.signers] == [{new_root.key_id}, set(old_ids)]
    assert isinstance(rp.body, Root) and set(old_ids) <= set(rp.body.keys)  # old certificate kept


def test_targets_rotation_re_signs_targets_with_the_new_key(
    base: dict[str, Root | Targets],
) -> None:
    new_key = PrivateKey.generate_ecdsa().public_key()
    result = plan(base, [ReplaceKeys("targets", (new_key,), 1)])
    assert set(result.roles) == {"root", "targets"}
    assert set(result.roles["targets"].signers[0].keys) == {new_key.key_id}
    old = base["root"].roles["targets"].keyids[0]  # type: ignore[union-attr]
    assert old not in result.roles["root"].body.keys  # type: ignore[union-attr]


def test_mistakes_are_one_sentence(base: dict[str, Root | Targets]) -> None:
    with pytest.raises(ChangeError, match="no target 'missing'"):
        plan(base, [RemoveTarget("targets", "missing")])
    with pytest.raises(ChangeError, match="no changes"):
        plan(base, [])
    with pytest.raises(ChangeError, match="does not delegate"):
        plan(base, [RemoveDelegation("targets/none")])


def test_bulk_adds(base: dict[str, Root | Targets]) -> None:
    """Tens of thousands of staged targets in one plan (timings: bench/scale.py)."""
    changes = [AddTarget("targets", f"pkg/{i}", meta(str(i))) for i in range(50_000)]
    body = plan(base, changes).roles["targets"].body
    assert isinstance(body, Targets) and len(body.targets) == 50_001


def test_changes_round_trip_through_dicts(base: dict[str, Root | Targets]) -> None:
    key = PrivateKey.generate_ecdsa().public_key()
    for change in (
        AddTarget("targets", "x", meta("x")),
        RemoveTarget("targets", "x"),
        SetDelegation("targets/a", (key,), 1, ("",)),
        RemoveDelegation("targets/a"),
        ReplaceKeys("targets", (key,), 1),
        SetExpiry("root", expiry(10)),
    ):
        assert change_from_dict(change.to_dict()) == change
