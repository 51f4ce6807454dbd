"""Verification of Notary metadata from the root down (pure: bytes and `now` in, a report out).

The order follows Notary's client (notary-formats.md §8): a chain of roots, each
signed by its predecessor's threshold and its own; then timestamp, snapshot,
targets and delegations, each checked for signatures, expiry, the hashes and
lengths recorded by its parent, and (for delegations) naming and paths. Unlike
Notary's client, which skips a bad delegation with a warning, every problem
here is fatal and named in one sentence: this is what an operator runs before
trusting a copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ceremony.core.errors import VerificationFailed
from ceremony.core.gotime import GoTime
from ceremony.core.keys import check_root_certificate, verify_signature
from ceremony.core.metadata import (
    DelegatedRole,
    Envelope,
    FileMeta,
    Key,
    RoleKeys,
    Root,
    Snapshot,
    TargetFiles,
    Targets,
    Timestamp,
    parent_role,
    parse_envelope,
)


@dataclass(frozen=True, slots=True)
class RoleReport:
    """What the operator is shown about one verified role."""

    name: str
    version: int
    expires: GoTime
    threshold: int
    signed_by: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TargetEntry:
    """One target of a verified role; its `FileMeta` is built only when asked for."""

    role: str
    name: str
    files: TargetFiles = field(repr=False, compare=False)

    @property
    def meta(self) -> FileMeta:
        return self.files[self.name]

    def summary(self) -> tuple[int, str]:
        """Length and SHA-256 (hex), cheaply: what a listing shows."""
        return self.files.summary(self.name)


@dataclass(frozen=True, slots=True)
class RepositoryReport:
    """A fully verified repository."""

    gun: str
    root: Envelope[Root]
    timestamp: Envelope[Timestamp]
    snapshot: Envelope[Snapshot]
    targets: Envelope[Targets]
    delegations: Mapping[str, Envelope[Targets]]
    roles: tuple[RoleReport, ...]
    root_chain: tuple[int, ...] = ()
    warnings: tuple[str, ...] = field(default=())
    floors_reset: tuple[str, ...] = ()  # roles whose previous version was ignored (key rotation)

    @property
    def target_entries(self) -> tuple[TargetEntry, ...]:
        """Every target, by role (targets first, then delegations in pre-order), each role's
        sorted by name. Made when asked for: publish and export verify 10⁵ targets and never
        list them."""
        entries = _entries("targets", self.targets.body.targets)
        for name, env in self.delegations.items():
            entries.extend(_entries(name, env.body.targets))
        return tuple(entries)


def _fail(role: str, reason: str) -> VerificationFailed:
    return VerificationFailed(f"{role} failed verification: {reason}.")


def check_key_ids(keys: Mapping[str, Key], role: str) -> None:
    """Each key must be listed under its own id (a mismatch is a hard error in Notary)."""
    for kid, key in keys.items():
        if key.key_id != kid:
            raise _fail(role, f"key {kid[:12]} is listed under an id that is not its own")


def verify_threshold(
    envelope: Envelope[Any],
    keys: Mapping[str, Key],
    keyids: tuple[str, ...],
    threshold: int,
    role: str,
) -> tuple[str, ...]:
    """Distinct valid signatures from the role's keys; raises unless `threshold` are met."""
    valid: list[str] = []
    for sig in envelope.signatures:
        fresh = sig.keyid in keyids and sig.keyid in keys and sig.keyid not in valid
        if fresh and verify_signature(keys[sig.keyid], sig, envelope.signed_map_bytes):
            valid.append(sig.keyid)
    if len(valid) < threshold:
        raise _fail(role, f"it carries {len(valid)} valid signature(s) of the {threshold} required")
    return tuple(valid)


def check_expiry(expires_at: Any, role: str, now: datetime) -> None:
    if expires_at.before(now):
        raise _fail(role, f"it expired at {expires_at.format()}")


def verify_root(
    new: Envelope[Root],
    gun: str,
    now: datetime,
    previous: Envelope[Root] | None = None,
    *,
    check_time: bool = True,
) -> tuple[str, ...]:
    """A root signed by its own threshold of valid certificates and, if given, by its predecessor's.

    `previous` is a root already trusted and `new` must be its successor
    (version + 1). Certificates of `previous` are not checked for expiry (as in
    Notary); `check_time` is False for intermediate roots of a chain, whose
    expiry no longer matters once a newer root exists.
    """
    body = new.body
    label = f"root v{body.version}"
    check_key_ids(body.keys, label)
    for kid in body.roles["root"].keyids:
        reason = check_root_certificate(body.keys[kid], gun, now if check_time else None)
        if reason is not None:
            raise _fail(label, f"root key {kid[:12]} is not valid for {gun}: {reason}")
    spec = body.roles["root"]
    signed = verify_threshold(new, body.keys, spec.keyids, spec.threshold, label)
    if previous is not None:
        prev = previous.body
        if body.version != prev.version + 1:
            raise _fail(label, f"it does not follow the trusted root v{prev.version}")
        prev_ids = tuple(
            kid
            for kid in prev.roles["root"].keyids
            if check_root_certificate(prev.keys[kid], gun, None) is None
        )
        verify_threshold(
            new,
            prev.keys,
            prev_ids,
            prev.roles["root"].threshold,
            f"{label} (as successor of v{prev.version})",
        )
    if check_time:
        check_expiry(body.expires, label, now)
    return signed


def verify_root_chain(
    roots: list[Envelope[Root]],
    gun: str,
    now: datetime,
    trusted: Envelope[Root] | None,
    *,
    check_time: bool = True,
) -> tuple[Envelope[Root], tuple[int, ...]]:
    """Walk from `trusted` (or the oldest root given, trusted on first use) up to the newest root.

    A `trusted` root is not re-verified (it may be a root this machine approved
    and holds only part of the signatures for). With `check_time` False no
    expiry is checked: the offline half only warns about expiry, since an
    air-gapped clock is not trusted.
    """
    by_version: dict[int, Envelope[Root]] = {}
    for r in roots:
        prior = by_version.get(r.body.version)
        if prior is not None and prior.signed_map_bytes != r.signed_map_bytes:
            raise _fail(f"root v{r.body.version}", "two different roots claim that version")
        by_version[r.body.version] = r
    if not by_version:
        raise VerificationFailed("There is no root metadata to verify.")
    newest = max(by_version)
    if trusted is None:
        current = by_version[min(by_version)]
        verify_root(current, gun, now, None, check_time=False)
    else:
        tv = trusted.body.version
        if newest < tv:
            raise _fail(
                "root", f"it is version {newest}, older than the trusted version {tv} (rollback)"
            )
        same = by_version.get(tv)
        if same is not None and same.signed_map_bytes != trusted.signed_map_bytes:
            raise _fail(f"root v{tv}", "it differs from the trusted root of the same version")
        current = trusted
    chain = [current.body.version]
    for version in range(current.body.version + 1, newest + 1):
        nxt = by_version.get(version)
        if nxt is None:
            raise _fail(
                f"root v{newest}", f"root v{version} is missing from the chain from v{chain[0]}"
            )
        verify_root(nxt, gun, now, current, check_time=check_time and version == newest)
        current = nxt
        chain.append(version)
    if len(chain) == 1 and trusted is None:
        verify_root(current, gun, now, None, check_time=check_time)
    elif len(chain) == 1 and check_time:
        check_expiry(current.body.expires, f"root v{current.body.version}", now)
    return current, tuple(chain)


def _check_meta(meta: FileMeta | None, data: bytes, role: str, parent: str) -> None:
    if meta is None:
        raise _fail(role, f"{parent} does not record it")
    reason = meta.matches(data)
    if reason is not None:
        raise _fail(role, f"{reason} in {parent}")


def _check_version(role: str, version: int, previous: Mapping[str, int]) -> None:
    if role in previous and version < previous[role]:
        raise _fail(
            role,
            f"it is version {version}, older than the trusted version {previous[role]} (rollback)",
        )


def floors_to_reset(trusted: Envelope[Root] | None, newest: Envelope[Root]) -> tuple[str, ...]:
    """The roles whose rollback floor a newer trusted root voids (TUF 5.3.11, fast-forward
    recovery): new timestamp keys or threshold void the timestamp's; new snapshot keys or
    threshold void the snapshot's and the timestamp's. Anything else keeps every floor, so a
    fast-forwarded version cannot be laundered through an unrelated root change."""
    if trusted is None or newest.body.version <= trusted.body.version:
        return ()  # only a newer root, chained from the trusted one, can void a floor

    def changed(role: str) -> bool:
        old, new = trusted.body.roles[role], newest.body.roles[role]
        return set(old.keyids) != set(new.keyids) or old.threshold != new.threshold

    if changed("snapshot"):
        return ("snapshot", "timestamp")
    return ("timestamp",) if changed("timestamp") else ()


def restrict_paths(child: tuple[str, ...], parent: tuple[str, ...] | None) -> tuple[str, ...]:
    """Notary's RestrictDelegationPathPrefixes: keep child paths inside a parent path."""
    if parent is None:
        return child
    return tuple(p for p in child if any(p.startswith(q) for q in parent))


def parse_role_file(
    data: bytes, role: str, kind: Any = None, *, what: str | None = None
) -> Envelope[Any]:
    """A metadata file parsed, and refused unless it is in the exact form Notary writes."""
    if kind is None:
        kind = {"root": Root, "snapshot": Snapshot, "timestamp": Timestamp}.get(role, Targets)
    env: Envelope[Any] = parse_envelope(data, kind, what=what or f"{role} metadata")
    if env.to_bytes() != data:
        raise _fail(
            role,
            "the file is not in the exact form Notary writes, so Notary clients would reject it",
        )
    return env


def parse_files(files: Mapping[str, bytes]) -> dict[str, Envelope[Any]]:
    """Each metadata file parsed once, in Notary's exact form (`N.root` entries are roots)."""
    envelopes: dict[str, Envelope[Any]] = {}
    for name, data in files.items():
        head, _, tail = name.partition(".")
        if tail == "root" and head.isdigit():
            envelopes[name] = parse_role_file(data, f"root v{head}", Root)
        else:
            envelopes[name] = parse_role_file(data, name)
    return envelopes


def verify_repository(
    files: Mapping[str, bytes],
    gun: str,
    now: datetime,
    *,
    trusted_root: Envelope[Root] | None = None,
    previous_versions: Mapping[str, int] | None = None,
    expired_ok: bool = False,
) -> RepositoryReport:
    """Verify a Notary repository given as {"root": bytes, "1.root": bytes, "targets/x": bytes, ...}.

    Keys are role names without `.json`; `N.root` entries are older roots for
    the chain. Raises VerificationFailed naming the role and reason.
    """
    return verify_parsed(
        parse_files(files),
        gun,
        now,
        trusted_root=trusted_root,
        previous_versions=previous_versions,
        expired_ok=expired_ok,
    )


def verify_parsed(
    envelopes: Mapping[str, Envelope[Any]],
    gun: str,
    now: datetime,
    *,
    trusted_root: Envelope[Root] | None = None,
    previous_versions: Mapping[str, int] | None = None,
    expired_ok: bool = False,
) -> RepositoryReport:
    """Verify parsed metadata files (from `parse_files`, or parsed as they were downloaded).

    With `expired_ok`, expiry becomes a warning in the report instead of a
    failure: the online half must still read a repository whose roles expired,
    precisely so that it can stage their refresh. Signatures, hashes, versions
    and delegation rules are checked all the same.
    """
    warnings: list[str] = []

    def expiry(expires_at: Any, role: str) -> None:
        if not expired_ok:
            check_expiry(expires_at, role, now)
        elif expires_at.before(now):
            warnings.append(f"{role} expired at {expires_at.format()}")

    for required in ("root", "timestamp", "snapshot", "targets"):
        if required not in envelopes:
            raise VerificationFailed(
                f"The repository has no {required}.json; copy the whole metadata folder."
            )
    roots = [envelopes["root"]]
    roots.extend(
        env
        for name, env in envelopes.items()
        if name.partition(".")[2] == "root" and name.partition(".")[0].isdigit()
    )
    root, chain = verify_root_chain(roots, gun, now, trusted_root, check_time=not expired_ok)
    if expired_ok:
        expiry(root.body.expires, "root")
    if root.body.version != roots[0].body.version:
        raise _fail(
            "root",
            f"root.json is version {roots[0].body.version} but the chain reaches {root.body.version}",
        )
    reset = floors_to_reset(trusted_root, root)
    previous = {r: v for r, v in (previous_versions or {}).items() if r not in reset}
    rk = root.body
    reports = [
        RoleReport(
            "root",
            rk.version,
            rk.expires,
            rk.roles["root"].threshold,
            tuple(s.keyid for s in root.signatures if s.keyid in rk.roles["root"].keyids),
        )
    ]
    _check_version("root", rk.version, previous)

    def base(role: str, env: Envelope[Any]) -> None:
        spec: RoleKeys = rk.roles[role]
        signed = verify_threshold(env, rk.keys, spec.keyids, spec.threshold, role)
        expiry(env.body.expires, role)
        _check_version(role, env.body.version, previous)
        reports.append(RoleReport(role, env.body.version, env.body.expires, spec.threshold, signed))

    timestamp: Envelope[Timestamp] = envelopes["timestamp"]
    base("timestamp", timestamp)
    snapshot: Envelope[Snapshot] = envelopes["snapshot"]
    _check_meta(timestamp.body.meta.get("snapshot"), snapshot.raw, "snapshot", "the timestamp")
    base("snapshot", snapshot)
    targets: Envelope[Targets] = envelopes["targets"]
    _check_meta(snapshot.body.meta.get("root"), envelopes["root"].raw, "root", "the snapshot")
    _check_meta(snapshot.body.meta.get("targets"), targets.raw, "targets", "the snapshot")
    base("targets", targets)
    check_key_ids(targets.body.delegations.keys, "targets")

    delegations: dict[str, Envelope[Targets]] = {}
    # Pre-order walk of the delegation tree, as Notary's client does.
    stack: list[tuple[DelegatedRole, Envelope[Targets], tuple[str, ...] | None]] = [
        (r, targets, None) for r in reversed(targets.body.delegations.roles)
    ]
    while stack:
        spec_role, parent_env, parent_paths = stack.pop()
        name = spec_role.name
        parent_name = "targets" if parent_env is targets else _name_of(delegations, parent_env)
        if parent_role(name) != parent_name:
            raise _fail(parent_name, f"it delegates {name}, which is not its direct child")
        if name in delegations:
            raise _fail(name, "it is delegated twice")
        if name not in envelopes:
            if name in snapshot.body.meta:
                raise _fail(name, "the snapshot records it but its file is missing")
            continue  # delegated, but nothing signed for it yet
        env: Envelope[Targets] = envelopes[name]
        _check_meta(snapshot.body.meta.get(name), env.raw, name, "the snapshot")
        keys = parent_env.body.delegations.keys
        signed = verify_threshold(env, keys, spec_role.keyids, spec_role.threshold, name)
        expiry(env.body.expires, name)
        _check_version(name, env.body.version, previous)
        check_key_ids(env.body.delegations.keys, name)
        paths = restrict_paths(spec_role.paths, parent_paths)
        for target in env.body.targets:
            if not any(target.startswith(p) for p in paths):
                raise _fail(name, f"it signs {target!r}, which is outside its delegated paths")
        delegations[name] = env
        reports.append(
            RoleReport(name, env.body.version, env.body.expires, spec_role.threshold, signed)
        )
        stack.extend((r, env, paths) for r in reversed(env.body.delegations.roles))
    # notary-server keeps a removed delegation in its snapshot; Notary's client ignores such
    # entries (nothing delegates them, so nothing of theirs is trusted), and so do we.
    stale = tuple(
        f"the snapshot still lists {name}, which no role delegates; it is ignored"
        for name in snapshot.body.meta
        if name not in ("root", "targets") and name not in delegations
    )
    return RepositoryReport(
        gun,
        root,
        timestamp,
        snapshot,
        targets,
        delegations,
        tuple(reports),
        chain,
        (*warnings, *stale),
        reset,
    )


def _entries(role: str, files: TargetFiles) -> list[TargetEntry]:
    return [TargetEntry(role, name, files) for name in sorted(files)]


def _name_of(delegations: Mapping[str, Envelope[Targets]], env: Envelope[Targets]) -> str:
    for name, e in delegations.items():
        if e is env:
            return name
    raise AssertionError("parent not walked")
