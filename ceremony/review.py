"""What the offline half does with a request: verify, recompute, compare, describe, sign.

`review_request` is pure: the request, the trust state, a way to look up bodies
this machine already holds, and the offline clock (used only for warnings: an
air-gapped clock is not trusted, and expiry dates are chosen online). It
verifies the base against the trust state, recomputes the new `signed` bodies
with the same `plan()` the online half used, refuses any difference from what
the request expects, and returns a readable diff. `sign_review` then signs
exactly the bytes computed here, verifying each signature as it is made.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from ceremony.bundles import (
    Expectation,
    Request,
    RoleSignatures,
    SignaturesDocument,
    sha256_hex,
)
from ceremony.canonical import parse_json
from ceremony.changes import InitRepository, Plan, plan
from ceremony.crypto import Signer, check_root_certificate, describe_key
from ceremony.errors import InputRejected, MalformedInput, VerificationFailed, printable
from ceremony.gotime import GoTime
from ceremony.metadata import (
    Body,
    Envelope,
    FileMeta,
    Key,
    Root,
    Targets,
    body_bytes,
    parent_role,
    parse_envelope,
    role_type,
)
from ceremony.trust import SignedRecord, TrustState
from ceremony.verify import verify_root, verify_threshold

SOON = timedelta(days=90)


@dataclass(frozen=True, slots=True)
class RoleDiff:
    """The readable change of one role."""

    role: str
    old_version: int | None
    new_version: int
    old_expires: str | None
    new_expires: str
    expiry_note: str
    lines: tuple[str, ...]
    signers: tuple[str, ...]  # one line per signer set


@dataclass(frozen=True, slots=True)
class ReviewResult:
    request: Request
    plan: Plan
    root: Envelope[Root]  # the newest root the base reaches (for init: the new root, unsigned)
    first_contact: str | None  # None, "init" or "tofu"
    trusted_root_version: int | None  # the root this machine held before this request
    root_fingerprints: tuple[str, ...]  # certificate SHA-256 of the root keys the trust starts from
    known_bodies: tuple[bytes, ...]  # bodies verified here, to remember
    versions: Mapping[str, int]  # base versions verified
    diffs: tuple[RoleDiff, ...]
    warnings: tuple[str, ...]


def _reject(reason: str) -> VerificationFailed:
    return VerificationFailed(reason)


def _load_base(
    request: Request, lookup: Callable[[str], bytes | None]
) -> tuple[list[tuple[int, Envelope[Root], bool]], dict[str, tuple[Envelope[Any], bool]]]:
    """Parse full base files and resolve thin ones from known bodies. bool = already known here."""
    roots: list[tuple[int, Envelope[Root], bool]] = []
    others: dict[str, tuple[Envelope[Any], bool]] = {}
    lacking: list[str] = []
    for entry in request.base:
        kind: Any = role_type(entry.role)
        if entry.data is not None:
            env: Envelope[Any] = parse_envelope(
                entry.data, kind, what=f"base {entry.role} metadata"
            )
            known = False
            if env.to_bytes() != entry.data:
                raise _reject(
                    f"The request's base {entry.role} is not in the exact form Notary writes; "
                    "export it again."
                )
            if sha256_hex(env.signed_map_bytes) != entry.body_sha256:
                raise _reject(
                    f"The request's base {entry.role} does not match its recorded body digest; export it again."
                )
        else:
            data = lookup(entry.body_sha256)
            if data is None:
                lacking.append(f"{entry.role} v{entry.version} ({entry.body_sha256[:12]})")
                continue
            env = Envelope(
                kind.from_dict(parse_json(data, what="stored body"), entry.role), (), data
            )
            known = True
        if env.body.version != entry.version:
            raise _reject(
                f"The request's base {entry.role} is not the version it claims; export it again."
            )
        if entry.role == "root":
            roots.append((env.body.version, env, known))
        elif entry.role in others:
            raise _reject(f"The request's base lists {entry.role} twice.")
        else:
            others[entry.role] = (env, known)
    if lacking:
        raise InputRejected(
            "This thin request refers to metadata this machine does not hold: "
            + ", ".join(lacking)
            + "; export a full request (without --thin)."
        )
    roots.sort(key=lambda r: r[0])
    return roots, others


def _root_chain(
    request: Request,
    state: TrustState | None,
    roots: list[tuple[int, Envelope[Root], bool]],
    now: datetime,
) -> tuple[Envelope[Root], str | None, tuple[str, ...]]:
    gun = request.gun
    current = state.root if state is not None else None
    first_contact: str | None = None
    fingerprints: tuple[str, ...] = ()
    for version, env, known in roots:
        if current is not None and version <= current.body.version:
            if (
                version == current.body.version
                and not known
                and env.signed_map_bytes != current.signed_map_bytes
            ):
                raise _reject(
                    f"The request's root v{version} differs from the root v{version} this machine trusts "
                    "for this GUN: it does not chain to the trust state; do not sign it."
                )
            continue
        if current is None:
            verify_root(env, gun, now, None, check_time=False)
            first_contact = "tofu"
            fingerprints = _fingerprints(env.body)
        elif known:
            pass  # a root body this machine itself verified or signed earlier
        else:
            if version != current.body.version + 1:
                raise _reject(
                    f"The request's roots skip from v{current.body.version} to v{version}; export it again."
                )
            try:
                verify_root(env, gun, now, current, check_time=False)
            except VerificationFailed as exc:
                raise _reject(
                    f"The request's root v{version} does not chain to the root v{current.body.version} "
                    f"this machine trusts ({exc.message.rstrip('.')}); do not sign it."
                ) from exc
        current = env
    if current is None:
        raise InputRejected(
            f"This machine has no trust state for {gun} and the request carries no root; "
            "export a full request or initialise the repository from this machine."
        )
    if state is not None and current is state.root:
        fingerprints = _fingerprints(current.body)
    elif first_contact == "tofu":
        # The oldest root is trusted on first use and the chain from it is verified; an
        # operator's record may hold either that root's certificate or the current one's.
        fingerprints = tuple(dict.fromkeys((*fingerprints, *_fingerprints(current.body))))
    return current, first_contact, fingerprints


def _fingerprints(root: Root) -> tuple[str, ...]:
    out = []
    for kid in root.roles["root"].keyids:
        d = describe_key(root.keys[kid])
        out.append(d.fingerprint or d.canonical_id)
    return tuple(out)


def review_request(
    request: Request, state: TrustState | None, lookup: Callable[[str], bytes | None], now: datetime
) -> ReviewResult:
    """Verify a request against the trust state and recompute what it asks to sign."""
    gun = request.gun
    if state is not None and request.id in state.signed:
        rec = state.signed[request.id]
        raise InputRejected(
            f"Request {request.id[:12]} was already signed on this machine (request created {rec.created}); "
            "a request is signed once: export a new one."
        )
    init = any(isinstance(c, InitRepository) for c in request.changes)
    warnings: list[str] = []
    roots, others = _load_base(request, lookup)
    base: dict[str, Body] = {}
    known_bodies: list[bytes] = []
    versions: dict[str, int] = {}
    if init:
        if state is not None:
            raise InputRejected(
                f"{gun} is already initialised on this machine; an init request cannot be signed again."
            )
        if request.base:
            raise MalformedInput("An init request must not carry a base.")
        first_contact: str | None = "init"
        fingerprints: tuple[str, ...] = ()
        root_env: Envelope[Root] | None = None
    else:
        root_env, first_contact, fingerprints = _root_chain(request, state, roots, now)
        base["root"] = root_env.body
        versions["root"] = root_env.body.version
        known_bodies.extend(e.signed_map_bytes for _, e, _k in roots)
        # Targets roles, shallowest first: each verified by its (new) parent.
        for role in sorted(others, key=lambda r: r.count("/")):
            env, known = others[role]
            if not known:
                if role == "targets":
                    spec = root_env.body.roles["targets"]
                    verify_threshold(
                        env,
                        root_env.body.keys,
                        spec.keyids,
                        spec.threshold,
                        "the request's base targets",
                    )
                else:
                    parent = base.get(parent_role(role))
                    if not isinstance(parent, Targets):
                        raise _reject(f"The request's base has {role} but not its parent.")
                    d = parent.delegations.role(role)
                    if d is None:
                        raise _reject(
                            f"The request's base has {role}, which its parent does not delegate."
                        )
                    verify_threshold(
                        env,
                        parent.delegations.keys,
                        d.keyids,
                        d.threshold,
                        f"the request's base {role}",
                    )
            base[role] = env.body
            versions[role] = env.body.version
            known_bodies.append(env.signed_map_bytes)
        if state is not None:
            for role, version in versions.items():
                trusted = state.versions.get(role, 0)
                if version < trusted:
                    raise InputRejected(
                        f"The request builds on {role} v{version}, older than v{trusted} which this machine "
                        "already trusts: it is stale or replayed; export a new request."
                    )
    computed = plan(base, request.changes)
    if init:
        new_root = computed.roles["root"].body
        if not isinstance(new_root, Root):
            raise _reject("The init request does not create a root.")
        for kid in new_root.roles["root"].keyids:
            reason = check_root_certificate(new_root.keys[kid], gun, None)
            if reason is not None:
                raise _reject(f"The new root key {kid[:12]} is not valid for {gun}: {reason}.")
        root_env = Envelope.create(new_root)
        fingerprints = _fingerprints(new_root)
    assert root_env is not None  # noqa: S101 - both branches set it
    _compare(request, computed)
    diffs = tuple(
        _diff(rp.role, base.get(rp.role), rp.body, computed, now) for rp in computed.roles.values()
    )
    warnings.extend(
        f"{d.role}: {d.expiry_note}" for d in diffs if d.expiry_note.startswith(("ALREADY", "soon"))
    )
    return ReviewResult(
        request,
        computed,
        root_env,
        first_contact,
        state.root.body.version if state is not None else None,
        fingerprints,
        tuple(known_bodies),
        versions,
        diffs,
        tuple(warnings),
    )


def _compare(request: Request, computed: Plan) -> None:
    got = {e.role: e for e in Expectation.from_plan(computed)}
    want = {e.role: e for e in request.expect}
    if set(got) != set(want):
        raise _reject(
            f"The request asks to sign {sorted(want)} but its changes touch {sorted(got)}: "
            "it was altered or built from other data; export it again."
        )
    for role, g in got.items():
        w = want[role]
        if g != w:
            raise _reject(
                f"The request expects {role} v{w.version} with digest {w.digest[:16]}, but its changes applied to "
                f"the verified base give v{g.version} with digest {g.digest[:16]}: it was altered or built from "
                "other data; export it again."
            )


def _expiry_note(expires: GoTime, now: datetime) -> str:
    when = expires.to_datetime()
    if when <= now:
        return "ALREADY EXPIRED by this machine's clock"
    left = when - now
    if left < SOON:
        return f"soon: expires in {left.days} days by this machine's clock"
    return f"in {left.days / 365:.1f} years by this machine's clock"


def _meta_line(sign: str, name: str, meta: FileMeta) -> str:
    line = f"{sign} {printable(name)}  length {meta.length}  sha256 {meta.sha256_hex}"
    if meta.custom is not None:
        line += "  (custom data)"
    return line


def _key_lines(sign: str, keys: Mapping[str, Key], ids: list[str]) -> list[str]:
    return [f"{sign} key {describe_key(keys[k]).summary()}" for k in ids]


def _diff(role: str, old: Body | None, new: Body, computed: Plan, now: datetime) -> RoleDiff:
    lines: list[str] = []
    if isinstance(new, Targets):
        old_t = old if isinstance(old, Targets) else Targets(new.expires, 0)
        for name in sorted(set(old_t.targets) | set(new.targets)):
            a, b = old_t.targets.get(name), new.targets.get(name)
            if a is None and b is not None:
                lines.append(_meta_line("+ target", name, b))
            elif b is None and a is not None:
                lines.append(_meta_line("- target", name, a))
            elif a is not None and b is not None and a != b:
                lines.append(_meta_line("- target", name, a))
                lines.append(_meta_line("+ target", name, b))
        old_roles = {r.name: r for r in old_t.delegations.roles}
        for r in new.delegations.roles:
            prev_role = old_roles.pop(r.name, None)
            if prev_role == r:
                continue
            verb = "+ delegation" if prev_role is None else "~ delegation"
            paths = ", ".join(repr(p) if p else "(all paths)" for p in r.paths) or "(no paths)"
            lines.append(f"{verb} {r.name}  threshold {r.threshold}  paths {printable(paths)}")
            lines.extend(_key_lines("    ", new.delegations.keys, list(r.keyids)))
        lines.extend(f"- delegation {name}" for name in old_roles)
    elif isinstance(new, Root):
        old_r = old if isinstance(old, Root) else None
        for rname, spec in sorted(new.roles.items()):
            prev = old_r.roles.get(rname) if old_r is not None else None
            if prev == spec:
                continue
            lines.append(f"~ role {rname}: threshold {spec.threshold}")
            old_ids = set(prev.keyids) if prev is not None else set()
            lines.extend(_key_lines("  + ", new.keys, [k for k in spec.keyids if k not in old_ids]))
            if prev is not None and old_r is not None:
                lines.extend(
                    _key_lines("  - ", old_r.keys, [k for k in prev.keyids if k not in spec.keyids])
                )
    if not lines:
        lines.append("(content unchanged: re-signed with a new version and expiry)")
    rp = computed.roles[role]
    signers = tuple(
        f"{s.threshold} of {len(s.keys)}: " + ", ".join(sorted(s.keys)) for s in rp.signers
    )
    return RoleDiff(
        role,
        old.version if old is not None else None,
        new.version,
        old.expires.format() if old is not None else None,
        new.expires.format(),
        _expiry_note(new.expires, now),
        tuple(lines),
        signers,
    )


@dataclass(frozen=True, slots=True)
class SigningOutcome:
    document: SignaturesDocument
    state: TrustState
    bodies: tuple[bytes, ...]  # to store with the state
    unsigned_roles: tuple[str, ...]  # roles this machine holds no key for


def sign_review(
    result: ReviewResult,
    signer_for: Callable[[Key], Signer | None],
    state: TrustState | None,
) -> SigningOutcome:
    """Sign the bytes `review_request` computed with every key this machine holds for them."""
    request = result.request
    roles: list[RoleSignatures] = []
    unsigned: list[str] = []
    needed: list[str] = []
    for rp in result.plan.roles.values():
        made: dict[str, Any] = {}
        data = rp.signed_bytes
        for signer_set in rp.signers:
            for kid, key in sorted(signer_set.keys.items()):
                if kid in made:
                    continue
                signer = signer_for(key)
                if signer is not None:
                    made[kid] = signer.sign(data)
            needed.extend(k[:12] for k in signer_set.keys)
        if made:
            roles.append(RoleSignatures(rp.role, rp.digest, tuple(made[k] for k in sorted(made))))
        else:
            unsigned.append(rp.role)
    if not roles:
        raise InputRejected(
            "This machine holds none of the keys this request needs ("
            + ", ".join(sorted(set(needed)))
            + "); import the right key or use the keyholder's machine."
        )
    document = SignaturesDocument(request.id, request.digest, request.gun, tuple(roles))
    new_bodies = tuple(body_bytes(rp.body) for rp in result.plan.roles.values())
    record = SignedRecord(
        request.id,
        request.digest,
        request.created,
        {rp.role: (rp.body.version, rp.digest) for rp in result.plan.roles.values()},
    )
    if state is None:
        root = result.root
        if result.first_contact == "init":
            root_sigs = next((r.signatures for r in roles if r.role == "root"), ())
            root = root.with_signatures(root_sigs)
        new_state = TrustState(request.gun, root, dict(result.versions), {request.id: record})
    else:
        versions = dict(state.versions)
        for role, v in result.versions.items():
            versions[role] = max(v, versions.get(role, 0))
        signed = dict(state.signed)
        signed[request.id] = record
        root = result.root if result.root.body.version > state.root.body.version else state.root
        new_state = replace(state, root=root, versions=versions, signed=signed)
    return SigningOutcome(document, new_state, result.known_bodies + new_bodies, tuple(unsigned))
