"""`UpdateDelegation`: Notary's additive delegation update, as both halves plan it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ceremony.core.changes import (
    ChangeError,
    SetDelegation,
    UpdateDelegation,
    change_from_dict,
)
from ceremony.core.errors import MalformedInput
from ceremony.core.gotime import GoTime
from ceremony.core.metadata import Key, RoleKeys, Root, Targets
from ceremony.core.plan import plan
from ceremony.signing.certificates import make_root_certificate
from ceremony.signing.private import PrivateKey

NOW = datetime(2030, 1, 1, tzinfo=UTC)
GUN = "example.com/plan/update"


def _key() -> Key:
    return PrivateKey.generate_ecdsa().public_key()


@pytest.fixture(scope="module")
def keys() -> tuple[Key, Key, Key]:
    return _key(), _key(), _key()


@pytest.fixture(scope="module")
def base(keys: tuple[Key, Key, Key]) -> dict[str, Any]:
    root_key = make_root_certificate(PrivateKey.generate_ecdsa(), GUN, NOW)
    targets_key, server = _key(), _key()
    roles = {
        "root": RoleKeys((root_key.key_id,), 1),
        "targets": RoleKeys((targets_key.key_id,), 1),
        "snapshot": RoleKeys((server.key_id,), 1),
        "timestamp": RoleKeys((server.key_id,), 1),
    }
    expires = GoTime.from_datetime(NOW + timedelta(days=100))
    root = Root(
        expires=expires,
        version=1,
        keys={k.key_id: k for k in (root_key, targets_key, server)},
        roles=roles,
    )
    targets = Targets(expires=expires, version=1)
    published = {"root": root, "targets": targets}
    a, b, _ = keys
    first = [
        SetDelegation("targets/releases", (a,), 1, ("rel/",)),
        SetDelegation("targets/qa", (a, b), 2, ("",)),
    ]
    body = plan(published, first).roles["targets"].body
    return {**published, "targets": body}


def _roles(base: dict[str, Any], *changes: UpdateDelegation) -> dict[str, Any]:
    body = plan(base, list(changes)).roles["targets"].body
    assert isinstance(body, Targets)
    return {r.name: r for r in body.delegations.roles} | {"keys": set(body.delegations.keys)}


def test_an_update_adds_keys_and_paths_and_keeps_the_rest(
    base: dict[str, Any], keys: tuple[Key, Key, Key]
) -> None:
    a, b, c = keys
    roles = _roles(base, UpdateDelegation("targets/releases", add_keys=(b,), add_paths=("tools/",)))
    releases = roles["targets/releases"]
    assert releases.keyids == (a.key_id, b.key_id) and releases.paths == ("rel/", "tools/")
    assert releases.threshold == 1 and roles["keys"] == {a.key_id, b.key_id}
    # Removing: the key leaves the role; a key no role uses leaves the parent's keys.
    roles = _roles(
        base,
        UpdateDelegation("targets/qa", add_keys=(c,), remove_keys=(b.key_id,)),
    )
    assert roles["targets/qa"].keyids == (a.key_id, c.key_id)
    assert roles["targets/qa"].threshold == 2
    assert roles["keys"] == {a.key_id, c.key_id}


def test_an_update_creates_the_role_only_when_asked(
    base: dict[str, Any], keys: tuple[Key, Key, Key]
) -> None:
    _, _, c = keys
    with pytest.raises(ChangeError, match="does not delegate targets/new"):
        plan(base, [UpdateDelegation("targets/new", add_keys=(c,), add_paths=("",))])
    roles = _roles(base, UpdateDelegation("targets/new", add_keys=(c,), paths_if_new=("",)))
    created = roles["targets/new"]
    assert created.keyids == (c.key_id,) and created.paths == ("",) and created.threshold == 1
    # An existing role keeps its paths: paths_if_new applies only to a new role.
    roles = _roles(base, UpdateDelegation("targets/releases", add_keys=(c,), paths_if_new=("",)))
    assert roles["targets/releases"].paths == ("rel/",)


@pytest.mark.parametrize(
    ("update", "why"),
    [
        (lambda a, b: UpdateDelegation("targets/releases", remove_keys=(b.key_id,)), "no key"),
        (lambda a, b: UpdateDelegation("targets/releases", remove_paths=("x/",)), "no path"),
        (lambda a, b: UpdateDelegation("targets/releases", remove_keys=(a.key_id,)), "no key"),
        (lambda a, b: UpdateDelegation("targets/releases", remove_paths=("rel/",)), "no path"),
        (lambda a, b: UpdateDelegation("targets/qa", remove_keys=(b.key_id,)), "threshold of 2"),
    ],
    ids=["absent key", "absent path", "last key", "last path", "below threshold"],
)
def test_an_update_that_breaks_the_role_is_refused(
    base: dict[str, Any], keys: tuple[Key, Key, Key], update: Any, why: str
) -> None:
    a, b, _ = keys
    with pytest.raises(ChangeError, match=why):
        plan(base, [update(a, b)])


def test_the_change_round_trips_and_is_read_strictly(keys: tuple[Key, Key, Key]) -> None:
    a, b, _ = keys
    change = UpdateDelegation(
        "targets/x", add_keys=(a,), remove_keys=(b.key_id,), add_paths=("p/",), remove_paths=("",)
    )
    assert change_from_dict(change.to_dict()) == change
    created = UpdateDelegation("targets/x", add_keys=(a,), paths_if_new=("",))
    assert change_from_dict(created.to_dict()) == created
    assert "if missing, create it" in created.describe()
    with pytest.raises(MalformedInput, match="neither adds nor removes"):
        change_from_dict({**change.to_dict(), "add_keys": [], "remove_keys": [], "add_paths": [],
                          "remove_paths": []})  # fmt: skip
    with pytest.raises(MalformedInput, match="adds and removes the same key"):
        change_from_dict({**change.to_dict(), "remove_keys": [a.key_id]})
    with pytest.raises(MalformedInput, match="key id"):
        change_from_dict({**change.to_dict(), "remove_keys": ["AB" * 32]})
    with pytest.raises(MalformedInput, match="create it only"):
        change_from_dict({**change.to_dict(), "paths_if_new": [""]})
    with pytest.raises(MalformedInput):
        change_from_dict({k: v for k, v in change.to_dict().items() if k != "paths_if_new"})
