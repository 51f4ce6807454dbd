"""Typed changes: what a request asks for, each knowing the roles it reads and touches.

A change is parsed strictly from its JSON form and says, in one line, what it
does (`describe`), which roles it makes re-signed (`touches`) and whose current
bodies it needs (`reads`). `ceremony.core.plan` applies them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar

from ceremony.core.canonical import Checked, RawJSON
from ceremony.core.errors import InputRejected, MalformedInput, clipped
from ceremony.core.fields import Fields
from ceremony.core.gotime import GoTime
from ceremony.core.metadata import (
    FileMeta,
    Key,
    is_delegation_name,
    is_plain_file_meta,
    parent_role,
)
from ceremony.core.names import check_publishable, unpublishable


class ChangeError(InputRejected):
    """A change that cannot be applied to the base it was staged against."""


def _keys_field(f: Fields, key: str = "keys") -> tuple[Key, ...]:
    keys = tuple(Key.from_dict(k, f"{f.where} key") for k in f.array(key))
    if not keys:
        raise f.fail("lists no keys")
    if len({k.key_id for k in keys}) != len(keys):
        raise f.fail("lists a key twice")
    return keys


def _threshold(f: Fields, keys: int, key: str = "threshold") -> int:
    t = f.integer(key, minimum=1)
    if t > keys:
        raise f.fail(f"asks for threshold {t} with {keys} key(s)")
    return t


def _role_name(f: Fields, *, delegation: bool = False) -> str:
    role = f.text("role")
    if not (is_delegation_name(role) or (not delegation and role == "targets")):
        raise f.fail(f"names {role!r}, which is not a targets role")
    return role


class _OnRole:
    """A change to one targets role's own body: it re-signs that role, reading its parents."""

    __slots__ = ()
    role: str

    def touches(self) -> tuple[str, ...]:
        """The roles this change makes re-signed."""
        return (self.role,)

    def reads(self) -> tuple[str, ...]:
        """The roles whose current body this change needs (it and its parents)."""
        return _chain(self.role)


class _OnDelegation:
    """A change to a delegation's definition, which lives in (and re-signs) its parent."""

    __slots__ = ()
    role: str

    def touches(self) -> tuple[str, ...]:
        return (parent_role(self.role),)

    def reads(self) -> tuple[str, ...]:
        return _chain(parent_role(self.role))


class AddTarget(_OnRole):
    """Add (or replace) one target in a targets role.

    Kept as its meta's JSON, as `TargetFiles` keeps a role's targets: a request of a
    million targets holds a million of these, and a `FileMeta` (with its hashes map and
    digests) per target cost more memory and time than the rest of a command. `meta`
    builds the `FileMeta` when asked; `meta_json` is what the targets role will hold and
    what `to_dict` writes, shared with the document the change was read from.
    """

    __slots__ = ("_meta", "meta_json", "name", "role")
    KIND: ClassVar[str] = "add-target"
    __match_args__ = ("role", "name", "meta")
    role: str
    name: str
    meta_json: Mapping[str, Any]
    _meta: FileMeta | None

    def __init__(self, role: str, name: str, meta: FileMeta) -> None:
        check_publishable(name, "target name")
        meta_json = meta.to_dict()
        # In the usual shape the JSON alone is kept (it reads back as an equal `FileMeta`).
        self._set(role, name, meta_json, None if is_plain_file_meta(meta_json) else meta)

    def _set(
        self, role: str, name: str, meta_json: Mapping[str, Any], meta: FileMeta | None
    ) -> None:
        _SET_ROLE(self, role)
        _SET_NAME(self, name)
        _SET_META_JSON(self, meta_json)
        _SET_META(self, meta)

    @classmethod
    def _read(cls, role: str, name: str, meta_json: Mapping[str, Any]) -> AddTarget:
        """From JSON `read_change` has checked in full (`is_plain_file_meta`, the names)."""
        change: AddTarget = object.__new__(cls)
        change._set(role, name, meta_json, None)
        return change

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"AddTarget is immutable; cannot set {name}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"AddTarget is immutable; cannot delete {name}")

    @property
    def meta(self) -> FileMeta:
        """The target's length, hashes and custom data, typed (built on each call if read
        from JSON: the JSON is what is kept)."""
        if self._meta is not None:
            return self._meta
        return FileMeta.from_dict(self.meta_json, "the add-target change's meta")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AddTarget):
            return NotImplemented
        return (self.role, self.name, self.meta_json) == (other.role, other.name, other.meta_json)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"AddTarget(role={self.role!r}, name={self.name!r}, meta={self.meta!r})"

    def describe(self) -> str:
        meta = self.meta
        custom = " with custom data" if meta.custom is not None else ""
        return (
            f"add {self.name!r} to {self.role} ({meta.length} bytes, "
            f"sha256 {meta.sha256_hex}){custom}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The change's JSON; `Checked` when its meta has the plain shape (every value
        already known to be plain JSON, so the encoder does not walk it again)."""
        kind = dict if self._meta is not None else Checked
        return kind(type=self.KIND, role=self.role, name=self.name, meta=self.meta_json)

    @classmethod
    def from_dict(cls, f: Fields) -> AddTarget:
        meta = FileMeta.from_dict(f.mapping("meta"), "the add-target change's meta")
        if "sha256" not in meta.hashes:
            raise MalformedInput("The add-target change lacks a sha256 for its target.")
        if meta.unrecognized:  # Go drops them, so the server would hash other bytes
            raise MalformedInput(
                f"The add-target change's meta has unexpected fields {sorted(meta.unrecognized)}."
            )
        return cls(_role_name(f), f.text("name"), meta)


# The slots' own setters: `AddTarget` refuses attribute assignment (it is immutable).
_SET_ROLE: Callable[[AddTarget, Any], None] = AddTarget.__dict__["role"].__set__
_SET_NAME: Callable[[AddTarget, Any], None] = AddTarget.__dict__["name"].__set__
_SET_META_JSON: Callable[[AddTarget, Any], None] = AddTarget.__dict__["meta_json"].__set__
_SET_META: Callable[[AddTarget, Any], None] = AddTarget.__dict__["_meta"].__set__


@dataclass(frozen=True, slots=True)
class RemoveTarget(_OnRole):
    KIND: ClassVar[str] = "remove-target"
    role: str
    name: str

    def __post_init__(self) -> None:
        check_publishable(self.name, "target name")

    def describe(self) -> str:
        return f"remove {self.name!r} from {self.role}"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.KIND, "role": self.role, "name": self.name}

    @classmethod
    def from_dict(cls, f: Fields) -> RemoveTarget:
        return cls(_role_name(f), f.text("name"))


@dataclass(frozen=True, slots=True)
class SetDelegation(_OnDelegation):
    """Create or replace a delegation (keys, threshold, paths) in its parent."""

    KIND: ClassVar[str] = "set-delegation"
    role: str
    keys: tuple[Key, ...]
    threshold: int
    paths: tuple[str, ...]

    def __post_init__(self) -> None:
        for path in self.paths:
            check_publishable(path, f"path of {self.role}")

    def describe(self) -> str:
        paths = ", ".join(repr(p) for p in self.paths) if self.paths != ("",) else "all paths"
        keys = ", ".join(k.key_id for k in self.keys)
        return f"delegate {self.role} to {self.threshold} of [{keys}] for {paths}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.KIND,
            "role": self.role,
            "keys": [k.to_dict() for k in self.keys],
            "threshold": self.threshold,
            "paths": list(self.paths),
        }

    @classmethod
    def from_dict(cls, f: Fields) -> SetDelegation:
        keys = _keys_field(f)
        paths = f.array("paths")
        if not paths or not all(isinstance(p, str) for p in paths):
            raise MalformedInput('The set-delegation change needs at least one path ("" for all).')
        return cls(
            _role_name(f, delegation=True),
            keys,
            _threshold(f, len(keys)),
            tuple(paths),
        )


_KEY_ID = frozenset("0123456789abcdef")


def _key_ids(f: Fields, key: str) -> tuple[str, ...]:
    ids = f.strings(key)
    if any(len(i) != 64 or not set(i) <= _KEY_ID for i in ids):
        raise f.fail(f"lists a {key} entry that is not a 64-digit lowercase key id")
    if len(set(ids)) != len(ids):
        raise f.fail(f"lists a {key} entry twice")
    return ids


def _path_list(f: Fields, key: str) -> tuple[str, ...]:
    paths = f.strings(key)
    if len(set(paths)) != len(paths):
        raise f.fail(f"lists a {key} entry twice")
    return paths


def _paths_shown(paths: Sequence[str]) -> str:
    return ", ".join(repr(p) if p else "(all paths)" for p in paths)


@dataclass(frozen=True, slots=True)
class UpdateDelegation(_OnDelegation):
    """Add or remove keys and paths of a delegation, keeping the rest (Notary's additive update).

    The role must exist, unless `paths_if_new` is given: then a missing role is
    created with threshold 1, the added keys and those paths (what `notary
    delegation add` and `docker trust signer add` do). Removed keys are key ids
    as the parent lists them; an existing role keeps its threshold.
    """

    KIND: ClassVar[str] = "update-delegation"
    role: str
    add_keys: tuple[Key, ...] = ()
    remove_keys: tuple[str, ...] = ()
    add_paths: tuple[str, ...] = ()
    remove_paths: tuple[str, ...] = ()
    paths_if_new: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not (self.add_keys or self.remove_keys or self.add_paths or self.remove_paths):
            raise MalformedInput(f"The update of {self.role} neither adds nor removes anything.")
        added = {k.key_id for k in self.add_keys}
        if len(added) != len(self.add_keys):
            raise MalformedInput(f"The update of {self.role} adds a key twice.")
        if added & set(self.remove_keys):
            raise MalformedInput(f"The update of {self.role} adds and removes the same key.")
        if set(self.add_paths) & set(self.remove_paths):
            raise MalformedInput(f"The update of {self.role} adds and removes the same path.")
        if self.paths_if_new is not None and (
            not self.paths_if_new or not self.add_keys or self.remove_keys or self.remove_paths
        ):
            raise MalformedInput(
                f"The update of {self.role} may create it only with keys and paths to add, "
                "and nothing to remove."
            )

    def describe(self) -> str:
        parts = []
        if self.add_keys:
            parts.append("add key(s) " + ", ".join(k.key_id for k in self.add_keys))
        if self.remove_keys:
            parts.append("remove key(s) " + ", ".join(self.remove_keys))
        if self.add_paths:
            parts.append(f"add path(s) {_paths_shown(self.add_paths)}")
        if self.remove_paths:
            parts.append(f"remove path(s) {_paths_shown(self.remove_paths)}")
        text = f"update {self.role}: " + "; ".join(parts)
        if self.paths_if_new is not None:
            text += (
                f" (if missing, create it with threshold 1 for {_paths_shown(self.paths_if_new)})"
            )
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.KIND,
            "role": self.role,
            "add_keys": [k.to_dict() for k in self.add_keys],
            "remove_keys": list(self.remove_keys),
            "add_paths": list(self.add_paths),
            "remove_paths": list(self.remove_paths),
            "paths_if_new": None if self.paths_if_new is None else list(self.paths_if_new),
        }

    @classmethod
    def from_dict(cls, f: Fields) -> UpdateDelegation:
        add_keys = tuple(Key.from_dict(k, f"{f.where} key") for k in f.array("add_keys"))
        if_new = None if f.raw("paths_if_new") is None else _path_list(f, "paths_if_new")
        return cls(
            _role_name(f, delegation=True),
            add_keys,
            _key_ids(f, "remove_keys"),
            _path_list(f, "add_paths"),
            _path_list(f, "remove_paths"),
            if_new,
        )


@dataclass(frozen=True, slots=True)
class RemoveDelegation(_OnDelegation):
    KIND: ClassVar[str] = "remove-delegation"
    role: str

    def describe(self) -> str:
        return f"remove the delegation {self.role}"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.KIND, "role": self.role}

    @classmethod
    def from_dict(cls, f: Fields) -> RemoveDelegation:
        return cls(_role_name(f, delegation=True))


@dataclass(frozen=True, slots=True)
class ReplaceKeys:
    """Rotate a base role's keys (root or targets) and set its threshold."""

    KIND: ClassVar[str] = "replace-keys"
    role: str
    keys: tuple[Key, ...]
    threshold: int

    def touches(self) -> tuple[str, ...]:
        """Keys live in root; a targets rotation re-signs targets with its new keys too."""
        return ("root", "targets") if self.role == "targets" else ("root",)

    def reads(self) -> tuple[str, ...]:
        return ("targets",) if self.role == "targets" else ()

    def describe(self) -> str:
        keys = ", ".join(k.key_id for k in self.keys)
        return f"rotate {self.role} keys to {self.threshold} of [{keys}]"

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.KIND,
            "role": self.role,
            "keys": [k.to_dict() for k in self.keys],
            "threshold": self.threshold,
        }

    @classmethod
    def from_dict(cls, f: Fields) -> ReplaceKeys:
        role = f.text("role")
        if role not in ("root", "targets"):
            raise MalformedInput(
                f"The replace-keys change names {role!r}; only root and targets are held offline."
            )
        keys = _keys_field(f)
        return cls(role, keys, _threshold(f, len(keys)))


@dataclass(frozen=True, slots=True)
class SetExpiry:
    """The new expiry of a role; also re-signs it (a refresh) when nothing else changes."""

    KIND: ClassVar[str] = "set-expiry"
    role: str
    expires: GoTime

    def touches(self) -> tuple[str, ...]:
        return (self.role,)

    def reads(self) -> tuple[str, ...]:
        return () if self.role == "root" else _chain(self.role)

    def describe(self) -> str:
        return f"set {self.role} to expire {self.expires.format()}"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.KIND, "role": self.role, "expires": self.expires.format()}

    @classmethod
    def from_dict(cls, f: Fields) -> SetExpiry:
        role = f.text("role")
        if role != "root":
            role = _role_name(f)
        try:
            expires = GoTime.parse(f.text("expires"))
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

    def touches(self) -> tuple[str, ...]:
        """Only checked against what the other changes re-sign: it re-signs nothing itself."""
        return ()

    def reads(self) -> tuple[str, ...]:
        """The roles whose current body this change needs (it and its parents)."""
        return _chain(self.role)

    def describe(self) -> str:
        return f"sign {self.role} as v{self.version} (past versions exported before)"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.KIND, "role": self.role, "version": self.version}

    @classmethod
    def from_dict(cls, f: Fields) -> SetVersion:
        version = f.integer("version")
        if not 2 <= version < 2**31:
            raise MalformedInput(f"The set-version change asks for version {version}.")
        return cls(_role_name(f), version)


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

    def touches(self) -> tuple[str, ...]:
        return ("root", "targets")

    def reads(self) -> tuple[str, ...]:
        return ()

    def describe(self) -> str:
        root = ", ".join(k.key_id for k in self.root_keys)
        targets = ", ".join(k.key_id for k in self.targets_keys)
        return (
            f"initialise the repository: root {self.root_threshold} of [{root}], "
            f"targets {self.targets_threshold} of [{targets}], snapshot and timestamp on the server"
        )

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
    def from_dict(cls, f: Fields) -> InitRepository:
        root_keys = _keys_field(f, "root_keys")
        targets_keys = _keys_field(f, "targets_keys")
        rt = _threshold(f, len(root_keys), "root_threshold")
        tt = _threshold(f, len(targets_keys), "targets_threshold")
        return cls(
            root_keys,
            rt,
            targets_keys,
            tt,
            Key.from_dict(f.mapping("snapshot_key"), "snapshot key"),
            Key.from_dict(f.mapping("timestamp_key"), "timestamp key"),
        )


Change = (
    AddTarget
    | RemoveTarget
    | SetDelegation
    | RemoveDelegation
    | UpdateDelegation
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
        UpdateDelegation,
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


@lru_cache(maxsize=1024)
def _target_role(role: str) -> str | None:
    """`role`, interned, if a target may be added to it (`targets` or a delegation)."""
    return sys.intern(role) if role == "targets" or is_delegation_name(role) else None


def _plain_add_target(d: dict[str, Any]) -> AddTarget | None:
    """The add-target change `d` is, read without a `Fields` or a `FileMeta`, when it has
    the usual shape (exactly what `AddTarget.to_dict` writes, with a plain meta); else None,
    and the full reader decides. A million staged targets are read in one loop each.

    The repeated strings (`type`, `role`) are replaced by one shared copy: the same values,
    a hundred bytes less per change."""
    if len(d) != 4 or d.get("type") != AddTarget.KIND:
        return None
    role, name, meta = d.get("role"), d.get("name"), d.get("meta")
    if type(role) is not str or type(name) is not str or not is_plain_file_meta(meta):
        return None
    shared = _target_role(role)
    if shared is None or unpublishable(name) is not None:
        return None
    d["type"] = AddTarget.KIND
    d["role"] = shared
    return AddTarget._read(shared, name, meta)


def change_from_dict(d: Any) -> Change:
    return read_change(d)[0]


def read_change(d: Any) -> tuple[Change, Mapping[str, Any]]:
    """The typed change, and its JSON form: the parsed `d` itself when the typed change
    writes exactly it (a million staged targets are not held twice), else what it writes
    (custom data kept as read, `RawJSON`). Anything the typed change would not write back
    is refused."""
    if not isinstance(d, dict):
        raise MalformedInput("A change must be a JSON object.")
    plain = _plain_add_target(d)
    if plain is not None:
        return plain, d
    kind = d.get("type")
    cls = _KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise MalformedInput(f"Unknown change type {clipped(kind)}.")
    f = Fields(d, f"The {kind} change")
    f.text("type")
    change: Change = cls.from_dict(f)
    f.done()
    made = change.to_dict()
    if made == d:
        return change, d
    if _plain(made) != d:
        raise MalformedInput(f"The {kind} change has unexpected or non-canonical fields.")
    return change, made


def _chain(role: str) -> tuple[str, ...]:
    """`role` and each parent up to `targets`."""
    out = [role]
    while out[-1] != "targets" and "/" in out[-1]:
        out.append(parent_role(out[-1]))
    return tuple(out)


def roles_read(changes: Sequence[Change]) -> set[str]:
    """Every role whose current body the changes need (root, touched roles and their parents)."""
    return {"root", *(role for c in changes for role in c.reads())}


def touched_roles(changes: Sequence[Change]) -> list[str]:
    """The roles `plan` re-signs for these changes, in first-touched order."""
    return list(dict.fromkeys(role for c in changes for role in c.touches()))


__all__ = [
    "AddTarget",
    "Change",
    "ChangeError",
    "InitRepository",
    "RemoveDelegation",
    "RemoveTarget",
    "ReplaceKeys",
    "SetDelegation",
    "SetExpiry",
    "SetVersion",
    "UpdateDelegation",
    "change_from_dict",
    "roles_read",
    "touched_roles",
]
