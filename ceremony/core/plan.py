"""The one pure function that applies changes to a base: `plan(base, changes)`.

Both halves call `plan`: the online half to say what it expects to be signed,
the offline half to compute, from a base it verified itself, the exact bodies
it will sign. Nothing here reads a clock or picks a value: every new expiry is
an explicit `SetExpiry` change chosen online and shown offline, so both sides
get the same bytes.

Rules (mirroring Notary's client, notary-formats.md §5, §8.4, §9.2):
- every role a change touches gets version + 1 (1 for a new role), or the
  version a `SetVersion` sets past an abandoned request;
- a root update must be signed by the new root's threshold and the previous
  root's threshold; rotating `targets` also re-signs targets with its new keys;
- old root certificates stay in root's `keys`; unused non-root keys are pruned;
- a delegation's definition lives in its parent; a delegation's target must lie
  inside its (parent-restricted) paths.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ceremony.core.changes import (
    AddTarget,
    Change,
    ChangeError,
    InitRepository,
    RemoveDelegation,
    RemoveTarget,
    ReplaceKeys,
    SetDelegation,
    SetExpiry,
    SetVersion,
    UpdateDelegation,
)
from ceremony.core.gotime import GoTime
from ceremony.core.metadata import (
    Body,
    DelegatedRole,
    Delegations,
    Key,
    RoleKeys,
    Root,
    TargetFiles,
    Targets,
    body_bytes,
    parent_role,
)


@dataclass(frozen=True, slots=True)
class SignerSet:
    """`threshold` signatures are needed from `keys` (key id -> key)."""

    keys: Mapping[str, Key]
    threshold: int

    def to_dict(self) -> dict[str, Any]:
        return {"keyids": sorted(self.keys), "threshold": self.threshold}


@dataclass(frozen=True, slots=True)
class RolePlan:
    """A role to be signed: its new body, the bytes to sign (encoded once), and who must sign."""

    role: str
    body: Body
    signers: tuple[SignerSet, ...]
    signed_bytes: bytes = field(default=b"", repr=False)
    digest: str = field(default="", repr=False)

    @classmethod
    def of(cls, role: str, body: Body, signers: tuple[SignerSet, ...]) -> RolePlan:
        signed = body_bytes(body)
        return cls(role, body, signers, signed, hashlib.sha256(signed).hexdigest())


@dataclass(frozen=True, slots=True)
class Plan:
    roles: Mapping[str, RolePlan]


def _prune(keys: Mapping[str, Key], roles: Sequence[DelegatedRole]) -> dict[str, Key]:
    used = {kid for r in roles for kid in r.keyids}
    return {kid: k for kid, k in keys.items() if kid in used}


def _effective_paths(role: str, bodies: Mapping[str, Body]) -> tuple[str, ...] | None:
    """Paths a delegation may sign, restricted by its ancestors (None: top-level targets)."""
    if role == "targets":
        return None
    parent = parent_role(role)
    parent_body = bodies.get(parent)
    if not isinstance(parent_body, Targets):
        raise ChangeError(
            f"{role} cannot be changed: its parent {parent} is not in the request's base."
        )
    spec = parent_body.delegations.role(role)
    if spec is None:
        raise ChangeError(f"{role} is not delegated by {parent}.")
    above = _effective_paths(parent, bodies)
    if above is None:
        return spec.paths
    return tuple(p for p in spec.paths if any(p.startswith(q) for q in above))


def plan(
    base: Mapping[str, Body],
    changes: Sequence[Change],
    *,
    encoded: Sequence[Mapping[str, Any]] | None = None,
) -> Plan:
    """Apply `changes` to the verified `base` bodies (role -> body) and say who must sign what.

    `encoded` is the changes' JSON form when the caller holds it: an added target's entry is
    then that JSON. Without it (None or empty), it is the change's own `meta_json`, the same
    JSON for a change that was read; never a fresh copy per target.

    `base` must hold "root" (unless the changes initialise a repository), and the
    current body of every targets role a change touches or whose delegations it
    reads. Raises ChangeError with one sentence if a change does not fit the base.
    """
    bodies: dict[str, Body] = dict(base)
    touched: list[str] = []
    expiries: dict[str, GoTime] = {}
    versions: dict[str, int] = {}
    pending_targets: dict[str, dict[str, Any]] = {}  # role -> JSON entries being edited
    old_root = base.get("root")

    def touch(role: str) -> None:
        if role not in touched:
            touched.append(role)

    def targets_body(role: str, *, create: bool = False) -> Targets:
        body = bodies.get(role)
        if isinstance(body, Targets):
            return body
        if body is None and create:
            return Targets(expires=_placeholder_expiry(role, expiries), version=0)
        raise ChangeError(f"The request's base does not include {role}, which the changes need.")

    for index, change in enumerate(changes):
        if isinstance(change, InitRepository):
            if "root" in bodies:
                raise ChangeError("The repository already exists; it cannot be initialised again.")
            keys = {
                k.key_id: k
                for k in (
                    *change.root_keys,
                    *change.targets_keys,
                    change.snapshot_key,
                    change.timestamp_key,
                )
            }
            roles = {
                "root": RoleKeys(tuple(k.key_id for k in change.root_keys), change.root_threshold),
                "snapshot": RoleKeys((change.snapshot_key.key_id,), 1),
                "targets": RoleKeys(
                    tuple(k.key_id for k in change.targets_keys), change.targets_threshold
                ),
                "timestamp": RoleKeys((change.timestamp_key.key_id,), 1),
            }
            bodies["root"] = Root(
                expires=_placeholder_expiry("root", expiries), version=0, keys=keys, roles=roles
            )
            bodies["targets"] = Targets(expires=_placeholder_expiry("targets", expiries), version=0)
            touch("root")
            touch("targets")
        elif isinstance(change, SetVersion):
            versions[change.role] = change.version  # checked once every change is applied
        elif isinstance(change, SetExpiry):
            if change.role not in bodies:
                if change.role == "root":
                    raise ChangeError("The request's base has no root to refresh.")
                _effective_paths(change.role, bodies)
                bodies[change.role] = targets_body(change.role, create=change.role != "targets")
            expiries[change.role] = change.expires
            touch(change.role)
        elif isinstance(change, AddTarget | RemoveTarget):
            body = targets_body(change.role, create=change.role != "targets")
            bodies.setdefault(change.role, body)
            paths = _effective_paths(change.role, bodies)
            # One mutable map per role while planning (bulk adds stay linear); bodies at the end.
            working = pending_targets.get(change.role)
            if working is None:
                working = pending_targets[change.role] = body.targets.edit()
            if isinstance(change, AddTarget):
                if paths is not None and not any(change.name.startswith(p) for p in paths):
                    raise ChangeError(
                        f"{change.name!r} is outside the paths delegated to {change.role}."
                    )
                working[change.name] = encoded[index]["meta"] if encoded else change.meta_json
            else:
                if change.name not in working:
                    raise ChangeError(f"{change.role} has no target {change.name!r} to remove.")
                del working[change.name]
            touch(change.role)
        elif isinstance(change, SetDelegation | RemoveDelegation):
            parent = parent_role(change.role)
            body = targets_body(parent)
            roles_list = [r for r in body.delegations.roles if r.name != change.role]
            keys_map = dict(body.delegations.keys)
            if isinstance(change, SetDelegation):
                new_role = DelegatedRole(
                    change.role,
                    tuple(k.key_id for k in change.keys),
                    change.threshold,
                    change.paths,
                )
                existing = [
                    i for i, r in enumerate(body.delegations.roles) if r.name == change.role
                ]
                roles_list.insert(existing[0] if existing else len(roles_list), new_role)
                for k in change.keys:
                    keys_map[k.key_id] = k
            elif len(roles_list) == len(body.delegations.roles):
                raise ChangeError(f"{parent} does not delegate {change.role}; nothing to remove.")
            bodies[parent] = replace(
                body, delegations=Delegations(_prune(keys_map, roles_list), tuple(roles_list))
            )
            touch(parent)
        elif isinstance(change, UpdateDelegation):
            parent = parent_role(change.role)
            body = targets_body(parent)
            roles_list = _updated_roles(parent, list(body.delegations.roles), change)
            keys_map = dict(body.delegations.keys)
            for k in change.add_keys:
                keys_map[k.key_id] = k
            bodies[parent] = replace(
                body, delegations=Delegations(_prune(keys_map, roles_list), tuple(roles_list))
            )
            touch(parent)
        elif isinstance(change, ReplaceKeys):
            root = bodies.get("root")
            if not isinstance(root, Root):
                raise ChangeError("The request's base has no root, which a key rotation changes.")
            new_roles = dict(root.roles)
            new_roles[change.role] = RoleKeys(
                tuple(k.key_id for k in change.keys), change.threshold
            )
            keys_map = dict(root.keys)
            for k in change.keys:
                keys_map[k.key_id] = k
            used = {kid for r in new_roles.values() for kid in r.keyids}
            old_root_ids = set(root.roles["root"].keyids) | {
                kid
                for kid, k in root.keys.items()
                if k.is_x509 and kid not in root.roles["targets"].keyids
            }
            keys_map = {kid: k for kid, k in keys_map.items() if kid in used or kid in old_root_ids}
            bodies["root"] = replace(root, keys=keys_map, roles=new_roles)
            touch("root")
            if change.role == "targets":
                targets_body("targets")
                touch("targets")
        else:  # pragma: no cover - exhaustive
            raise ChangeError(f"Unsupported change {change!r}.")

    for role, working in pending_targets.items():
        current = bodies[role]
        if isinstance(current, Targets):
            bodies[role] = replace(current, targets=TargetFiles.with_entries(working))
    if not touched:
        raise ChangeError("There are no changes to sign.")
    for role in versions:
        if role not in touched:
            raise ChangeError(f"The changes set the version of {role} but do not re-sign it.")
    root_after = bodies.get("root")
    if not isinstance(root_after, Root):
        raise ChangeError("The request's base has no root.")
    result: dict[str, RolePlan] = {}
    for role in touched:
        current = bodies[role]
        base_body = base.get(role)
        version = (base_body.version if base_body is not None else 0) + 1
        if role in versions:
            if versions[role] < version:
                raise ChangeError(
                    f"The changes set {role} to v{versions[role]}, but it must be at least v{version}."
                )
            version = versions[role]
        expires = expiries.get(role, current.expires)
        if expires is _UNSET:
            raise ChangeError(f"The changes create {role} but set no expiry for it.")
        if not expires.representable:
            raise ChangeError(
                f"The changes give {role} the expiry {expires.format()}, which lies outside the "
                "years 1 to 9999 in UTC."
            )
        new_body: Body = replace(current, version=version, expires=expires)
        bodies[role] = new_body
        result[role] = RolePlan.of(role, new_body, ())
    for role, rp in list(result.items()):
        result[role] = replace(rp, signers=_signers(role, bodies, old_root))
    return Plan(result)


def _updated_roles(
    parent: str, roles: list[DelegatedRole], change: UpdateDelegation
) -> list[DelegatedRole]:
    """`roles` with the additive update applied (Notary's order: paths, then keys).

    Unlike Notary, which warns and goes on, an update that names a key or path the
    role lacks, or leaves it unable to sign (no key, fewer keys than its threshold,
    no path), is refused.
    """
    added_ids = [k.key_id for k in change.add_keys]
    found = [i for i, r in enumerate(roles) if r.name == change.role]
    if not found:
        if change.paths_if_new is None:
            raise ChangeError(
                f"{parent} does not delegate {change.role}: create it with `delegation add`."
            )
        created = tuple(dict.fromkeys((*change.paths_if_new, *change.add_paths)))
        return [*roles, DelegatedRole(change.role, tuple(added_ids), 1, created)]
    index = found[0]
    current = roles[index]
    for kid in change.remove_keys:
        if kid not in current.keyids:
            raise ChangeError(f"{change.role} has no key {kid} to remove.")
    for p in change.remove_paths:
        if p not in current.paths:
            raise ChangeError(f"{change.role} has no path {p!r} to remove.")
    paths = [p for p in current.paths if p not in change.remove_paths]
    paths += [p for p in change.add_paths if p not in paths]
    keyids = [k for k in current.keyids if k not in change.remove_keys]
    keyids += [k for k in added_ids if k not in keyids]
    if not keyids:
        raise ChangeError(
            f"The update leaves {change.role} with no key: remove the delegation instead."
        )
    if len(keyids) < current.threshold:
        raise ChangeError(
            f"The update leaves {change.role} with {len(keyids)} key(s), fewer than its "
            f"threshold of {current.threshold}."
        )
    if not paths:
        raise ChangeError(
            f"The update leaves {change.role} with no path, so it could sign nothing."
        )
    updated = list(roles)
    updated[index] = DelegatedRole(change.role, tuple(keyids), current.threshold, tuple(paths))
    return updated


_UNSET = GoTime.parse("0001-01-01T00:00:00Z")


def _placeholder_expiry(role: str, expiries: Mapping[str, GoTime]) -> GoTime:
    return expiries.get(role, _UNSET)


def _signers(role: str, bodies: Mapping[str, Body], old_root: Body | None) -> tuple[SignerSet, ...]:
    root = bodies["root"]
    if not isinstance(root, Root):
        raise ChangeError("The request's base has no root.")
    if role == "root":
        sets = [SignerSet(root.role_keys("root"), root.roles["root"].threshold)]
        if isinstance(old_root, Root):
            old = SignerSet(old_root.role_keys("root"), old_root.roles["root"].threshold)
            if set(old.keys) != set(sets[0].keys) or old.threshold != sets[0].threshold:
                sets.append(old)
        return tuple(sets)
    if role == "targets":
        return (SignerSet(root.role_keys("targets"), root.roles["targets"].threshold),)
    parent = bodies.get(parent_role(role))
    if not isinstance(parent, Targets):
        raise ChangeError(f"The parent of {role} is not in the request's base.")
    spec = parent.delegations.role(role)
    if spec is None:
        raise ChangeError(f"{role} is not delegated by {parent_role(role)}.")
    return (SignerSet({kid: parent.delegations.keys[kid] for kid in spec.keyids}, spec.threshold),)
