"""Typed changes and the one pure function that applies them: `plan(base, changes)`.

Both halves call `plan`: the online half to say what it expects to be signed,
the offline half to compute, from a base it verified itself, the exact bodies
it will sign. Nothing here reads a clock or picks a value: every new expiry is
an explicit `SetExpiry` change chosen online and shown offline, so both sides
get the same bytes.

Rules (mirroring Notary's client, notary-formats.md §5, §8.4, §9.2):
- every role a change touches gets version + 1 (1 for a new role);
- a root update must be signed by the new root's threshold and the previous
  root's threshold; rotating `targets` also re-signs targets with its new keys;
- old root certificates stay in root's `keys`; unused non-root keys are pruned;
- a delegation's definition lives in its parent; a delegation's target must lie
  inside its (parent-restricted) paths.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from ceremony.core.canonical import RawJSON
from ceremony.core.errors import InputRejected, MalformedInput
from ceremony.core.gotime import GoTime
from ceremony.core.metadata import (
    Body,
    DelegatedRole,
    Delegations,
    FileMeta,
    Key,
    RoleKeys,
    Root,
    Targets,
    body_bytes,
    is_delegation_name,
    parent_role,
)


class ChangeError(InputRejected):
    """A change that cannot be applied to the base it was staged against."""


def _field(d: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in d or not isinstance(d[key], kind) or (kind is int and isinstance(d[key], bool)):
        raise MalformedInput(f"The {where} change lacks a valid {key!r}.")
    return d[key]


def _keys_field(d: Mapping[str, Any], where: str) -> tuple[Key, ...]:
    raw = _field(d, "keys", list, where)
    keys = tuple(Key.from_dict(k, f"{where} key") for k in raw)
    if not keys:
        raise MalformedInput(f"The {where} change lists no keys.")
    return keys


def _threshold(d: Mapping[str, Any], where: str, keys: int) -> int:
    t: int = _field(d, "threshold", int, where)
    if not 1 <= t <= keys:
        raise MalformedInput(f"The {where} change asks for threshold {t} with {keys} key(s).")
    return t


def _role_name(d: Mapping[str, Any], where: str, *, delegation: bool = False) -> str:
    role: str = _field(d, "role", str, where)
    ok = is_delegation_name(role) or (not delegation and role == "targets")
    if not ok:
        raise MalformedInput(f"The {where} change names {role!r}, which is not a targets role.")
    return role


@dataclass(frozen=True, slots=True)
class AddTarget:
    KIND: ClassVar[str] = "add-target"
    role: str
    name: str
    meta: FileMeta

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.KIND,
            "role": self.role,
            "name": self.name,
            "meta": self.meta.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AddTarget:
        meta = FileMeta.from_dict(_field(d, "meta", dict, cls.KIND), "the add-target change's meta")
        if "sha256" not in meta.hashes:
            raise MalformedInput("The add-target change lacks a sha256 for its target.")
        return cls(_role_name(d, cls.KIND), _field(d, "name", str, cls.KIND), meta)


@dataclass(frozen=True, slots=True)
class RemoveTarget:
    KIND: ClassVar[str] = "remove-target"
    role: str
    name: str

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.KIND, "role": self.role, "name": self.name}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RemoveTarget:
        return cls(_role_name(d, cls.KIND), _field(d, "name", str, cls.KIND))


@dataclass(frozen=True, slots=True)
class SetDelegation:
    """Create or replace a delegation (keys, threshold, paths) in its parent."""

    KIND: ClassVar[str] = "set-delegation"
    role: str
    keys: tuple[Key, ...]
    threshold: int
    paths: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.KIND,
            "role": self.role,
            "keys": [k.to_dict() for k in self.keys],
            "threshold": self.threshold,
            "paths": list(self.paths),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SetDelegation:
        keys = _keys_field(d, cls.KIND)
        paths = _field(d, "paths", list, cls.KIND)
        if not paths or not all(isinstance(p, str) for p in paths):
            raise MalformedInput('The set-delegation change needs at least one path ("" for all).')
        return cls(
            _role_name(d, cls.KIND, delegation=True),
            keys,
            _threshold(d, cls.KIND, len(keys)),
            tuple(paths),
        )


@dataclass(frozen=True, slots=True)
class RemoveDelegation:
    KIND: ClassVar[str] = "remove-delegation"
    role: str

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.KIND, "role": self.role}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RemoveDelegation:
        return cls(_role_name(d, cls.KIND, delegation=True))


@dataclass(frozen=True, slots=True)
class ReplaceKeys:
    """Rotate a base role's keys (root or targets) and set its threshold."""

    KIND: ClassVar[str] = "replace-keys"
    role: str
    keys: tuple[Key, ...]
    threshold: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.KIND,
            "role": self.role,
            "keys": [k.to_dict() for k in self.keys],
            "threshold": self.threshold,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ReplaceKeys:
        role = _field(d, "role", str, cls.KIND)
        if role not in ("root", "targets"):
            raise MalformedInput(
                f"The replace-keys change names {role!r}; only root and targets are held offline."
            )
        keys = _keys_field(d, cls.KIND)
        return cls(role, keys, _threshold(d, cls.KIND, len(keys)))


@dataclass(frozen=True, slots=True)
class SetExpiry:
    """The new expiry of a role; also re-signs it (a refresh) when nothing else changes."""

    KIND: ClassVar[str] = "set-expiry"
    role: str
    expires: GoTime

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.KIND, "role": self.role, "expires": self.expires.format()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SetExpiry:
        role = _field(d, "role", str, cls.KIND)
        if role != "root":
            role = _role_name(d, cls.KIND)
        try:
            expires = GoTime.parse(_field(d, "expires", str, cls.KIND))
        except ValueError as exc:
            raise MalformedInput("The set-expiry change has a malformed time.") from exc
        return cls(role, expires)


@dataclass(frozen=True, slots=True)
class SetVersion:
    """The new version of a targets role, past every version exported in an abandoned request.

    Notary accepts any higher version for targets and delegations, so a request
    that replaces an abandoned one skips the versions that request used: no
    keyholder is ever asked to sign two different bodies at one version. Root
    cannot skip (the server takes root only at its current version + 1).
    """

    KIND: ClassVar[str] = "set-version"
    role: str
    version: int

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.KIND, "role": self.role, "version": self.version}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SetVersion:
        version = _field(d, "version", int, cls.KIND)
        if not 2 <= version < 2**31:
            raise MalformedInput(f"The set-version change asks for version {version}.")
        return cls(_role_name(d, cls.KIND), version)


@dataclass(frozen=True, slots=True)
class InitRepository:
    """A new repository: root and targets keys held offline, snapshot/timestamp keys from the server."""

    KIND: ClassVar[str] = "init-repository"
    root_keys: tuple[Key, ...]
    root_threshold: int
    targets_keys: tuple[Key, ...]
    targets_threshold: int
    snapshot_key: Key
    timestamp_key: Key

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.KIND,
            "root_keys": [k.to_dict() for k in self.root_keys],
            "root_threshold": self.root_threshold,
            "targets_keys": [k.to_dict() for k in self.targets_keys],
            "targets_threshold": self.targets_threshold,
            "snapshot_key": self.snapshot_key.to_dict(),
            "timestamp_key": self.timestamp_key.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> InitRepository:
        w = cls.KIND
        root_keys = tuple(Key.from_dict(k, "root key") for k in _field(d, "root_keys", list, w))
        targets_keys = tuple(
            Key.from_dict(k, "targets key") for k in _field(d, "targets_keys", list, w)
        )
        if not root_keys or not targets_keys:
            raise MalformedInput("The init-repository change needs root and targets keys.")
        rt = _field(d, "root_threshold", int, w)
        tt = _field(d, "targets_threshold", int, w)
        if not (1 <= rt <= len(root_keys) and 1 <= tt <= len(targets_keys)):
            raise MalformedInput("The init-repository change has an impossible threshold.")
        return cls(
            root_keys,
            rt,
            targets_keys,
            tt,
            Key.from_dict(_field(d, "snapshot_key", dict, w), "snapshot key"),
            Key.from_dict(_field(d, "timestamp_key", dict, w), "timestamp key"),
        )


Change = (
    AddTarget
    | RemoveTarget
    | SetDelegation
    | RemoveDelegation
    | ReplaceKeys
    | SetExpiry
    | SetVersion
    | InitRepository
)
_KINDS: dict[str, Any] = {
    c.KIND: c
    for c in (
        AddTarget,
        RemoveTarget,
        SetDelegation,
        RemoveDelegation,
        ReplaceKeys,
        SetExpiry,
        SetVersion,
        InitRepository,
    )
}


def _plain(value: Any) -> Any:
    """`value` with pass-through JSON unwrapped, to compare with what was parsed."""
    if isinstance(value, RawJSON):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def change_from_dict(d: Any) -> Change:
    if not isinstance(d, dict):
        raise MalformedInput("A change must be a JSON object.")
    kind = d.get("type")
    cls = _KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise MalformedInput(f"Unknown change type {kind!r}.")
    change: Change = cls.from_dict(d)
    if _plain(change.to_dict()) != d:
        raise MalformedInput(f"The {kind} change has unexpected or non-canonical fields.")
    return change


# ---------------------------------------------------------------------------
# planning


@dataclass(frozen=True, slots=True)
class SignerSet:
    """`threshold` signatures are needed from `keys` (key id -> key)."""

    keys: Mapping[str, Key]
    threshold: int

    def to_dict(self) -> dict[str, Any]:
        return {"keyids": sorted(self.keys), "threshold": self.threshold}


@dataclass(frozen=True, slots=True)
class RolePlan:
    """A role to be signed: its new body, the bytes to sign, and who must sign."""

    role: str
    body: Body
    signers: tuple[SignerSet, ...]

    @property
    def signed_bytes(self) -> bytes:
        return body_bytes(self.body)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.signed_bytes).hexdigest()


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


def plan(base: Mapping[str, Body], changes: Sequence[Change]) -> Plan:
    """Apply `changes` to the verified `base` bodies (role -> body) and say who must sign what.

    `base` must hold "root" (unless the changes initialise a repository), and the
    current body of every targets role a change touches or whose delegations it
    reads. Raises ChangeError with one sentence if a change does not fit the base.
    """
    bodies: dict[str, Body] = dict(base)
    touched: list[str] = []
    expiries: dict[str, GoTime] = {}
    versions: dict[str, int] = {}
    pending_targets: dict[str, dict[str, FileMeta]] = {}
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

    for change in changes:
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
                working = pending_targets[change.role] = dict(body.targets)
            if isinstance(change, AddTarget):
                if paths is not None and not any(change.name.startswith(p) for p in paths):
                    raise ChangeError(
                        f"{change.name!r} is outside the paths delegated to {change.role}."
                    )
                working[change.name] = change.meta
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
            bodies[role] = replace(current, targets=working)
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
        new_body: Body = replace(current, version=version, expires=expires)
        bodies[role] = new_body
        result[role] = RolePlan(role, new_body, ())
    for role, rp in list(result.items()):
        result[role] = replace(rp, signers=_signers(role, bodies, old_root))
    return Plan(result)


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


def roles_read(changes: Sequence[Change]) -> set[str]:
    """Every role whose current body the changes need (touched roles and their parents)."""
    needed: set[str] = {"root"}
    for c in changes:
        if isinstance(c, AddTarget | RemoveTarget | SetExpiry | SetVersion):
            role = c.role
        elif isinstance(c, SetDelegation | RemoveDelegation):
            role = parent_role(c.role)
        elif isinstance(c, ReplaceKeys):
            role = "targets" if c.role == "targets" else "root"
        else:
            continue
        while role not in ("root",):
            needed.add(role)
            if role == "targets":
                break
            role = parent_role(role)
    return needed


__all__ = [
    "AddTarget",
    "Change",
    "ChangeError",
    "InitRepository",
    "Plan",
    "RemoveDelegation",
    "RemoveTarget",
    "ReplaceKeys",
    "RolePlan",
    "SetDelegation",
    "SetExpiry",
    "SetVersion",
    "SignerSet",
    "change_from_dict",
    "plan",
    "roles_read",
]
