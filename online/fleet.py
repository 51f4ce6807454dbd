"""Many repositories at once: select them, stage for each, export one batch, publish a batch.

Every per-repository step is the single-repository operation (`online.operations`):
a batch request carries exactly the requests single exports make, and a batch publish
publishes each repository as `publish` does, keeping every signatures document before
any upload. Repositories are worked on a few at a time over the one connection pool
of the `Server`; one failing never stops the others, and a rerun finishes what is left.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from ceremony.core.batch import BatchRequest, BatchSignatures
from ceremony.core.changes import AddTarget, Change, RemoveTarget, SetExpiry
from ceremony.core.documents import Request
from ceremony.core.errors import CeremonyError, InputRejected, UsageError
from ceremony.core.gun import check_gun
from ceremony.core.metadata import FileMeta, role_order
from online.client import Server
from online.flow import default_expiry
from online.home import Home
from online.operations import (
    PublishResult,
    RepositoryStatus,
    export_request,
    fetch,
    publish_documents,
    repository_status,
)

Say = Callable[[str], None]
T = TypeVar("T")
R = TypeVar("R")
DEFAULT_JOBS = 4  # repositories worked on at once over one connection pool
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_DURATION = re.compile(r"^(\d{1,6})([dwy])$")


def _quiet(_: str) -> None:
    """Says nothing."""


def parse_duration(text: str, option: str = "--expiring-within") -> timedelta:
    """`90d`, `12w` or `1y` (365 days)."""
    match = _DURATION.match(text.strip().lower())
    if match is None:
        raise UsageError(f"{option} {text!r} is not a duration such as 90d, 12w or 1y.")
    count, unit = int(match.group(1)), match.group(2)
    return timedelta(days=count * {"d": 1, "w": 7, "y": 365}[unit])


def select_guns(home: Home, guns: Sequence[str], all_: bool, prefix: str | None) -> list[str]:
    """The repositories a batch command names: `--gun G`... or `--all`, narrowed by a prefix."""
    if all_ and guns:
        raise UsageError("Give either --all or --gun, not both.")
    if not all_ and not guns:
        raise UsageError("Name the repositories with --gun G (repeatable) or --all.")
    chosen = home.guns() if all_ else list(dict.fromkeys(check_gun(g) for g in guns))
    if prefix is not None:
        chosen = [g for g in chosen if g.startswith(prefix)]
    if not chosen:
        where = f" under {prefix!r}" if prefix is not None else ""
        raise InputRejected(f"This online home knows no repository{where}; nothing to do.")
    return chosen


def each(jobs: int, items: Sequence[T], work: Callable[[T], R]) -> list[R | CeremonyError]:
    """`work` on every item, `jobs` at a time; a failure is returned in its place, never raised."""

    def guarded(item: T) -> R | CeremonyError:
        try:
            return work(item)
        except CeremonyError as exc:
            return exc

    if jobs <= 1 or len(items) <= 1:
        return [guarded(i) for i in items]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(guarded, items))


# ---------------------------------------------------------------------------
# status


def fleet_status(
    home: Home, server: Server | None, guns: Sequence[str], now: datetime, *, jobs: int
) -> list[RepositoryStatus]:
    """`repository_status` of every GUN (a server problem is kept per repository)."""
    results = each(jobs, guns, lambda g: repository_status(home, server, g, now))
    out: list[RepositoryStatus] = []
    for gun, result in zip(guns, results, strict=True):
        if isinstance(result, CeremonyError):  # a damaged home folder: shown, not fatal
            out.append(RepositoryStatus(gun, None, result, (), ()))
        else:
            out.append(result)
    return out


def expires_within(status: RepositoryStatus, now: datetime, window: timedelta) -> bool:
    """Does an offline role (root, targets, delegations) expire within `window`?"""
    return any(
        r.role not in ("snapshot", "timestamp") and r.expires.before(now + window)
        for r in status.published or ()
    )


# ---------------------------------------------------------------------------
# staging


@dataclass(frozen=True, slots=True)
class Staging:
    """What a batch staging command would stage per repository (or why it skips one)."""

    changes: Mapping[str, list[Change]]
    skipped: Mapping[str, str]


def refresh_batch(
    home: Home,
    server: Server | None,
    guns: Sequence[str],
    now: datetime,
    *,
    roles: Sequence[str],
    window: timedelta,
    jobs: int,
) -> Staging:
    """`SetExpiry` per repository: the named roles, or each offline role expiring within `window`.

    With roles named and no window asked for, no server is needed. A repository with
    nothing due is skipped (and said), not an error.
    """
    if roles and server is None:
        return Staging({g: [SetExpiry(r, default_expiry(r, now)) for r in roles] for g in guns}, {})
    if server is None:
        raise UsageError("Configure the server (--server) to find what expires.")

    def due(gun: str) -> list[str]:
        fetched = fetch(home.repository(gun), server, now)
        if fetched is None:
            raise InputRejected(
                f"{gun} does not exist on the server, so there is nothing to refresh."
            )
        return [
            r.name
            for r in fetched.report.roles
            if r.name not in ("snapshot", "timestamp") and r.expires.before(now + window)
        ]

    changes: dict[str, list[Change]] = {}
    skipped: dict[str, str] = {}
    for gun, result in zip(guns, each(jobs, guns, due), strict=True):
        if isinstance(result, CeremonyError):
            skipped[gun] = result.message
            continue
        if not result:
            skipped[gun] = f"nothing expires within {window.days} days"
            continue
        chosen = list(roles) if roles else sorted(result, key=role_order)
        changes[gun] = [SetExpiry(r, default_expiry(r, now)) for r in chosen]
    return Staging(changes, skipped)


def parse_batch_list(text: str, source: str, role: str, *, remove: bool) -> dict[str, list[Change]]:
    """`GUN name sha256hex length` per line (remove: `GUN name`, digest and length optional);
    blank lines and `#` comments skipped; all or nothing."""
    out: dict[str, list[Change]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        problem = None
        if len(fields) not in ((2, 4) if remove else (4,)):
            problem = f"it has {len(fields)} fields"
        elif len(fields) == 4 and not _HEX64.match(fields[2]):
            problem = "its third field is not a 64-digit sha256 hex digest"
        elif len(fields) == 4 and not (fields[3].isdigit() and fields[3].isascii()):
            problem = "its fourth field is not a length in bytes"
        if problem is not None:
            shape = "GUN name [sha256hex length]" if remove else "GUN name sha256hex length"
            raise InputRejected(
                f"Line {number} of {source} is not `{shape}` ({problem}); nothing was staged."
            )
        try:
            gun = check_gun(fields[0], f"line {number} of {source}")
        except CeremonyError as exc:
            raise InputRejected(f"{exc.message.rstrip('.')}; nothing was staged.") from exc
        change: Change
        if remove:
            change = RemoveTarget(role, fields[1])
        else:
            meta = FileMeta(int(fields[3]), {"sha256": bytes.fromhex(fields[2])})
            change = AddTarget(role, fields[1], meta)
        out.setdefault(gun, []).append(change)
    if not out:
        raise InputRejected(f"{source} lists no targets; nothing was staged.")
    return out


# ---------------------------------------------------------------------------
# export


@dataclass(frozen=True, slots=True)
class BatchExport:
    batch: BatchRequest
    skipped: Mapping[str, str]  # GUN -> why it is not in the batch (nothing staged, ...)


def export_batch(
    home: Home,
    server: Server,
    guns: Sequence[str],
    now: datetime,
    *,
    thin: bool,
    jobs: int,
    say: Say = _quiet,
) -> BatchExport:
    """One request per repository with something staged (each exactly as `export` makes it).

    A repository with nothing staged is left out and said; any other failure refuses
    the batch (naming every failing repository): a request the keyholders sign should
    not silently lack a repository the operator meant to include.
    """
    staged = [g for g in guns if home.repository(g).staged()]
    skipped = {g: "nothing is staged" for g in guns if g not in staged}
    if not staged:
        raise InputRejected("Nothing is staged for any of these repositories; nothing to export.")
    results = each(jobs, staged, lambda g: export_request(home, server, g, now, thin=thin))
    failures = [
        (g, r) for g, r in zip(staged, results, strict=True) if isinstance(r, CeremonyError)
    ]
    if failures:
        for gun, exc in failures:
            say(f"{gun}: {exc.message}")
        first = failures[0][1]
        names = ", ".join(g for g, _ in failures)
        raise type(first)(
            f"The batch was not exported: {len(failures)} repository(ies) failed ({names}); "
            "fix or leave them out and export again (nothing was lost)."
        )
    requests = tuple(r for r in results if isinstance(r, Request))
    return BatchExport(BatchRequest(requests), skipped)


# ---------------------------------------------------------------------------
# publish


@dataclass(frozen=True, slots=True)
class RepositoryPublish:
    gun: str
    result: PublishResult | None
    error: CeremonyError | None


def publish_batch(
    home: Home,
    server: Server,
    batch: BatchSignatures,
    now: datetime,
    *,
    jobs: int,
) -> list[RepositoryPublish]:
    """Publish every repository of a batch signatures document, `jobs` at a time.

    Each is `publish_documents` of its own signatures document: kept in the home as
    soon as it checks out, then uploaded and read back. A failure is reported for
    its repository and the others go on; a rerun publishes what is left (what was
    published says so).
    """

    def one(index: int) -> PublishResult:
        document = batch.documents[index]
        return publish_documents(home, server, [document.to_bytes()], now)[0]

    indexes = list(range(len(batch.documents)))
    out = []
    for index, result in zip(indexes, each(jobs, indexes, one), strict=True):
        gun = batch.documents[index].gun
        if isinstance(result, CeremonyError):
            out.append(RepositoryPublish(gun, None, result))
        else:
            out.append(RepositoryPublish(gun, result, None))
    return out
