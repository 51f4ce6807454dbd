"""The online half's decisions, as pure functions: bytes, changes and `now` in; values out.

- `build_request`: from the verified files the server serves and the staged
  changes, choose the base (every root version, so an offline machine can chain
  from any root it trusts, plus each role the changes read), add the default
  expiry of every role the changes touch (`plan` never picks one), plan, and
  build the request.
- At publish time: re-plan the stored request, check each signature against the
  planned bytes and the keys that must sign, check thresholds, check the server
  has not moved since export, assemble the upload, and check that the server now
  serves exactly what was uploaded.

Nothing here does I/O or reads a clock; `online.operations` is the edge.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ceremony.core.changes import (
    Change,
    SetExpiry,
    SetVersion,
    roles_read,
    touched_roles,
)
from ceremony.core.documents import BaseFile, Expectation, Request
from ceremony.core.errors import CeremonyError, VerificationFailed
from ceremony.core.gotime import GoTime
from ceremony.core.keys import canonical_key_id, verify_signature
from ceremony.core.metadata import Body, Envelope, Key, Signature, parse_any, role_order
from ceremony.core.plan import Plan, RolePlan, plan

ROOT_EXPIRY = timedelta(days=10 * 365)  # Notary's defaults, in 365-day years (§2.4)
TARGETS_EXPIRY = timedelta(days=3 * 365)
EXPIRY_WARNING = timedelta(days=90)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def default_expiry(role: str, now: datetime) -> GoTime:
    """Notary's default expiry for a role signed offline: root 10 years, others 3."""
    return GoTime.from_datetime(now + (ROOT_EXPIRY if role == "root" else TARGETS_EXPIRY))


def with_default_expiries(changes: Sequence[Change], now: datetime) -> tuple[Change, ...]:
    """The changes plus a `SetExpiry` (the default) for every touched role that lacks one."""
    explicit = {c.role for c in changes if isinstance(c, SetExpiry)}
    extra = [
        SetExpiry(role, default_expiry(role, now))
        for role in touched_roles(changes)
        if role not in explicit
    ]
    return (*changes, *extra)


def base_file(role: str, env: Envelope[Any]) -> BaseFile:
    """A base entry for a file as served (parsed once, with its bytes)."""
    return BaseFile(
        role,
        env.body.version,
        _sha256(env.raw),
        _sha256(env.signed_map_bytes),
        env.signatures,
        env.raw,
    )


SERVER_ROLES = ("snapshot", "timestamp")


def choose_base(
    files: Mapping[str, Envelope[Any]], changes: Sequence[Change]
) -> tuple[BaseFile, ...]:
    """Every root (`root`, `N.root`), every targets role served, and the server's snapshot
    and timestamp (so the offline half can check that the files belong together)."""
    roots = [base_file("root", env) for name, env in files.items() if _is_root_name(name)]
    roots.sort(key=lambda b: b.version)
    # Every targets role served, not only those the changes read: the offline half then
    # sees any version it signed that was never published, whatever this request touches.
    served = {name for name in files if not _is_root_name(name) and name not in SERVER_ROLES}
    needed = sorted(served | (roles_read(changes) - {"root"}) & set(files), key=role_order)
    server = [base_file(role, files[role]) for role in SERVER_ROLES if role in files]
    return (*roots, *(base_file(role, files[role]) for role in needed), *server)


def _is_root_name(name: str) -> bool:
    head, _, tail = name.partition(".")
    return name == "root" or (tail == "root" and head.isdigit())


def newest_base(base: Sequence[BaseFile]) -> dict[str, BaseFile]:
    """The newest base file of each role (older roots are only there for chaining)."""
    out: dict[str, BaseFile] = {}
    for b in base:
        if b.role not in out or b.version > out[b.role].version:
            out[b.role] = b
    return out


def base_envelopes(base: Sequence[BaseFile]) -> dict[str, Envelope[Any]]:
    """The newest base file of each targets role, parsed once (with its bytes); needs a full
    (not thin) base."""
    out: dict[str, Envelope[Any]] = {}
    for role, b in newest_base(base).items():
        if role in SERVER_ROLES:
            continue
        if b.data is None:
            raise VerificationFailed(
                "The stored request lacks its base files: re-export it from this home."
            )
        out[role] = parse_any(b.data, what=f"{role} metadata")
    return out


def build_request(
    *,
    gun: str,
    files: Mapping[str, Envelope[Any]] | None,
    changes: Sequence[Change],
    now: datetime,
    nonce: str,
    exported: Mapping[str, int] | None = None,
) -> tuple[Request, Plan]:
    """The request for `changes` on the repository `files` (None: it does not exist yet).

    `exported` is the newest version of each role in any request exported
    before: a targets role is signed past it, so a keyholder who signed an
    abandoned request is never asked to sign another body at the same version.
    Root cannot skip a version; the offline review asks to acknowledge that.
    """
    full = with_default_expiries(changes, now)
    base = choose_base(files, full) if files is not None else ()
    bodies: dict[str, Body] = {
        role: files[role].body  # parsed once, as fetched
        for role in newest_base(base)
        if files is not None and role not in SERVER_ROLES
    }
    floor = exported or {}
    skips = [
        SetVersion(role, floor[role] + 1)
        for role in touched_roles(full)
        if role != "root" and (bodies[role].version if role in bodies else 0) < floor.get(role, 0)
    ]
    full = (*full, *skips)
    result = plan(bodies, full)  # each change keeps its own JSON: nothing encoded twice
    request = Request.build(
        gun=gun,
        created=GoTime.from_datetime(now),
        nonce=nonce,
        base=base,
        changes=full,
        plan=result,
    )
    return request, result


@dataclass(frozen=True, slots=True)
class Planned:
    """A plan with each role's signed bytes computed once (megabytes for large target sets),
    and the base files it was planned from (parsed once, with their bytes)."""

    plan: Plan
    messages: Mapping[str, bytes]
    base: Mapping[str, Envelope[Any]] = field(default_factory=dict)
    verified: dict[tuple[str, Signature], bool] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, result: Plan, base: Mapping[str, Envelope[Any]] | None = None) -> Planned:
        messages = {role: rp.signed_bytes for role, rp in result.roles.items()}
        return cls(result, messages, base or {})

    def valid(self, role: str, key: Key, signature: Signature) -> bool:
        """Whether `signature` by `key` verifies over the role's planned bytes (checked once)."""
        memo = (role, signature)
        if memo not in self.verified:
            self.verified[memo] = verify_signature(key, signature, self.messages[role])
        return self.verified[memo]

    @property
    def roles(self) -> Mapping[str, RolePlan]:
        return self.plan.roles


def replan(request: Request) -> Planned:
    """Re-derive the stored request's plan and check it still asks for the same bytes."""
    base = base_envelopes(request.base)
    result = plan({role: env.body for role, env in base.items()}, request.changes)
    if Expectation.from_plan(result) != request.expect:
        raise VerificationFailed(
            f"Request {request.id} no longer plans to the bytes it asked to sign "
            "(the software changed since export): export it again."
        )
    return Planned.of(result, base)


# ---------------------------------------------------------------------------
# signatures and thresholds


def _signer_keys(rp: RolePlan) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    for signer_set in rp.signers:
        keys.update(signer_set.keys)
    return keys


def check_signatures(result: Planned, signatures: Mapping[str, Sequence[Signature]]) -> None:
    """Every signature must be by a key that signs its role, over exactly the planned bytes."""
    for role, sigs in signatures.items():
        rp = result.roles.get(role)
        if rp is None:
            raise VerificationFailed(
                f"The signatures sign {role}, which this request does not change."
            )
        keys = _signer_keys(rp)
        for sig in sigs:
            key = keys.get(sig.keyid)
            if key is None:
                raise VerificationFailed(
                    f"Key {sig.keyid} signed {role} but is not one of the keys that sign it "
                    f"({', '.join(k for k in sorted(keys))}); that signatures document was not kept."
                )
            if not result.valid(role, key, sig):
                raise VerificationFailed(
                    f"The signature by key {sig.keyid} on {role} does not verify over the "
                    "requested bytes; that signatures document was not kept."
                )


@dataclass(frozen=True, slots=True)
class SetProgress:
    """How far one signer set of a role is: `have` of `threshold` from `keyids`."""

    role: str
    label: str  # "" or "previous root keys"
    have: int
    threshold: int
    keyids: tuple[str, ...]
    missing: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return self.have >= self.threshold


def shown_key_id(key: Key) -> str:
    """The one id people see for a key: Notary's canonical key id (`notary key list`, the key
    file's name), the same for a root key in every repository and for its certificate."""
    try:
        return canonical_key_id(key)
    except CeremonyError:
        return key.key_id


def progress(result: Planned, signatures: Mapping[str, Sequence[Signature]]) -> list[SetProgress]:
    """Per role and signer set, the valid distinct signatures collected so far."""
    out: list[SetProgress] = []
    for role in sorted(result.roles, key=role_order):
        rp = result.roles[role]
        for index, signer_set in enumerate(rp.signers):
            valid = {
                s.keyid
                for s in signatures.get(role, ())
                if s.keyid in signer_set.keys and result.valid(role, signer_set.keys[s.keyid], s)
            }
            ids = tuple(sorted(signer_set.keys))
            shown = {k: shown_key_id(signer_set.keys[k]) for k in ids}
            out.append(
                SetProgress(
                    role,
                    "previous root keys" if index else "",
                    len(valid),
                    signer_set.threshold,
                    tuple(shown[k] for k in ids),
                    tuple(shown[k] for k in ids if k not in valid),
                )
            )
    return out


def shortfall(sets: Sequence[SetProgress]) -> str | None:
    """None if every threshold is met, else what is still needed (part of one sentence)."""
    parts = []
    for p in sets:
        if p.complete:
            continue
        need = p.threshold - p.have
        plural = "s" if need > 1 else ""
        scope = f" by the {p.label}" if p.label else ""
        parts.append(
            f"{p.role} needs {need} more signature{plural}{scope}, from one of: "
            + ", ".join(k for k in p.missing)
        )
    return "; ".join(parts) if parts else None


# ---------------------------------------------------------------------------
# the server's state around the upload


def moved_since_export(request: Request, files: Mapping[str, Envelope[Any]] | None) -> list[str]:
    """What changed on the server since export, per base role (empty: nothing did)."""
    base = newest_base(request.base)
    roles = sorted((roles_read(request.changes) | set(base)) - set(SERVER_ROLES), key=role_order)
    out: list[str] = []
    for role in roles:
        expected = base.get(role)
        served = files.get(role) if files is not None else None
        if served is None and expected is None:
            continue
        if served is None:
            out.append(f"{role} is no longer served")
        elif expected is None:
            out.append(f"{role} now exists at v{served.body.version}")
        elif _sha256(served.raw) != expected.sha256:
            out.append(f"{role} is now v{served.body.version}")
    return out


def already_served(result: Planned, files: Mapping[str, Envelope[Any]] | None) -> bool:
    """Whether the server already serves the planned bodies of every role (an earlier upload)."""
    if files is None:
        return False
    for role, message in result.messages.items():
        served = files.get(role)
        if served is None or served.signed_map_bytes != message:
            return False
    return True


def upload_files(
    result: Planned, signatures: Mapping[str, Sequence[Signature]]
) -> dict[str, Envelope[Any]]:
    """The envelopes to POST (`.raw`): root first, then targets, then delegations (never
    snapshot/timestamp)."""
    out: dict[str, Envelope[Any]] = {}
    for role in sorted(result.roles, key=role_order):
        rp = result.roles[role]
        keys = _signer_keys(rp)
        sigs = tuple(s for s in signatures.get(role, ()) if s.keyid in keys)
        message = result.messages[role]
        made: Envelope[Any] = Envelope(rp.body, sigs, message, _memo={"signed": message})
        out[role] = Envelope(rp.body, sigs, message, made.to_bytes(), _memo={"signed": message})
    return out


def check_served(
    uploaded: Mapping[str, Envelope[Any]], files: Mapping[str, Envelope[Any]] | None
) -> None:
    """The server must now serve every uploaded role with exactly the uploaded bytes."""
    for role, sent in uploaded.items():
        served = files.get(role) if files is not None else None
        if served is None or served.raw != sent.raw:
            raise VerificationFailed(
                f"The server accepted the update but does not serve the uploaded {role}: "
                "check the server, then run publish again (everything is kept)."
            )
