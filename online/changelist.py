"""Reading the real notary client's staged changes (its changelist) as our typed changes.

`notary add/remove/delegation add/delegation remove/witness` without `-p`
only write `TRUST_DIR/tuf/<gun>/changelist/<nanos>_<uuid>.change` files
(notary-formats.md §5); notary applies them in lexical file order. This
module translates them, in that order, into the changes `plan` understands:

- target create/delete (on `targets` or a delegation) -> AddTarget / RemoveTarget;
- delegation create: the keys change (`add_keys`, `threshold`) and the separate
  paths change (`add_paths`) for one role become ONE UpdateDelegation, placed
  where the first of them was, with notary's additive meaning: the keys and
  paths are added to the role, which is created (threshold 1) when it is missing
  and both were given. Keys alone or paths alone add to an existing delegation.
  Certificates become `ecdsa-x509`/`rsa-x509` keys as in notary;
- delegation delete -> RemoveDelegation;
- witness -> SetExpiry with the default expiry (which re-signs the role).

Anything else (removing keys or paths, clearing paths, purging a key from every
delegation, base-role key changes, a threshold other than 1) is refused with one
sentence naming the change file, and nothing from the import is staged. Pure:
file names and bytes in, changes out.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ceremony.core.canonical import RawJSON, encode_canonical, parse_json
from ceremony.core.changes import (
    AddTarget,
    Change,
    RemoveDelegation,
    RemoveTarget,
    SetExpiry,
    UpdateDelegation,
)
from ceremony.core.errors import CeremonyError, InputRejected, MalformedInput
from ceremony.core.metadata import FileMeta, Key, is_delegation_name
from ceremony.edge.fsutil import read_input
from online.flow import default_expiry

_ADVICE = "nothing was imported; stage that change with ceremony-online instead"
_HTML_UNSAFE = ("<", ">", "&", "\u2028", "\u2029")


def changelist_dir(trust_dir: Path, gun: str) -> Path:
    """Where notary keeps a GUN's staged changes."""
    return trust_dir / "tuf" / gun / "changelist"


def read_changelist(trust_dir: Path, gun: str) -> list[tuple[str, bytes]]:
    """The change files of `gun`, in the lexical order notary applies them."""
    folder = changelist_dir(trust_dir, gun)
    if not folder.is_dir():
        raise InputRejected(
            f"There is no notary changelist for {gun} under {trust_dir}: pass the notary trust "
            "directory (-d) the changes were staged in."
        )
    return [
        (p.name, read_input(p, "notary change file", listed=True))
        for p in sorted(folder.glob("*.change"))
    ]


def _refuse(name: str, what: str) -> InputRejected:
    return InputRejected(f"The notary change {name} {what}, which cannot be imported; {_ADVICE}.")


def canonical_custom(value: Any, where: str) -> RawJSON:
    """Custom target data in the canonical (sorted) form Notary can verify (notary-formats.md §2.3)."""
    if not isinstance(value, dict):
        raise InputRejected(f"The custom data of {where} must be a JSON object.")
    try:
        text = encode_canonical(value)
    except ValueError as exc:
        raise InputRejected(
            f"The custom data of {where} cannot be canonical JSON ({exc})."
        ) from exc
    decoded = text.decode("utf-8")
    if any(ch in decoded for ch in _HTML_UNSAFE):
        raise InputRejected(
            f"The custom data of {where} holds <, >, & or a line separator, which Notary "
            "clients cannot verify; remove them."
        )
    return RawJSON(parse_json(text, what="custom data"))


def _decode_data(name: str, data: Any) -> Any:
    if data is None:
        return None
    if not isinstance(data, str):
        raise _refuse(name, "has a malformed data field")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise _refuse(name, "has data that is not base64") from None
    try:
        return parse_json(raw, what=f"notary change {name}")
    except MalformedInput:
        raise _refuse(name, "holds data that is not valid JSON") from None


@dataclass
class _Pending:
    """A delegation being assembled from its keys change and its paths change."""

    role: str
    first_file: str
    keys: list[Key] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    threshold: int = 1
    has_keys: bool = False
    has_paths: bool = False


def translate(files: Sequence[tuple[str, bytes]], now: datetime) -> list[Change]:
    """Our changes for notary's change files (name, bytes), in order; all or nothing."""
    if not files:
        raise InputRejected("The notary changelist is empty: there is nothing to import.")
    slots: list[Change | _Pending] = []
    open_roles: dict[str, _Pending] = {}
    for name, blob in files:
        doc = parse_json(blob, what=f"notary change {name}")
        if not isinstance(doc, dict) or set(doc) != {"action", "role", "type", "path", "data"}:
            raise _refuse(name, "is not a notary change")
        action, role, kind, path = doc["action"], doc["role"], doc["type"], doc["path"]
        if not all(isinstance(v, str) for v in (action, role, kind, path)):
            raise _refuse(name, "is not a notary change")
        if role != "targets" and not is_delegation_name(role):
            raise _refuse(name, f"changes the {role!r} role")
        data = _decode_data(name, doc["data"])
        if kind == "target":
            slots.append(_target(name, action, role, path, data))
        elif kind == "witness":
            if action != "update":
                raise _refuse(name, f"is a witness with action {action!r}")
            slots.append(SetExpiry(role, default_expiry(role, now)))
        elif kind == "delegation":
            if role == "targets":
                raise _refuse(name, "changes the delegations of every role (a key purge)")
            if action == "delete":
                open_roles.pop(role, None)
                slots.append(RemoveDelegation(role))
            elif action == "create":
                pending = open_roles.get(role)
                if pending is None:
                    pending = _Pending(role, name)
                    open_roles[role] = pending
                    slots.append(pending)
                _delegation(name, pending, data)
            else:
                raise _refuse(name, f"{_update_kind(data)} of {role}")
        else:
            raise _refuse(name, f"is a {kind!r} change (such as a base role key change)")
    changes: list[Change] = []
    for slot in slots:
        if isinstance(slot, _Pending):
            if slot.threshold != 1:
                raise _refuse(
                    slot.first_file,
                    f"gives {slot.role} threshold {slot.threshold} (set a threshold with "
                    "`ceremony-online delegation add --threshold`)",
                )
            paths = tuple(dict.fromkeys(slot.paths))
            try:
                changes.append(
                    UpdateDelegation(
                        slot.role,
                        add_keys=tuple(dict.fromkeys(slot.keys)),
                        add_paths=paths,
                        paths_if_new=paths if slot.has_keys and slot.has_paths else None,
                    )
                )
            except CeremonyError as exc:
                raise _refuse(slot.first_file, f"is unusable ({exc.message.rstrip('.')})") from exc
        else:
            changes.append(slot)
    return changes


def _target(name: str, action: str, role: str, path: str, data: Any) -> Change:
    if not path:
        raise _refuse(name, "names no target")
    if action == "delete":
        return RemoveTarget(role, path)
    if action != "create" or not isinstance(data, dict):
        raise _refuse(name, f"is a target change with action {action!r}")
    custom = data.pop("custom", None)
    try:
        meta = FileMeta.from_dict(data, f"the notary change {name}")
    except CeremonyError as exc:
        raise _refuse(name, f"has unusable target data ({exc.message.rstrip('.')})") from exc
    if meta.unrecognized or "sha256" not in meta.hashes:
        raise _refuse(name, "has target data without a sha256 or with unknown fields")
    if custom is not None:
        try:
            canonical = canonical_custom(custom, f"target {path!r}")
        except InputRejected as exc:
            raise _refuse(name, f"has unusable custom data ({exc.message.rstrip('.')})") from exc
        meta = FileMeta(meta.length, meta.hashes, canonical)
    return AddTarget(role, path, meta)


def _update_kind(data: Any) -> str:
    fields = sorted(data) if isinstance(data, Mapping) else []
    words = {
        "remove_keys": "removes keys",
        "remove_paths": "removes paths",
        "clear_paths": "clears the paths",
        "new_name": "renames a delegation",
    }
    for f in fields:
        if f in words:
            return words[f]
    return "updates a delegation"


def _delegation(name: str, pending: _Pending, data: Any) -> None:
    if not isinstance(data, dict):
        raise _refuse(name, "creates a delegation without data")
    allowed = {"add_keys", "threshold", "add_paths"}
    extra = {k for k, v in data.items() if v not in (None, [], False, 0, "")} - allowed
    if extra:
        raise _refuse(name, f"{_update_kind(dict.fromkeys(extra))} of {pending.role}")
    keys = data.get("add_keys") or []
    paths = data.get("add_paths") or []
    if not isinstance(keys, list) or not isinstance(paths, list):
        raise _refuse(name, "has malformed delegation data")
    if keys:
        try:
            pending.keys.extend(Key.from_dict(k, f"key in notary change {name}") for k in keys)
        except CeremonyError as exc:
            raise _refuse(name, f"holds an unusable key ({exc.message.rstrip('.')})") from exc
        threshold = data.get("threshold", 1)
        if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 0:
            raise _refuse(name, "has a malformed threshold")
        pending.threshold = max(pending.threshold, threshold or 1)
        pending.has_keys = True
    if paths:
        if not all(isinstance(p, str) for p in paths):
            raise _refuse(name, "has malformed delegation paths")
        pending.paths.extend(paths)
        pending.has_paths = True
    if not keys and not paths:
        raise _refuse(name, f"creates {pending.role} with neither keys nor paths")
