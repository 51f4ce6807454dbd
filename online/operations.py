"""The online half's operations: the edge where the home, the server and the pure flow meet.

Each function takes the home, the server configuration and `now` (read by the
CLI, never here), does its I/O, and returns a value the CLI prints. The order of
writes is what keeps the promise that nothing is lost: a request is kept before
it is handed out; a signatures document is kept as soon as it checks out, before
any upload; staged changes are dropped only once the server serves the upload.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ceremony.core.changes import Change, InitRepository, SetExpiry
from ceremony.core.documents import PublicKeysDocument, Request, SignaturesDocument, combine
from ceremony.core.errors import CeremonyError, InputRejected, UsageError, VerificationFailed
from ceremony.core.gotime import GoTime
from ceremony.core.metadata import Envelope, Key, Root, Targets, role_order
from ceremony.edge.fsutil import locked
from online.cache import MetadataCache
from online.client import Server
from online.client.fetch import FetchedRepository, fetch_repository
from online.flow import (
    EXPIRY_WARNING,
    Planned,
    SetProgress,
    already_served,
    build_request,
    check_served,
    check_signatures,
    default_expiry,
    moved_since_export,
    progress,
    replan,
    shortfall,
    shown_key_id,
    upload_files,
)
from online.home import (
    Home,
    Published,
    RepositoryHome,
    RequestRecord,
    StagedChange,
    check_request_id,
)

Say = Callable[[str], None]


def _quiet(_: str) -> None:
    """The default progress reporter: says nothing."""


# ---------------------------------------------------------------------------
# fetching with the home's trust anchor


def fetch(
    repo: RepositoryHome,
    server: Server,
    now: datetime,
    *,
    full_root_chain: bool = False,
    known: Mapping[str, Envelope[Any]] | None = None,
) -> FetchedRepository | None:
    """Fetch and verify the GUN from the anchor this home trusts (TOFU over TLS at first contact).

    The newest verified root becomes the anchor, and the verified versions the
    floor for the next fetch (rollback protection). Files in `known` or in the home's
    cache whose bytes the snapshot records are not downloaded again (`fetch_repository`);
    the targets files downloaded are cached once they verify.
    """
    anchor = repo.anchor()
    cache = MetadataCache(repo.path / "cache")
    fetched = fetch_repository(
        server,
        repo.gun,
        now,
        trusted_root=anchor,
        previous_versions=repo.versions(),
        full_root_chain=full_root_chain,
        expired_ok=True,  # an expired role must still be readable, to stage its refresh
        known=known,
        cached=cache.get,
    )
    if fetched is None and anchor is not None:
        raise VanishedRepository(
            f"The trust server no longer serves {repo.gun}, which this home trusts (root "
            f"v{anchor.body.version}): it was wiped, restored from an old backup, or is lying; "
            "ask its operator before anything else (only `init --over-vanished` starts over)."
        )
    if fetched is not None:
        report = fetched.report
        repo.trust(
            fetched.envelopes["root"],
            {r.name: r.version for r in report.roles},
            report.floors_reset,
        )
        _keep_in_cache(cache, fetched)
    return fetched


def _keep_in_cache(cache: MetadataCache, fetched: FetchedRepository) -> None:
    """Cache the verified targets files (those downloaded, and those known here, such as what
    publish just uploaded), and only what the verified snapshot names."""
    report = fetched.report
    served = {"targets": report.targets, **report.delegations}
    for role, env in served.items():
        digest = fetched.recorded_sha256(role)
        if role in fetched.downloaded or not cache.holds(digest, len(env.raw)):
            cache.put(digest, env.raw)
    cache.keep_only(fetched.recorded_sha256(role) for role in served)


class VanishedRepository(VerificationFailed):
    """The server no longer serves a repository this home holds a trust anchor for (exit 1)."""


def freeze(fetched: FetchedRepository | None, now: datetime) -> VerificationFailed | None:
    """The error for a served timestamp that has expired (a freeze), or None.

    notary-server re-signs an expired timestamp whenever it is asked for one, so a server
    that serves one is stuck or is replaying old metadata to hide newer versions.
    """
    if fetched is None:
        return None
    for role in fetched.report.roles:
        if role.name == "timestamp" and role.expires.before(now):
            return VerificationFailed(
                f"The trust server serves a timestamp for {fetched.report.gun} that expired at "
                f"{role.expires.format()}, which a working Notary server never does: it is "
                "stuck or hiding newer metadata (a freeze attack); have its operator check it, "
                "or pass --accept-expired-timestamp to build on it anyway."
            )
    return None


def _publishing(repo: RepositoryHome) -> contextlib.AbstractContextManager[None]:
    """One publish per GUN at a time on this machine (a separate lock from the home's writers)."""
    return locked(repo.path / ".publish.lock")


# ---------------------------------------------------------------------------
# staging that needs the server


def stage_init(
    home: Home,
    server: Server,
    gun: str,
    keys: PublicKeysDocument,
    *,
    root_threshold: int | None = None,
    targets_threshold: int | None = None,
    over_vanished: str | None = None,
) -> StagedChange:
    """Stage a new repository: offline root and targets keys, server-held snapshot and timestamp keys.

    If this home trusts a repository of that name that the server no longer serves, it is
    refused unless `over_vanished` (a time stamp) says to set the old anchor aside.
    """
    if keys.gun != gun:
        raise InputRejected(
            f"The public keys file is for {keys.gun}, not {gun}: export the keys for {gun}."
        )
    root_keys = tuple(e.key for e in keys.for_role("root"))
    targets_keys = tuple(e.key for e in keys.for_role("targets"))
    for role, found in (("root", root_keys), ("targets", targets_keys)):
        if not found:
            raise InputRejected(
                f"The public keys file has no {role} key for {gun}: generate one offline and "
                "export it with `ceremony key export-public`."
            )
    rt = _threshold(root_threshold, len(root_keys), "--root-threshold")
    tt = _threshold(targets_threshold, len(targets_keys), "--targets-threshold")
    repo = home.repository(gun)
    if any(isinstance(s.change, InitRepository) for s in repo.staged()):
        raise InputRejected(
            f"The initialisation of {gun} is already staged: export and publish it."
        )
    if server.get_metadata(gun, "root.json") is not None:
        raise InputRejected(
            f"{gun} already exists on the server: change its keys with `ceremony-online rotate`."
        )
    anchor = repo.anchor()
    if anchor is not None:
        if over_vanished is None:
            raise VanishedRepository(
                f"The trust server no longer serves {gun}, which this home trusts (root "
                f"v{anchor.body.version}): find out why before creating it again, then pass "
                "--over-vanished to stage a new repository over it."
            )
        repo.set_aside_trust(f"vanished-{over_vanished}")
    snapshot_key = server.get_server_key(gun, "snapshot")
    timestamp_key = server.get_server_key(gun, "timestamp")
    change = InitRepository(root_keys, rt, targets_keys, tt, snapshot_key, timestamp_key)
    return repo.stage([change])[0]


def _threshold(given: int | None, keys: int, option: str) -> int:
    value = keys if given is None else given
    if not 1 <= value <= keys:
        raise UsageError(f"{option} must be between 1 and the {keys} key(s) given, not {value}.")
    return value


def rotation_keys(keys: PublicKeysDocument, gun: str, role: str) -> tuple[Key, ...]:
    """The keys the public keys file offers for a root or targets rotation."""
    if keys.gun != gun:
        raise InputRejected(
            f"The public keys file is for {keys.gun}, not {gun}: export the keys for {gun}."
        )
    found = tuple(e.key for e in keys.for_role(role))
    if not found:
        raise InputRejected(
            f"The public keys file has no {role} key: export the new {role} key(s) with "
            "`ceremony key export-public --key ID`."
        )
    return found


def refresh_changes(
    home: Home, server: Server | None, gun: str, now: datetime, roles: Sequence[str]
) -> list[Change]:
    """`SetExpiry` (the default) for the named roles, or for every offline role expiring within 90 days."""
    if roles or server is None:
        if not roles:
            raise UsageError("Name the roles to refresh, or configure the server to find them.")
        return [SetExpiry(role, default_expiry(role, now)) for role in dict.fromkeys(roles)]
    fetched = fetch(home.repository(gun), server, now)
    if fetched is None:
        raise InputRejected(f"{gun} does not exist on the server, so there is nothing to refresh.")
    due = [
        r.name
        for r in fetched.report.roles
        if r.name not in ("snapshot", "timestamp") and r.expires.before(now + EXPIRY_WARNING)
    ]
    if not due:
        raise InputRejected(
            f"Nothing in {gun} expires within {EXPIRY_WARNING.days} days: name the role to "
            "refresh anyway with --role."
        )
    return [SetExpiry(role, default_expiry(role, now)) for role in sorted(due, key=role_order)]


# ---------------------------------------------------------------------------
# export


def export_request(
    home: Home,
    server: Server,
    gun: str,
    now: datetime,
    *,
    thin: bool = False,
    accept_expired_timestamp: bool = False,
    say: Say = _quiet,
    deliver: Callable[[Request], None] | None = None,
) -> Request:
    """Build the request for everything staged for `gun`, keep it (full) in the home, return it.

    `deliver` writes `request.to_bytes(thin=thin)` wherever it goes (a file, QR codes)
    BEFORE a new request is kept: a failed delivery leaves no request behind and
    supersedes none. The home always keeps the full form, which publish needs. One
    staged set makes one request: exporting it again delivers the same request.
    """
    repo = home.repository(gun)
    staged = repo.staged()
    if not staged:
        raise InputRejected(
            f"Nothing is staged for {gun}: stage changes with add, remove, delegation, rotate, "
            "refresh or import-changelist first."
        )
    say(f"Fetching and verifying {gun} from {server.location} …")
    fetched = fetch(repo, server, now, full_root_chain=True)
    _check_freeze(fetched, now, accept_expired_timestamp, say)
    if fetched is None and not any(isinstance(s.change, InitRepository) for s in staged):
        raise InputRejected(
            f"{gun} does not exist on the server: stage its creation with `ceremony-online init`."
        )
    files = fetched.envelopes if fetched is not None else None
    ids = tuple(s.id for s in staged)
    with repo.locked():
        records = repo.records()  # read once under the lock (a bulk request's lists 10⁵ ids)
        for record in reversed(records):
            if record.published is not None or record.cancelled is not None:
                continue
            if record.staged_ids != ids:
                continue
            earlier = repo.load_request(record.id)
            moved = moved_since_export(earlier, files)
            if moved:
                say(
                    f"The server moved since request {record.id} was exported ({', '.join(moved)}): "
                    "making a new request."
                )
                break
            say(f"Request {record.id} already carries these staged changes: exporting it again.")
            if deliver is not None:
                deliver(earlier)
            return earlier
        exported: dict[str, int] = {}
        for record in records:
            for role, version in record.versions.items():
                exported[role] = max(version, exported.get(role, 0))
        say(f"Building and checking the request for {len(staged)} staged change(s) …")
        request, _ = build_request(
            gun=gun,
            files=files,
            changes=[s.change for s in staged],
            now=now,
            nonce=secrets.token_hex(16),
            exported=exported,
        )
        if deliver is not None:
            deliver(request)
        stamp = GoTime.from_datetime(now).format()
        record = RequestRecord(
            request.id,
            request.digest,
            stamp,
            thin,
            ids,
            versions={e.role: e.version for e in request.expect},
        )
        repo.save_request(request, record)
        for old in records:
            if old.id != request.id and old.published is None and old.cancelled is None:
                repo.mark_cancelled(old.id, f"superseded by {request.id} at {stamp}")
                say(f"Request {old.id} is superseded by {request.id}: sign the new one instead.")
    return request


def _check_freeze(
    fetched: FetchedRepository | None, now: datetime, accepted: bool, say: Say
) -> None:
    problem = freeze(fetched, now)
    if problem is None:
        return
    if not accepted:
        raise problem
    say(
        "Going on with an expired timestamp as asked (--accept-expired-timestamp); the offline "
        "review flags it."
    )


def cancel_request(home: Home, gun: str, request_id: str, now: datetime) -> RequestRecord:
    """Give up an exported request: the next export makes a new one, past its versions."""
    repo = home.repository(gun)
    with repo.locked():
        record = repo.record(check_request_id(request_id))
        if record.published is not None:
            raise InputRejected(
                f"Request {request_id} was published at {record.published.at}; it cannot be cancelled."
            )
        if record.cancelled is not None:
            raise InputRejected(f"Request {request_id} is already given up ({record.cancelled}).")
        return repo.mark_cancelled(request_id, f"cancelled at {GoTime.from_datetime(now).format()}")


# ---------------------------------------------------------------------------
# publish


@dataclass(frozen=True, slots=True)
class PublishResult:
    """What one publish did for one request."""

    gun: str
    request_id: str
    versions: Mapping[str, int]
    already: bool  # it had been published before this run
    dropped: int  # staged changes dropped because the server now serves them


def publish_documents(
    home: Home,
    server: Server,
    documents: Sequence[bytes],
    now: datetime,
    *,
    accept_expired_timestamp: bool = False,
    say: Say = _quiet,
) -> list[PublishResult]:
    """Publish the requests these signatures documents are for, with every signature collected.

    Each document is checked against its request (stored in the home) and kept
    at once if it checks out, so a later failure loses nothing. Then, per
    request: thresholds, the server unchanged since export, one upload, and a
    verified fetch showing our exact bytes; only then is the request marked
    published and its staged changes dropped.
    """
    if not documents:
        raise UsageError("Give at least one signatures document to publish.")
    targets: list[tuple[str, str]] = []
    loaded: dict[tuple[str, str], tuple[Request, Planned]] = {}
    first_error: CeremonyError | None = None
    for raw in documents:
        try:
            doc = SignaturesDocument.from_bytes(raw)
            key = (doc.gun, doc.request_id)
            repo = home.repository(doc.gun)
            if key not in loaded:
                request = repo.load_request(doc.request_id)
                given_up = repo.record(doc.request_id).cancelled
                if given_up is not None:
                    raise InputRejected(
                        f"Request {doc.request_id} was given up ({given_up}): publish the "
                        "signatures made for the request that replaced it."
                    )
                loaded[key] = (request, replan(request))
                del request  # `loaded` holds it; `_publish_one` lets it go
            check_signatures(loaded[key][1], combine(loaded[key][0], [doc]))
            if repo.save_signatures(doc):
                say(f"Kept a new signatures document for request {doc.request_id}.")
            if key not in targets:
                targets.append(key)
        except CeremonyError as exc:
            first_error = first_error or exc
    if first_error is not None:
        raise first_error
    return [
        _publish_one(home, server, loaded, key, now, say, accept_expired_timestamp)
        for key in targets
    ]


def _publish_one(
    home: Home,
    server: Server,
    loaded: dict[tuple[str, str], tuple[Request, Planned]],
    key: tuple[str, str],
    now: datetime,
    say: Say,
    accept_expired_timestamp: bool = False,
) -> PublishResult:
    """Publish the request `key` names, taking it out of `loaded` (so that its memory can go
    before the staged changes are read back)."""
    gun = key[0]
    repo = home.repository(gun)
    request, result = loaded.pop(key)
    with _publishing(repo):
        record = repo.record(request.id)
        if record.published is not None:
            say(f"Request {request.id} was already published at {record.published.at}.")
            # A publish killed after marking it published: drop its staged changes and log
            # it now (both idempotent), or they would stay staged and be exported again.
            dropped = repo.unstage(record.staged_ids)
            if not any(e.get("request_id") == request.id for e in repo.publish_log()):
                repo.log(
                    {
                        "at": record.published.at,
                        "request_id": request.id,
                        "request_digest": request.digest,
                        "versions": dict(record.published.versions),
                        "signatures_documents": len(repo.signatures(request.id)),
                    }
                )
            return PublishResult(gun, request.id, record.published.versions, True, dropped)
        collected = repo.signatures(request.id)
        signatures = combine(request, collected)
        check_signatures(result, signatures)
        missing = shortfall(progress(result, signatures))
        if missing:
            raise VerificationFailed(
                f"Not enough signatures to publish request {request.id}: {missing} "
                f"(the {len(collected)} signatures document(s) collected are kept; publish again "
                "with the rest)."
            )
        upload = upload_files(result, signatures)
        say(f"Checking {gun} on {server.location} …")
        before = fetch(repo, server, now, known=result.base)
        _check_freeze(before, now, accept_expired_timestamp, say)
        before_files = before.envelopes if before is not None else None
        if already_served(result, before_files):
            say("The server already serves this request's metadata (an earlier upload).")
            uploaded_here = False
        else:
            moved = moved_since_export(request, before_files)
            if moved:
                raise VerificationFailed(
                    f"The server moved since request {request.id} was exported "
                    f"({', '.join(moved)}): re-export with `ceremony-online export {gun}` and "
                    "sign again (the staged changes and signatures are kept)."
                )
            say(f"Uploading {', '.join(upload)} …")
            server.publish(gun, {role: env.raw for role, env in upload.items()})
            uploaded_here = True
        say(f"Reading {gun} back from {server.location} and verifying it …")
        after = _read_back(repo, server, now, {**result.base, **upload})
        after_files = after.envelopes if after is not None else None
        if uploaded_here:
            check_served(upload, after_files)
        elif not already_served(result, after_files):
            raise VerificationFailed(
                f"The server no longer serves request {request.id}'s metadata: check the "
                "server, then publish again (everything is kept)."
            )
        versions = {role: rp.body.version for role, rp in result.roles.items()}
        published = Published(GoTime.from_datetime(now).format(), versions)
        repo.mark_published(request.id, published)
        entry = {
            "at": published.at,
            "request_id": request.id,
            "request_digest": request.digest,
            "versions": dict(versions),
            "signatures_documents": len(collected),
        }
        request_id = request.id
        # A million staged targets are read back to drop them: let go of the request, its
        # plan and the metadata first, so the two are never in memory together.
        del request, result, upload, before, before_files, after, after_files, signatures
        dropped = repo.unstage(record.staged_ids)
        repo.log(entry)
    return PublishResult(gun, request_id, versions, False, dropped)


def _read_back(
    repo: RepositoryHome, server: Server, now: datetime, known: Mapping[str, Envelope[Any]]
) -> FetchedRepository | None:
    """Fetch and verify after an upload, saying that the upload itself went through.

    What was just uploaded is not downloaded again: the server's new timestamp and
    snapshot are, and they must record exactly the uploaded bytes."""
    try:
        return fetch(repo, server, now, known=known)
    except CeremonyError as exc:
        raise type(exc)(
            f"The server took the upload, but reading it back failed ({exc.message.rstrip('.')}): "
            "publish again once that is fixed; everything is kept."
        ) from exc


# ---------------------------------------------------------------------------
# status


@dataclass(frozen=True, slots=True)
class RoleStatus:
    """A published role: version, expiry, who signs it."""

    role: str
    version: int
    expires: GoTime
    threshold: int
    keyids: tuple[str, ...]
    expiring: bool  # signed offline and within the warning window


@dataclass(frozen=True, slots=True)
class RequestStatus:
    record: RequestRecord
    documents: int
    sets: tuple[SetProgress, ...]


@dataclass(frozen=True, slots=True)
class RepositoryStatus:
    gun: str
    published: tuple[RoleStatus, ...] | None  # None: not on the server (or not reachable)
    server_problem: CeremonyError | None
    staged: tuple[StagedChange, ...]
    requests: tuple[RequestStatus, ...]
    warnings: tuple[str, ...] = ()  # from verifying what the server serves


def published_roles(fetched: FetchedRepository, now: datetime) -> tuple[RoleStatus, ...]:
    """Version, expiry and signing keys of every verified role."""
    report = fetched.report
    root: Root = report.root.body
    keyids: dict[str, tuple[tuple[str, ...], int]] = {
        name: (spec.keyids, spec.threshold) for name, spec in root.roles.items()
    }
    keys: dict[str, Key] = dict(root.keys)
    parents: list[Targets] = [report.targets.body, *(e.body for e in report.delegations.values())]
    for body in parents:
        keys.update(body.delegations.keys)
        for spec in body.delegations.roles:
            keyids[spec.name] = (spec.keyids, spec.threshold)
    out = []
    for r in report.roles:
        expires = r.expires
        raw_ids, threshold = keyids.get(r.name, ((), r.threshold))
        ids = tuple(shown_key_id(keys[k]) if k in keys else k for k in raw_ids)
        offline = r.name not in ("snapshot", "timestamp")  # the server renews those itself
        expiring = offline and expires.before(now + EXPIRY_WARNING)
        out.append(RoleStatus(r.name, r.version, expires, threshold, ids, expiring))
    return tuple(sorted(out, key=lambda s: role_order(s.role)))


def repository_status(
    home: Home, server: Server | None, gun: str, now: datetime
) -> RepositoryStatus:
    """What is published, staged, exported and signed for `gun`.

    A server that cannot be reached is reported in `server_problem` rather
    than raised, so the local state is still shown.
    """
    repo = home.repository(gun)
    published: tuple[RoleStatus, ...] | None = None
    problem: CeremonyError | None = None
    warnings: tuple[str, ...] = ()
    if server is not None:
        try:
            fetched = fetch(repo, server, now)
            if fetched is not None:
                published = published_roles(fetched, now)
                warnings = fetched.report.warnings
                problem = freeze(fetched, now)
        except CeremonyError as exc:
            problem = exc
    requests: list[RequestStatus] = []
    for record in repo.records():
        if record.published is not None or record.cancelled is not None:
            requests.append(RequestStatus(record, len(repo.signatures(record.id)), ()))
            continue
        request = repo.load_request(record.id)
        collected = repo.signatures(record.id)
        result = replan(request)
        sets = progress(result, combine(request, collected))
        requests.append(RequestStatus(record, len(collected), tuple(sets)))
    return RepositoryStatus(gun, published, problem, repo.staged(), tuple(requests), warnings)
