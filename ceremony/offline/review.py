"""What the offline half does with a request: verify, recompute, compare, describe, sign.

`review_request` is pure: the request, the trust state, a way to look up bodies
this machine already holds, which keys it holds, its signing policy and the
offline clock (used only for warnings and the policy: an air-gapped clock is
not trusted, and expiry dates are chosen online). It

1. verifies the base against the trust state: the root chain from the root
   held here, each targets role by its parent, the server's snapshot and
   timestamp over exactly those files (mix-and-match), and no base older than
   what this machine verified (rollback);
2. recomputes the new `signed` bodies with the same `plan()` the online half
   used and refuses any difference from what the request expects;
3. compares them with everything this machine signed: never two bodies for
   one role and version (equivocation), and a base older than what it signed
   means a request was abandoned or is being hidden;
4. describes the result: a summary, every line that changes who can sign
   (marked `!`), and the acknowledgements the operator must give by name
   (`Needed`): a key fingerprint for each key added that is not held here,
   the role for each change of who signs it, the request id of each request
   this one abandons.

`sign_review` then signs exactly the bytes computed here, verifying each
signature as it is made, and returns the new trust state to record before
the signatures are written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from ceremony.core.canonical import parse_json
from ceremony.core.changes import InitRepository, roles_read, touched_roles
from ceremony.core.documents import (
    Expectation,
    Request,
    RoleSignatures,
    SignaturesDocument,
    sha256_hex,
)
from ceremony.core.errors import (
    CeremonyError,
    InputRejected,
    MalformedInput,
    VerificationFailed,
    printable,
)
from ceremony.core.gotime import GoTime
from ceremony.core.keys import check_root_certificate, describe_key, verify_signature
from ceremony.core.metadata import (
    Body,
    Envelope,
    FileMeta,
    Key,
    Root,
    Snapshot,
    TargetFiles,
    Targets,
    Timestamp,
    is_delegation_name,
    parent_role,
    parse_envelope,
    role_order,
    role_type,
)
from ceremony.core.names import DISGUISE_NOTE, check_publishable, disguised, shown
from ceremony.core.plan import Plan, plan
from ceremony.core.verify import floors_to_reset, verify_root, verify_threshold
from ceremony.offline.policy import Policy
from ceremony.offline.trust import SignedRecord, SignedRole, TrustState
from ceremony.signing.signer import Signer

SOON = timedelta(days=90)
CUSTOM_SHOWN = 200  # characters of a target's custom data shown in the review
MIN_ACK_PREFIX = 16  # hex digits of a fingerprint an operator must type or pass

Holder = Callable[[Key], str | None]
"""Which role this machine holds a key's private half for (None: not held here)."""


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a role's detail; `bang` lines change who can sign something."""

    text: str
    bang: bool = False

    def render(self) -> str:
        return f"! {self.text}" if self.bang else f"  {self.text}"


@dataclass(frozen=True, slots=True)
class TargetsDiff:
    """Which targets a role adds, removes and changes. The lines are made when shown: a
    request can add 10⁶ targets, and the summary needs only the counts."""

    old: TargetFiles
    new: TargetFiles
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()

    @classmethod
    def between(cls, old: TargetFiles, new: TargetFiles) -> TargetsDiff:
        added, removed, changed = old.differences(new)
        for name in (*added, *changed):  # never sign a name the server would refuse
            check_publishable(name, "target name")
        return cls(old, new, tuple(sorted(added)), tuple(sorted(removed)), tuple(sorted(changed)))

    @property
    def line_count(self) -> int:
        return len(self.added) + len(self.removed) + 2 * len(self.changed)

    def lines(self) -> Iterator[Line]:
        """Every changed target in name order, each with every hash (Notary checks them all)."""
        for name in sorted((*self.added, *self.removed, *self.changed)):
            if name not in self.old:
                yield _meta_line("+", name, self.new[name])
            elif name not in self.new:
                yield _meta_line("-", name, self.old[name])
            else:
                yield _meta_line("- old", name, self.old[name])
                yield _meta_line("+ new", name, self.new[name])
            if disguised(name):
                yield Line(f"target {shown(name, 60)} {DISGUISE_NOTE}", True)


@dataclass(frozen=True, slots=True)
class RoleDiff:
    """The readable change of one role."""

    role: str
    old_version: int | None
    new_version: int
    old_expires: str | None
    new_expires: str
    expiry_note: str
    lines: tuple[Line, ...]  # everything but the targets: who signs, keys, paths
    signers: tuple[str, ...]  # one line per signer set
    targets: TargetsDiff | None = None

    def detail(self) -> Iterator[Line]:
        """The targets changed, then every other line (the review's detail of this role)."""
        if self.targets is not None:
            yield from self.targets.lines()
        yield from self.lines
        if not self.lines and (self.targets is None or not self.targets.line_count):
            yield Line("(content unchanged: re-signed with a new version and expiry)")

    @property
    def detail_count(self) -> int:
        count = len(self.lines) + (self.targets.line_count if self.targets else 0)
        return count or 1

    def summary(self) -> str:
        old = f"v{self.old_version}" if self.old_version is not None else "new"
        text = f"{self.role} {old} -> v{self.new_version}"
        t = self.targets
        if t is not None and (t.added or t.removed or t.changed):
            text += f": targets +{len(t.added)} -{len(t.removed)} ~{len(t.changed)}"
        bangs = sum(1 for line in self.lines if line.bang)
        if bangs:
            text += f"; {bangs} change(s) to who can sign"
        return f"{text}; expires {self.new_expires} ({self.expiry_note})"


@dataclass(frozen=True, slots=True)
class Needed:
    """An acknowledgement the operator must give by name before `sign` signs."""

    kind: str  # "key" (a fingerprint), "role" (a role name) or "abandon" (a request id)
    names: tuple[str, ...]  # any one of these acknowledges it (unless a quorum is set)
    why: str
    # First contact: satisfied when, for one of these roots, the confirmed fingerprints
    # include a threshold of the keys that validly signed it.
    quorum: tuple[tuple[tuple[str, ...], int], ...] = ()

    @property
    def flag(self) -> str:
        option = {"key": "--expect-key", "role": "--accept", "abandon": "--abandon"}[self.kind]
        return f"{option} {self.names[0]}"

    def satisfied_by(self, given: Acknowledgements) -> bool:
        if self.quorum:
            return any(
                sum(_fingerprint_given(fp, given.keys) for fp in signers) >= threshold
                for signers, threshold in self.quorum
            )
        if self.kind == "key":
            return any(_fingerprint_given(name, given.keys) for name in self.names)
        chosen = given.roles if self.kind == "role" else given.abandoned
        return any(name in chosen for name in self.names)


def normalise_fingerprint(text: str) -> str:
    return text.strip().lower().replace(":", "")


def _fingerprint_given(fingerprint: str, given: Sequence[str]) -> bool:
    return any(fingerprint.startswith(g) for g in given if len(g) >= MIN_ACK_PREFIX)


@dataclass(frozen=True, slots=True)
class Acknowledgements:
    """What the operator acknowledged by name: fingerprints, roles, abandoned request ids."""

    keys: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    abandoned: tuple[str, ...] = ()

    def names(self) -> tuple[str, ...]:
        return (
            *(f"key:{k}" for k in self.keys),
            *(f"role:{r}" for r in self.roles),
            *(f"abandon:{a}" for a in self.abandoned),
        )


@dataclass(frozen=True, slots=True)
class ReviewResult:
    request: Request
    plan: Plan
    root: Envelope[Root]  # the newest root the base reaches (for init: the new root, unsigned)
    first_contact: str | None  # None, "init" or "tofu"
    trusted_root_version: int | None  # the root this machine held before this request
    known_bodies: tuple[bytes, ...]  # bodies verified here, to remember
    versions: Mapping[str, int]  # base versions verified
    diffs: tuple[RoleDiff, ...]
    trust_lines: tuple[Line, ...]  # about the request as a whole (first contact, abandoned, ...)
    needed: tuple[Needed, ...]
    confirmable: frozenset[str]  # fingerprints an --expect-key may name
    warnings: tuple[str, ...]
    already: SignedRecord | None  # this request was signed here before
    policy_violations: tuple[str, ...] = ()
    base_timestamp: str | None = None  # "vN, expires T" of the base's timestamp
    root_keys: tuple[str, ...] = field(default=())  # labelled root keys of the new root
    signable: Mapping[str, tuple[Key, ...]] = field(default_factory=dict)  # held keys per role

    @property
    def bang_lines(self) -> tuple[str, ...]:
        """Every line that changes who can sign, in the order the review shows them."""
        lines = [line.text for line in self.trust_lines if line.bang]
        for d in self.diffs:
            lines.extend(f"{d.role}: {line.text}" for line in d.lines if line.bang)
        return tuple(lines)

    def missing(self, given: Acknowledgements) -> list[Needed]:
        return [n for n in self.needed if not n.satisfied_by(given)]

    def check_acknowledgements(self, given: Acknowledgements) -> None:
        """Refuse an acknowledgement that names nothing in this request (a typo or a wrong record)."""
        for fingerprint in given.keys:
            if len(fingerprint) < MIN_ACK_PREFIX or not all(
                c in "0123456789abcdef" for c in fingerprint
            ):
                raise InputRejected(
                    f"--expect-key {fingerprint!r} is not a key fingerprint: give at least "
                    f"{MIN_ACK_PREFIX} hex digits of the SHA-256 shown in the review."
                )
            if not any(fp.startswith(fingerprint) for fp in self.confirmable):
                raise InputRejected(
                    f"--expect-key {fingerprint} matches no key this request adds or trusts: "
                    "do not sign it; compare the fingerprints in the review with your record."
                )
        roles = {n for need in self.needed if need.kind == "role" for n in need.names}
        for role in given.roles:
            if role not in roles:
                raise InputRejected(
                    f"--accept {role}: this request does not change who signs {role}; "
                    "check the review before acknowledging anything."
                )
        abandoned = {n for need in self.needed if need.kind == "abandon" for n in need.names}
        for rid in given.abandoned:
            if rid not in abandoned:
                raise InputRejected(
                    f"--abandon {rid}: this request does not replace request {rid}; "
                    "check the review before acknowledging anything."
                )


def _reject(reason: str) -> VerificationFailed:
    return VerificationFailed(reason)


# ---------------------------------------------------------------------------
# the base


@dataclass(frozen=True, slots=True)
class _Base:
    roots: list[Envelope[Root]]  # oldest first
    roles: dict[str, Envelope[Any]]  # targets roles, snapshot and timestamp
    sha256: dict[str, str]  # role -> envelope sha256 (the newest root: "root")


def _load_base(request: Request, lookup: Callable[[str], bytes | None]) -> _Base:
    """Every base file, parsed: whole ones as sent, thin ones rebuilt from a body held here.

    A thin entry names a `signed` body by digest and carries its envelope's
    signatures; the file rebuilt from both must have the SHA-256 the entry
    claims (which the server's snapshot must record, for the roles it lists),
    and is then verified like a file sent whole. Nothing is trusted for being
    held here: a held body only saves sending it.
    """
    roots: list[Envelope[Root]] = []
    others: dict[str, Envelope[Any]] = {}
    sha: dict[str, str] = {}
    lacking: list[str] = []
    for entry in request.base:
        kind: Any = role_type(entry.role)
        what = f"base {entry.role} metadata"
        if entry.data is not None:
            env: Envelope[Any] = parse_envelope(entry.data, kind, what=what)
            if env.to_bytes() != entry.data:
                raise _reject(
                    f"The request's base {entry.role} is not in the exact form Notary writes; "
                    "export it again."
                )
        else:
            body = lookup(entry.body_sha256)
            if body is None:
                lacking.append(f"{entry.role} v{entry.version} ({entry.body_sha256[:12]})")
                continue
            env = Envelope(
                kind.from_dict(parse_json(body, what=what), what), entry.signatures, body
            )
            if sha256_hex(env.to_bytes()) != entry.sha256:
                raise _reject(
                    f"The request's thin base {entry.role} does not rebuild into the file it "
                    "names; do not sign it (export a full request to compare)."
                )
        if sha256_hex(env.signed_map_bytes) != entry.body_sha256:
            raise _reject(
                f"The request's base {entry.role} does not match its recorded body digest; "
                "export it again."
            )
        if env.signatures != entry.signatures:
            raise _reject(
                f"The request's base {entry.role} lists other signatures than its file; "
                "export it again."
            )
        if env.body.version != entry.version:
            raise _reject(
                f"The request's base {entry.role} is not the version it claims; export it again."
            )
        if entry.role == "root":
            if not roots or env.body.version >= roots[-1].body.version:
                sha["root"] = entry.sha256
            roots.append(env)
            roots.sort(key=lambda r: r.body.version)
        elif entry.role in others:
            raise _reject(f"The request's base lists {entry.role} twice.")
        else:
            others[entry.role] = env
            sha[entry.role] = entry.sha256
    if lacking:
        raise InputRejected(
            "This thin request refers to metadata this machine does not hold: "
            + ", ".join(lacking)
            + "; export a full request (without --thin)."
        )
    versions = [r.body.version for r in roots]
    if len(set(versions)) != len(versions):
        raise _reject("The request's base lists a root version twice.")
    return _Base(roots, others, sha)


def _root_chain(
    request: Request,
    state: TrustState | None,
    roots: list[Envelope[Root]],
    now: datetime,
) -> tuple[Envelope[Root], Envelope[Root] | None]:
    """The newest root the base reaches from the trusted one; and the root trusted on first use.

    Every root newer than the one held here is verified: signed by its
    predecessor's threshold and its own, one version at a time.
    """
    gun = request.gun
    current = state.root if state is not None else None
    tofu: Envelope[Root] | None = None
    for env in roots:
        version = env.body.version
        if current is not None and version <= current.body.version:
            if version == current.body.version and env.signed_map_bytes != current.signed_map_bytes:
                raise _reject(
                    f"The request's root v{version} differs from the root v{version} this machine "
                    "trusts for this GUN: it does not chain to the trust state; do not sign it."
                )
            continue
        if current is None:
            verify_root(env, gun, now, None, check_time=False)
            tofu = env
        else:
            if version != current.body.version + 1:
                raise _reject(
                    f"The request's roots skip from v{current.body.version} to v{version}; "
                    "export it again."
                )
            try:
                verify_root(env, gun, now, current, check_time=False)
            except VerificationFailed as exc:
                raise _reject(
                    f"The request's root v{version} does not chain to the root "
                    f"v{current.body.version} this machine trusts "
                    f"({exc.message.rstrip('.')}); do not sign it."
                ) from exc
        current = env
    if current is None:
        raise InputRejected(
            f"This machine has no trust state for {gun} and the request carries no root; "
            "export a full request or initialise the repository from this machine."
        )
    return current, tofu


def _verify_targets_roles(others: Mapping[str, Envelope[Any]], root: Root) -> dict[str, Body]:
    """Each targets role verified by its parent, shallowest first."""
    bodies: dict[str, Body] = {}
    roles = [r for r in others if r not in ("snapshot", "timestamp")]
    for role in sorted(roles, key=role_order):
        env = others[role]
        if role == "targets":
            spec = root.roles["targets"]
            verify_threshold(
                env, root.keys, spec.keyids, spec.threshold, "the request's base targets"
            )
        else:
            parent = bodies.get(parent_role(role))
            if not isinstance(parent, Targets):
                raise _reject(f"The request's base has {role} but not its parent.")
            d = parent.delegations.role(role)
            if d is None:
                raise _reject(f"The request's base has {role}, which its parent does not delegate.")
            verify_threshold(
                env, parent.delegations.keys, d.keyids, d.threshold, f"the request's base {role}"
            )
        bodies[role] = env.body
    return bodies


def _verify_server_roles(base: _Base, root: Root) -> tuple[Timestamp, Snapshot]:
    """The base's timestamp and snapshot are signed by the server's keys in the verified root,
    and record exactly the base files: a base mixed from several states is refused."""
    missing = [r for r in ("timestamp", "snapshot") if r not in base.roles]
    if missing:
        raise _reject(
            f"The request's base lacks the server's {' and '.join(missing)}, so this machine "
            "cannot check that its files belong together; export it again."
        )
    bodies: dict[str, Any] = {}
    for role in ("timestamp", "snapshot"):
        env = base.roles[role]
        spec = root.roles[role]
        verify_threshold(env, root.keys, spec.keyids, spec.threshold, f"the request's base {role}")
        bodies[role] = env.body
    timestamp: Timestamp = bodies["timestamp"]
    snapshot: Snapshot = bodies["snapshot"]

    def recorded(meta: FileMeta | None, role: str, parent: str) -> None:
        digest = base.sha256.get(role)
        if meta is None or digest is None or meta.sha256_hex != digest:
            raise _reject(
                f"The request's base {role} is not the one its {parent} records: the base mixes "
                "metadata from different times; do not sign it."
            )

    recorded(timestamp.meta.get("snapshot"), "snapshot", "timestamp")
    recorded(snapshot.meta.get("root"), "root", "snapshot")
    for role in base.roles:
        if role not in ("snapshot", "timestamp"):
            recorded(snapshot.meta.get(role), role, "snapshot")
    return timestamp, snapshot


# ---------------------------------------------------------------------------
# the review


def review_request(
    request: Request,
    state: TrustState | None,
    lookup: Callable[[str], bytes | None],
    now: datetime,
    *,
    holder: Holder = lambda _key: None,
    policy: Policy | None = None,
) -> ReviewResult:
    """Verify a request against the trust state and recompute what it asks to sign."""
    gun = request.gun
    already = state.requests.get(request.id) if state is not None else None
    init = any(isinstance(c, InitRepository) for c in request.changes)
    warnings: list[str] = []
    trust_lines: list[Line] = []
    needed: list[Needed] = []
    confirmable: set[str] = set()
    base = _load_base(request, lookup)
    bodies: dict[str, Body] = {}
    known_bodies: list[bytes] = []
    versions: dict[str, int] = {}
    base_timestamp: str | None = None
    tofu: Envelope[Root] | None = None
    expired: list[tuple[str, GoTime]] = []
    if init:
        if state is not None and already is None:
            raise InputRejected(
                f"{gun} is already initialised on this machine; an init request cannot be signed "
                "for it again (after a re-initialisation, see `ceremony trust forget`)."
            )
        if request.base:
            raise MalformedInput("An init request must not carry a base.")
        first_contact: str | None = "init"
        root_env: Envelope[Root] | None = None
    else:
        root_env, tofu = _root_chain(request, state, base.roots, now)
        first_contact = "tofu" if tofu is not None else None
        bodies["root"] = root_env.body
        versions["root"] = root_env.body.version
        known_bodies.extend(e.signed_map_bytes for e in base.roots)
        bodies.update(_verify_targets_roles(base.roles, root_env.body))
        timestamp, snapshot = _verify_server_roles(base, root_env.body)
        base_timestamp = f"v{timestamp.version}, expires {timestamp.expires.format()}"
        _check_base_is_whole(request, bodies, snapshot, state)
        for role, env in base.roles.items():
            versions[role] = env.body.version
            known_bodies.append(env.signed_map_bytes)
        if state is not None and already is None:
            voided = floors_to_reset(state.root, root_env)  # fast-forward recovery (TUF)
            for role, version in versions.items():
                trusted = 0 if role in voided else state.versions.get(role, 0)
                if version < trusted:
                    raise InputRejected(
                        f"The request builds on {role} v{version}, older than v{trusted} which "
                        "this machine already verified: it is stale or replayed; export a new "
                        "request."
                    )
        for role, expires in (
            ("timestamp", timestamp.expires),
            ("snapshot", snapshot.expires),
            *((r, b.expires) for r, b in bodies.items()),
        ):
            if expires.before(now):
                expired.append((role, expires))
        created = _created(request)
        if (
            created is not None
            and timestamp.expires.before(created)
            and not timestamp.expires.before(now)
        ):
            # The offline clock lags the online one: judge the base by the request's own time.
            expired.append(("timestamp", timestamp.expires))
    computed = plan(bodies, request.changes)
    if init:
        new_root = computed.roles["root"].body
        if not isinstance(new_root, Root):
            raise _reject("The init request does not create a root.")
        root_env = Envelope.create(new_root)
    assert root_env is not None  # noqa: S101 - both branches set it
    _compare(request, computed)
    if already is not None:
        _check_same_bytes(already, computed)

    for rp in computed.roles.values():
        for name, spec in _signer_specs(rp.body).items():
            prints = [describe_key(k).fingerprint for k in spec.keys.values()]
            if len(set(prints)) != len(prints):
                raise _reject(
                    f"{name} would list one public key under two ids, so its threshold of "
                    f"{spec.threshold} would count that key twice; do not sign it."
                )
    diffs = tuple(
        _diff(rp.role, bodies.get(rp.role), rp.body, computed, now, holder, init)
        for rp in computed.roles.values()
    )
    # Keys: every key a re-signed role adds is confirmed unless held here; new root keys are
    # checked as at init; a role whose signers change is acknowledged by name.
    for rp in computed.roles.values():
        old = bodies.get(rp.role)
        for spec_role, added in _added_keys(old, rp.body, init).items():
            for key in added:
                description = describe_key(key)
                confirmable.add(description.fingerprint)
                if holder(key) is None:
                    needed.append(
                        Needed(
                            "key",
                            (description.fingerprint,),
                            f"key {description.fingerprint[:16]}… for {spec_role} is not held "
                            "here: compare its fingerprint with your record",
                        )
                    )
        if not init:
            needed.extend(
                Needed("role", (spec_role,), f"this request changes who signs {spec_role}")
                for spec_role in _roles_with_new_signers(old, rp.body)
            )
    new_root_body = computed.roles["root"].body if "root" in computed.roles else None
    root_keys: list[str] = []
    if isinstance(new_root_body, Root):
        for kid in new_root_body.roles["root"].keyids:
            key = new_root_body.keys[kid]
            reason = check_root_certificate(key, gun, None)
            if reason is not None:
                raise _reject(f"The new root key {kid[:12]} is not valid for {gun}: {reason}.")
            described = describe_key(key)
            label = "held on this machine" if holder(key) else "NOT held here"
            root_keys.append(f"root key {described.fingerprint} {label}: {described.summary()}")
        trust_lines.extend(_wildcard_lines(new_root_body))
    if tofu is not None:
        contact_lines, contact_need = _first_contact(gun, tofu, root_env, holder)
        trust_lines.extend(contact_lines)
        needed.append(contact_need)
        confirmable.update(contact_need.names)
        for env in (tofu, root_env):
            trust_lines.extend(_wildcard_lines(env.body))

    created_at = _created(request)
    if created_at is not None and created_at - now > _CLOCK_SKEW:
        days = (created_at - now).total_seconds() / 86400
        trust_lines.append(
            Line(
                f"the request was made at {request.created}, {days:.1f} days ahead of this "
                "machine's clock: one of the two clocks is wrong, so expiry checks here may "
                "pass what has already expired",
                bang=True,
            )
        )
    for role, expires in expired:
        if role in computed.roles:
            warnings.append(f"the base {role} had expired ({expires.format()}); this re-signs it")
            continue
        clock = "this machine's clock" if expires.before(now) else "the request's own clock"
        trust_lines.append(
            Line(
                f"the base {role} expired at {expires.format()} by {clock}: the "
                "online machine may be showing old metadata (a freeze), or this clock is wrong",
                bang=True,
            )
        )
        needed.append(Needed("role", (role,), f"the base {role} has expired"))

    trust_lines.extend(_disguise_lines(diffs))

    if state is not None and already is None:
        _abandoned(state, request, computed, versions, trust_lines, needed)

    signable = _signable(computed, bodies, holder, trust_lines)

    violations: tuple[str, ...] = ()
    if policy is not None:
        trusted_first = (tofu.body, root_env.body) if tofu is not None else ()
        violations = tuple(
            dict.fromkeys(
                [
                    *policy.violations(gun, computed, now),
                    *(v for root in trusted_first for v in policy.root_violations(root)),
                ]
            )
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
        tuple(known_bodies),
        versions,
        diffs,
        tuple(trust_lines),
        tuple(_unique(needed)),
        frozenset(confirmable),
        tuple(warnings),
        already,
        violations,
        base_timestamp,
        tuple(root_keys),
        signable,
    )


_CLOCK_SKEW = timedelta(days=1)


def _created(request: Request) -> datetime | None:
    """When the online machine made the request, by its clock (None if unreadable)."""
    try:
        return GoTime.parse(request.created).to_datetime()
    except (CeremonyError, ValueError, OverflowError):
        return None


def _signed_by(env: Envelope[Any], keys: Mapping[str, Key], keyids: Sequence[str]) -> set[str]:
    """Fingerprints of the listed keys whose signatures on `env` verify (each key once)."""
    return {
        describe_key(keys[sig.keyid]).fingerprint
        for sig in env.signatures
        if sig.keyid in keyids
        and sig.keyid in keys
        and verify_signature(keys[sig.keyid], sig, env.signed_map_bytes)
    }


def _first_contact(
    gun: str, tofu: Envelope[Root], newest: Envelope[Root], holder: Holder
) -> tuple[list[Line], Needed]:
    """What first contact shows, and the confirmation it needs.

    A root trusted on first use anchors everything this machine will sign for
    the GUN, so the operator confirms, from the record, the fingerprints of
    root keys that actually signed it: enough of them to meet its threshold,
    for the root met first or for the newest root it chains to. Merely being
    listed in a root proves nothing; a key that did not sign does not count.
    """
    lines = [
        Line(
            f"FIRST CONTACT with {gun}: no trust state here; root v{tofu.body.version} would be "
            "trusted on first use",
            bang=True,
        )
    ]
    quorum: list[tuple[tuple[str, ...], int]] = []
    names: list[str] = []
    for env in (tofu,) if tofu is newest else (tofu, newest):
        root = env.body
        spec = root.roles["root"]
        signers = _signed_by(env, root.keys, spec.keyids)
        quorum.append((tuple(sorted(signers)), spec.threshold))
        for kid in spec.keyids:
            d = describe_key(root.keys[kid])
            held = "held on this machine" if holder(root.keys[kid]) else "not held here"
            signed = "signed it" if d.fingerprint in signers else "DID NOT sign it"
            names.append(d.fingerprint)
            lines.append(
                Line(
                    f"first contact: root v{root.version} key {d.fingerprint} ({held}; {signed}; "
                    f"{spec.threshold} needed): {d.summary()}",
                    bang=True,
                )
            )
    newest_root = newest.body
    targets = newest_root.roles["targets"]
    lines.extend(
        Line(
            f"first contact: targets ({targets.threshold} needed) is signed by "
            f"{_key_text(newest_root.keys[kid], holder)}",
            bang=True,
        )
        for kid in targets.keyids
    )
    need = Needed(
        "key",
        tuple(dict.fromkeys(names)),
        "first contact: confirm, from your record, the fingerprints of root keys that signed "
        f"root v{tofu.body.version} or v{newest.body.version}, as many as its threshold",
        tuple(quorum),
    )
    return lines, need


def _wildcard_lines(root: Root) -> list[Line]:
    lines = []
    for kid in root.roles["root"].keyids:
        d = describe_key(root.keys[kid])
        if d.wildcard_prefix is not None:
            lines.append(
                Line(
                    f"root key {d.fingerprint[:16]}… has a WILDCARD certificate: it serves "
                    f"every GUN that starts with {d.wildcard_prefix!r}",
                    bang=True,
                )
            )
    return lines


def _check_base_is_whole(
    request: Request, bodies: Mapping[str, Body], snapshot: Snapshot, state: TrustState | None
) -> None:
    """Every role the changes read or re-sign that the server serves must be in the base:
    left out, it would be planned as a new, empty role and signed over the real one. So
    must every served role this machine signed: left out, a request signed here but never
    published could be hidden."""

    def served(role: str) -> bool:
        """Listed in the snapshot and delegated by its parent in the base (a removed
        delegation stays listed in notary-server's snapshot)."""
        if role not in snapshot.meta:
            return False
        parent = bodies.get(parent_role(role)) if role != "targets" else None
        return role == "targets" or (
            isinstance(parent, Targets) and parent.delegations.role(role) is not None
        )

    signed_here = (
        {role for record in state.requests.values() for role in record.roles} if state else set()
    )
    for role in sorted(signed_here - {"root"} - set(bodies)):
        if served(role):
            raise _reject(
                f"The request's base leaves out {role}, which the server serves and this "
                "machine signed before; export it again."
            )
    wanted = roles_read(request.changes) | set(touched_roles(request.changes))
    for role in sorted(wanted - {"root"} - set(bodies)):
        if served(role):
            raise _reject(
                f"The request's base leaves out {role}, which the server serves: it would be "
                "signed over as a new, empty role; do not sign it."
            )


def _may_sign(held: str, role: str) -> bool:
    """A key signs only for the role it is held for: a root key root, a targets key targets,
    a key held for one delegation that delegation, a delegation key only delegations."""
    if held in ("root", "targets"):
        return role == held
    if held == "delegation":
        return role not in ("root", "targets")
    return is_delegation_name(held) and role == held


def _targets_listing(bodies: Mapping[str, Body], computed: Plan) -> dict[str, set[str]]:
    """Fingerprint -> every targets-type role that lists it (before and after the changes)."""
    listing: dict[str, set[str]] = {}
    after = {**bodies, **{role: rp.body for role, rp in computed.roles.items()}}
    for body in (*bodies.values(), *after.values()):
        for name, spec in _signer_specs(body).items():
            if name == "root":
                continue
            for key in spec.keys.values():
                listing.setdefault(describe_key(key).fingerprint, set()).add(name)
    return listing


def _signable(
    computed: Plan, bodies: Mapping[str, Body], holder: Holder, lines: list[Line]
) -> dict[str, tuple[Key, ...]]:
    """Per role, the keys held here that may sign it.

    A `targets` body names neither its role nor its repository, so a signature over
    it is valid wherever the key is listed. A key therefore signs only for the
    repository (the holder says) and the role it is held for; and a key held for
    delegations in general signs none while another targets-type role lists it too,
    since a body it signed for one could be replayed as the other.
    """
    listing = _targets_listing(bodies, computed)
    out: dict[str, tuple[Key, ...]] = {}
    for rp in computed.roles.values():
        keys: dict[str, Key] = {}
        for signer_set in rp.signers:
            for kid, key in sorted(signer_set.keys.items()):
                held = holder(key)
                if held is None or kid in keys:
                    continue
                fp = describe_key(key).fingerprint
                if not _may_sign(held, rp.role):
                    lines.append(
                        Line(
                            f"key {fp[:16]}… is held here as a {held} key: it will not sign "
                            f"{rp.role}",
                            bang=True,
                        )
                    )
                    continue
                others = listing.get(fp, set()) - {rp.role}
                if held == "delegation" and others:
                    lines.append(
                        Line(
                            f"key {fp[:16]}… is listed for {rp.role} and for "
                            f"{', '.join(sorted(others))}: a body it signed for one could be "
                            f"replayed as another, so it will not sign {rp.role}",
                            bang=True,
                        )
                    )
                    continue
                keys[kid] = key
        if keys:
            out[rp.role] = tuple(keys.values())
    return out


def _unique(needed: Sequence[Needed]) -> list[Needed]:
    seen: set[tuple[str, tuple[str, ...]]] = set()
    out = []
    for n in needed:
        if (n.kind, n.names) not in seen:
            seen.add((n.kind, n.names))
            out.append(n)
    return out


def _abandoned(
    state: TrustState,
    request: Request,
    computed: Plan,
    versions: Mapping[str, int],
    trust_lines: list[Line],
    needed: list[Needed],
) -> None:
    """Equivocation and abandoned requests, from everything this machine signed for the GUN."""
    hidden: dict[str, SignedRecord] = {}
    for role, version in versions.items():
        for signed_version, _digest, record in state.signed_versions(role):
            if signed_version > version and record.request_id != request.id:
                hidden[record.request_id] = record
    equivocating: dict[str, SignedRecord] = {}
    for role, rp in computed.roles.items():
        for signed_version, digest, record in state.signed_versions(role):
            if signed_version == rp.body.version and digest != rp.digest:
                if role != "root":
                    raise _reject(
                        f"This machine already signed a different {role} v{signed_version} "
                        f"(request {record.request_id}, signed {record.signed_at[0]}); it never "
                        "signs two bodies for one version: export a new request, which skips "
                        "that version."
                    )
                equivocating[record.request_id] = record
    for rid, record in {**hidden, **equivocating}.items():
        roles = ", ".join(f"{r} v{s.version}" for r, s in sorted(record.roles.items()))
        extra = (
            f"; this request signs a DIFFERENT root v{computed.roles['root'].body.version}"
            if rid in equivocating
            else ""
        )
        trust_lines.append(
            Line(
                f"ABANDONED OR HIDDEN REQUEST: this machine signed request {rid} ({roles}) on "
                f"{record.signed_at[0]} (created {record.created}), but this request builds on "
                "older metadata: either that request was never published, or the online machine "
                f"is hiding it{extra}",
                bang=True,
            )
        )
        needed.append(
            Needed("abandon", (rid,), f"request {rid} of {record.signed_at[0]} was never published")
        )


def _check_same_bytes(record: SignedRecord, computed: Plan) -> None:
    for role, rp in computed.roles.items():
        signed = record.roles.get(role)
        if signed is None or (signed.version, signed.body_sha256) != (rp.body.version, rp.digest):
            raise _reject(
                f"Request {record.request_id} was signed here with other bytes for {role}; "
                "do not sign it."
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
                f"The request expects {role} v{w.version} with digest {w.digest[:16]}, but its "
                f"changes applied to the verified base give v{g.version} with digest "
                f"{g.digest[:16]}: it was altered or built from other data; export it again."
            )


# ---------------------------------------------------------------------------
# who signs what


@dataclass(frozen=True, slots=True)
class _Signers:
    keys: Mapping[str, Key]
    threshold: int
    paths: tuple[str, ...] | None = None  # delegations only


def _signer_specs(body: Body | None, *, server: bool = False) -> dict[str, _Signers]:
    """Who signs what, as one body defines it: root's roles, or a targets body's delegations.

    Root's snapshot and timestamp keys are the server's (`server=True` includes them).
    """
    if isinstance(body, Root):
        offline = ("root", "targets", "snapshot", "timestamp") if server else ("root", "targets")
        return {
            name: _Signers(body.role_keys(name), spec.threshold)
            for name, spec in body.roles.items()
            if name in offline
        }
    if isinstance(body, Targets):
        return {
            d.name: _Signers({k: body.delegations.keys[k] for k in d.keyids}, d.threshold, d.paths)
            for d in body.delegations.roles
        }
    return {}


def _added_keys(old: Body | None, new: Body, init: bool) -> dict[str, list[Key]]:
    """Per role defined in this body: the keys it gains (every key in an init)."""
    before = {} if init else _signer_specs(old)
    out: dict[str, list[Key]] = {}
    for name, spec in _signer_specs(new).items():
        prev = before.get(name)
        old_fps = {describe_key(k).fingerprint for k in prev.keys.values()} if prev else set()
        added = [k for k in spec.keys.values() if describe_key(k).fingerprint not in old_fps]
        if added:
            out[name] = added
    return out


def _roles_with_new_signers(old: Body | None, new: Body) -> list[str]:
    before, after = _signer_specs(old), _signer_specs(new)
    return [
        name for name in sorted(set(before) | set(after)) if before.get(name) != after.get(name)
    ]


# ---------------------------------------------------------------------------
# describing a role


DISGUISES_SHOWN = 20  # names flagged one by one on the review's first screen


def _disguise_lines(diffs: Sequence[RoleDiff]) -> list[Line]:
    """A `!` line for each new or changed target name that could pass for another."""
    flagged = [
        (d.role, name)
        for d in diffs
        if d.targets is not None
        for name in (*d.targets.added, *d.targets.changed)
        if disguised(name)
    ]
    lines = [
        Line(f"{role}: target {shown(name, 60)} {DISGUISE_NOTE}", bang=True)
        for role, name in flagged[:DISGUISES_SHOWN]
    ]
    if len(flagged) > DISGUISES_SHOWN:
        lines.append(
            Line(
                f"and {len(flagged) - DISGUISES_SHOWN} more target names that {DISGUISE_NOTE}", True
            )
        )
    return lines


def _expiry_note(expires: GoTime, now: datetime) -> str:
    when = expires.to_datetime()
    if when <= now:
        return "ALREADY EXPIRED by this machine's clock"
    left = when - now
    if left < SOON:
        return f"soon: expires in {left.days} days by this machine's clock"
    return f"in {left.days / 365:.1f} years by this machine's clock"


def _custom_text(meta: FileMeta) -> str:
    if meta.custom is None:
        return ""
    from ceremony.core.canonical import encode_canonical

    raw = encode_canonical(meta.custom).decode("utf-8")
    shown = printable(raw[:CUSTOM_SHOWN])
    cut = f", first {CUSTOM_SHOWN} characters shown" if len(raw) > CUSTOM_SHOWN else ""
    return f"  custom data ({len(raw)} characters{cut}): {shown}"


def _meta_line(sign: str, name: str, meta: FileMeta) -> Line:
    """Every hash is shown: Notary checks every one it knows against the file."""
    hashes = "  ".join(
        f"{alg} {digest.hex()}"
        for alg, digest in sorted(meta.hashes.items(), key=lambda i: (i[0] != "sha256", i[0]))
    )
    return Line(
        f"{sign} target {shown(name)}  length {meta.length}  {printable(hashes)}"
        + _custom_text(meta)
    )


def _key_text(key: Key, holder: Holder) -> str:
    d = describe_key(key)
    held = holder(key)
    where = f"held on this machine as a {held} key" if held else "not held here"
    return f"key {d.fingerprint} ({where}): {d.summary()}"


def _paths_text(paths: tuple[str, ...] | None) -> str:
    if paths is None:
        return ""
    return ", ".join(repr(p) if p else "(all paths)" for p in paths) or "(no paths)"


def _signers_lines(name: str, a: _Signers | None, b: _Signers | None, holder: Holder) -> list[Line]:
    """The change of who signs `name`: each key + or -, threshold and paths old -> new."""
    lines: list[Line] = []
    if a is None and b is not None:
        what = "delegation" if b.paths is not None else "role"
        text = f"+ {what} {name}: threshold {b.threshold}"
        if b.paths is not None:
            text += f", paths {printable(_paths_text(b.paths))}"
        lines.append(Line(text, True))
        if b.paths is not None and any(disguised(p) for p in b.paths):
            lines.append(Line(f"delegation {name}: a path {DISGUISE_NOTE}", True))
    elif b is None and a is not None:
        lines.append(Line(f"- delegation {name} (it and its keys can no longer sign)", True))
        return lines
    assert b is not None  # noqa: S101
    if a is not None:
        if a.threshold != b.threshold:
            lines.append(Line(f"~ {name} threshold {a.threshold} -> {b.threshold}", True))
        if a.paths != b.paths:
            lines.append(
                Line(
                    f"~ {name} paths {printable(_paths_text(a.paths))} -> "
                    f"{printable(_paths_text(b.paths))}",
                    True,
                )
            )
            if b.paths is not None and any(disguised(p) for p in b.paths):
                lines.append(Line(f"delegation {name}: a path {DISGUISE_NOTE}", True))
    old_ids = set(a.keys) if a is not None else set()
    for kid, key in b.keys.items():
        if kid not in old_ids:
            lines.append(Line(f"+ {name} {_key_text(key, holder)}", True))
    if a is not None:
        for kid, key in a.keys.items():
            if kid not in b.keys:
                lines.append(Line(f"- {name} {_key_text(key, holder)}", True))
    for key in b.keys.values():
        held = holder(key)
        if b.paths is not None and held in ("root", "targets"):
            lines.append(
                Line(
                    f"delegation {name} lists key {describe_key(key).fingerprint[:16]}…, which "
                    f"this machine holds as its {held} key: a key must serve one role",
                    True,
                )
            )
    return lines


def _diff(
    role: str,
    old: Body | None,
    new: Body,
    computed: Plan,
    now: datetime,
    holder: Holder,
    init: bool,
) -> RoleDiff:
    lines: list[Line] = []
    targets: TargetsDiff | None = None
    if isinstance(new, Targets):
        old_files = old.targets if isinstance(old, Targets) else TargetFiles()
        targets = TargetsDiff.between(old_files, new.targets)
    before = {} if init else _signer_specs(old, server=True)
    after = _signer_specs(new, server=True)
    names = list(after) + [n for n in before if n not in after]
    for name in names:
        was, now_is = before.get(name), after.get(name)
        if was is not None and now_is is not None and was == now_is:
            continue
        lines.extend(_signers_lines(name, was, now_is, holder))
    rp = computed.roles[role]
    signers = tuple(
        f"{s.threshold} of {len(s.keys)}: "
        + ", ".join(sorted(describe_key(k).fingerprint for k in s.keys.values()))
        for s in rp.signers
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
        targets,
    )


# ---------------------------------------------------------------------------
# signing


@dataclass(frozen=True, slots=True)
class SigningOutcome:
    document: SignaturesDocument
    state: TrustState
    bodies: tuple[bytes, ...]  # to store with the state
    unsigned_roles: tuple[str, ...]  # roles this machine holds no key for
    skipped: tuple[str, ...] = ()  # key ids that had signed these bytes here already


def keys_to_sign(result: ReviewResult, *, again: bool) -> dict[str, list[Key]]:
    """Per role, the held keys that will sign: all of them, or only those new to this request.

    A request signed here before is a replay: refused, unless a key that has not
    signed it yet is here now (a second keyholder's token on the same machine),
    or `again` re-signs the identical bytes after a lost signatures file.
    """
    out: dict[str, list[Key]] = {}
    for role, signable in result.signable.items():
        done = set(result.already.roles[role].keys) if result.already and not again else set()
        keys = [key for key in signable if key.key_id not in done]
        if keys:
            out[role] = keys
    return out


def sign_review(
    result: ReviewResult,
    signer_for: Callable[[Key], Signer | None],
    keys: Mapping[str, Sequence[Key]],
    given: Acknowledgements,
    signed_at: str,
) -> SigningOutcome:
    """Sign the bytes `review_request` computed with `keys` (from `keys_to_sign`).

    Refuses, whatever the caller did before, a request the policy refuses or one
    whose acknowledgements were not all given by name.
    """
    if result.policy_violations:
        raise InputRejected(
            "This machine's signing policy refuses the request ("
            + "; ".join(result.policy_violations)
            + "); nothing was signed."
        )
    result.check_acknowledgements(given)
    missing = result.missing(given)
    if missing:
        raise InputRejected(
            "This request must be acknowledged by name before it is signed: "
            + "; ".join(f"{n.flag} ({n.why})" for n in missing)
            + ". Compare with your record, then re-run with those options."
        )
    request = result.request
    roles: list[RoleSignatures] = []
    unsigned: list[str] = []
    for rp in result.plan.roles.values():
        data = rp.signed_bytes
        made: dict[str, Any] = {}
        for key in keys.get(rp.role, ()):
            signer = signer_for(key)
            if signer is not None:
                made[key.key_id] = signer.sign(data)
        if made:
            roles.append(RoleSignatures(rp.role, rp.digest, tuple(made[k] for k in sorted(made))))
        else:
            unsigned.append(rp.role)
    if not roles:
        needed = sorted(
            {
                describe_key(k).fingerprint[:16]
                for rp in result.plan.roles.values()
                for s in rp.signers
                for k in s.keys.values()
            }
        )
        raise InputRejected(
            "This machine holds none of the keys this request needs ("
            + ", ".join(needed)
            + "); import the right key or use the keyholder's machine."
        )
    document = SignaturesDocument(request.id, request.digest, request.gun, tuple(roles))
    new_bodies = tuple(rp.signed_bytes for rp in result.plan.roles.values())  # encoded once
    by_role = {r.role: r for r in roles}
    previous = result.already
    record_roles: dict[str, SignedRole] = {}
    for rp in result.plan.roles.values():
        made_keys = [s.keyid for s in by_role[rp.role].signatures] if rp.role in by_role else []
        old_keys = list(previous.roles[rp.role].keys) if previous is not None else []
        record_roles[rp.role] = SignedRole(
            rp.body.version, rp.digest, tuple(sorted(set(old_keys) | set(made_keys)))
        )
    record = SignedRecord(
        request.id,
        request.digest,
        request.created,
        (*(previous.signed_at if previous else ()), signed_at),
        record_roles,
        tuple(dict.fromkeys((*(previous.acknowledged if previous else ()), *given.names()))),
    )
    root = result.root
    if result.first_contact == "init":
        root = root.with_signatures(by_role["root"].signatures if "root" in by_role else ())
    state = TrustState(request.gun, root, dict(result.versions), {request.id: record})
    return SigningOutcome(document, state, result.known_bodies + new_bodies, tuple(unsigned))


def record_signing(state: TrustState | None, outcome_state: TrustState) -> TrustState:
    """The stored state merged with what one signing adds (run under the trust store's lock)."""
    if state is None:
        return outcome_state
    versions = dict(state.versions)
    # A newer root that rotates the server's timestamp (or snapshot) key voids those floors:
    # a fast-forwarded version recorded before is replaced, never kept (TUF 5.3.11).
    voided = floors_to_reset(state.root, outcome_state.root)
    for role, v in outcome_state.versions.items():
        versions[role] = v if role in voided else max(v, versions.get(role, 0))
    requests = dict(state.requests)
    requests.update(outcome_state.requests)
    root = (
        outcome_state.root
        if outcome_state.root.body.version > state.root.body.version
        else state.root
    )
    return replace(state, root=root, versions=versions, requests=requests)
