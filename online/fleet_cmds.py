"""`ceremony-online` for many repositories: the batch forms of status, refresh, rotate, add,
remove, export and publish.

Every batch command names repositories the same way: a repeatable `--gun G`, or `--all`
(every repository this online home knows), narrowed with `--gun-prefix P`. A positional
GUN keeps the single-repository meaning; `online/cli.py` hands the batch forms here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Protocol

import orjson
import typer

from ceremony.core.batch import BatchSignatures
from ceremony.core.changes import Change, ReplaceKeys
from ceremony.core.documents import PublicKeysDocument
from ceremony.core.errors import (
    CeremonyError,
    EnvironmentFailure,
    InputRejected,
    UsageError,
)
from ceremony.core.gotime import utc_now
from ceremony.edge.clikit import output_console
from ceremony.edge.fsutil import MAX_BULK_INPUT, atomic_write, read_input
from ceremony.qr.frames import ContentType
from ceremony.qr.transfer import QrFormat, QrPreset, digest_phrase, write_qr
from online.client.config import ServerConfig
from online.client.http import TrustServer
from online.fleet import (
    expires_within,
    export_batch,
    fleet_status,
    parse_batch_list,
    parse_duration,
    publish_batch,
    refresh_batch,
    select_guns,
)
from online.home import Home
from online.operations import RepositoryStatus, rotation_keys


class Globals(Protocol):
    """The resolved global options of `ceremony-online` (home, server)."""

    @property
    def home(self) -> Path: ...

    def config(self) -> ServerConfig: ...

    def connect(self) -> TrustServer: ...


out = output_console()
err = output_console(stderr=True)

GunsOption = Annotated[
    list[str] | None,
    typer.Option("--gun", help="Batch: a repository (GUN); repeatable."),
]
AllOption = Annotated[
    bool, typer.Option("--all", help="Batch: every repository this online home knows.")
]
PrefixOption = Annotated[
    str | None,
    typer.Option("--gun-prefix", help="Batch: only repositories whose GUN starts with this."),
]
ExpiringWithinOption = Annotated[
    str | None,
    typer.Option(
        "--expiring-within",
        help="Batch: only roles expiring within this (90d, 12w, 1y); status lists the "
        "repositories that have one.",
    ),
]
JobsOption = Annotated[
    int,
    typer.Option("--jobs", min=1, max=32, help="Batch: repositories worked on at once."),
]


def is_batch(guns: Sequence[str] | None, all_: bool, prefix: str | None) -> bool:
    return bool(guns) or all_ or prefix is not None


def no_positional(gun: str | None, command: str) -> None:
    if gun is not None:
        raise UsageError(
            f"`{command}` takes a positional GUN or --gun/--all, not both: a positional GUN "
            "names one repository."
        )


def _say(text: str) -> None:
    err.print(text, markup=False)


def _report_staging(staged: dict[str, list[Change]], skipped: dict[str, str], home: Home) -> None:
    for gun, changes in staged.items():
        done = home.repository(gun).stage(changes)
        out.print(f"{gun}: staged {len(done)} change(s)", markup=False)
    for gun, why in skipped.items():
        out.print(f"{gun}: skipped ({why})", markup=False)
    if staged:
        _say(
            f"Staged changes for {len(staged)} repository(ies); export them as one batch with "
            "`ceremony-online export --all --out FILE` (or --gun ...)."
        )
    else:
        raise InputRejected("Nothing was staged for any repository.")


# ---------------------------------------------------------------------------
# status


def _expiry(status: RepositoryStatus, role: str) -> tuple[str, str]:
    for r in status.published or ():
        if r.role == role:
            return f"v{r.version}", r.expires.format()[:10]
    return "-", "-"


def _waiting(status: RepositoryStatus) -> int:
    return sum(
        1 for r in status.requests if r.record.published is None and r.record.cancelled is None
    )


def _status_json(s: RepositoryStatus) -> dict[str, Any]:
    return {
        "gun": s.gun,
        "published": None
        if s.published is None
        else [
            {
                "role": r.role,
                "version": r.version,
                "expires": r.expires.format(),
                "expiring": r.expiring,
            }
            for r in s.published
        ],
        "problem": s.server_problem.message if s.server_problem is not None else None,
        "staged": len(s.staged),
        "requests_waiting": [
            {"id": r.record.id, "exported": r.record.exported, "documents": r.documents}
            for r in s.requests
            if r.record.published is None and r.record.cancelled is None
        ],
        "warnings": list(s.warnings),
    }


def status(
    g: Globals,
    guns: Sequence[str],
    all_: bool,
    prefix: str | None,
    expiring_within: str | None,
    as_json: bool,
    jobs: int,
) -> None:
    """Every repository (or those named): versions, expiry, staged changes, requests waiting."""
    window = parse_duration(expiring_within) if expiring_within is not None else None
    home = Home(g.home)
    if not guns and not home.guns():
        _say("This online home knows no repository yet: stage one with `ceremony-online init`.")
        return
    chosen = select_guns(home, guns, all_ or not guns, prefix)
    now = utc_now()
    config: ServerConfig | None = None
    try:
        config = g.config()
    except UsageError:
        if window is not None:
            raise
    if config is None:
        results = fleet_status(home, None, chosen, now, jobs=jobs)
    else:
        with TrustServer(config) as server:
            results = fleet_status(home, server, chosen, now, jobs=jobs)
    if window is not None:
        results = [s for s in results if expires_within(s, now, window)]
    if as_json:
        typer.echo(orjson.dumps([_status_json(s) for s in results]).decode("utf-8"))
    else:
        rows = []
        for s in results:
            rv, re_ = _expiry(s, "root")
            tv, te = _expiry(s, "targets")
            soon = "!" if s.published and any(r.expiring for r in s.published) else " "
            note = s.server_problem.message if s.server_problem is not None else ""
            if s.published is None and s.server_problem is None and config is not None:
                note = "not published yet"
            rows.append((soon, s.gun, rv, re_, tv, te, str(len(s.staged)), str(_waiting(s)), note))
        header = (
            "",
            "repository",
            "root",
            "expires",
            "targets",
            "expires",
            "staged",
            "waiting",
            "",
        )
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            out.print(
                "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(),
                markup=False,
            )
        label = f" expiring within {expiring_within}" if window is not None else ""
        _say(
            f"{len(results)} repository(ies){label}; `!`: an offline role expires within 90 days "
            "(refresh them with `ceremony-online refresh --all --expiring-within 90d`)."
        )
    unreachable = [s for s in results if isinstance(s.server_problem, EnvironmentFailure)]
    if unreachable and unreachable[0].server_problem is not None:
        raise unreachable[0].server_problem


# ---------------------------------------------------------------------------
# staging


def refresh(
    g: Globals,
    guns: Sequence[str],
    all_: bool,
    prefix: str | None,
    roles: Sequence[str],
    expiring_within: str | None,
    jobs: int,
) -> None:
    home = Home(g.home)
    chosen = select_guns(home, guns, all_, prefix)
    window = parse_duration(expiring_within or "90d")
    now = utc_now()
    if roles and expiring_within is None:
        staging = refresh_batch(home, None, chosen, now, roles=roles, window=window, jobs=jobs)
    else:
        with g.connect() as server:
            staging = refresh_batch(
                home, server, chosen, now, roles=roles, window=window, jobs=jobs
            )
    _report_staging(dict(staging.changes), dict(staging.skipped), home)


def _public_keys_by_gun(paths: Sequence[Path]) -> dict[str, PublicKeysDocument]:
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(path.glob("*.json")) if path.is_dir() else [path])
    found: dict[str, PublicKeysDocument] = {}
    for path in files:
        document = PublicKeysDocument.from_bytes(read_input(path, "public keys file"))
        if document.gun in found:
            raise UsageError(f"Two public keys files are for {document.gun}; give one per GUN.")
        found[document.gun] = document
    return found


def rotate(
    g: Globals,
    role: str,
    guns: Sequence[str],
    all_: bool,
    prefix: str | None,
    public_keys: Sequence[Path],
    threshold: int | None,
) -> None:
    """Stage one rotation per repository, each from the public keys file made for its GUN."""
    if role not in ("root", "targets"):
        raise UsageError(f"{role!r} cannot be rotated: use root or targets.")
    home = Home(g.home)
    chosen = select_guns(home, guns, all_, prefix)
    documents = _public_keys_by_gun(public_keys)
    missing = [gun for gun in chosen if gun not in documents]
    if missing:
        raise UsageError(
            f"No public keys file is for {', '.join(missing)}: export them with `ceremony key "
            "export-public --gun G... --out DIR` and pass --public-keys DIR."
        )
    staged: dict[str, list[Change]] = {}
    for gun in chosen:
        keys = rotation_keys(documents[gun], gun, role)
        value = len(keys) if threshold is None else threshold
        if not 1 <= value <= len(keys):
            raise UsageError(f"--threshold must be between 1 and the {len(keys)} key(s) for {gun}.")
        staged[gun] = [ReplaceKeys(role, keys, value)]
    _report_staging(staged, {}, home)


def from_batch(g: Globals, path: Path, role: str, *, remove: bool) -> None:
    """`add`/`remove --from-batch FILE`: `GUN name sha256hex length` lines, all or nothing."""
    try:
        text = read_input(path, "batch target list", cap=MAX_BULK_INPUT).decode("utf-8")
    except UnicodeDecodeError:
        raise InputRejected(f"{path} is not UTF-8 text; nothing was staged.") from None
    home = Home(g.home)
    _report_staging(parse_batch_list(text, str(path), role, remove=remove), {}, home)


# ---------------------------------------------------------------------------
# export and publish


def export(
    g: Globals,
    guns: Sequence[str],
    all_: bool,
    prefix: str | None,
    out_file: Path | None,
    thin: bool,
    qr_out: Path | None,
    preset: QrPreset,
    fmt: QrFormat,
    jobs: int,
) -> None:
    """One batch request: one inner request per repository with something staged."""
    if out_file is None and qr_out is None and fmt is not QrFormat.TERMINAL:
        raise UsageError("Say where the request goes: --out FILE and/or --qr-out DIR.")
    home = Home(g.home)
    chosen = select_guns(home, guns, all_, prefix)
    with g.connect() as server:
        exported = export_batch(home, server, chosen, utc_now(), thin=thin, jobs=jobs, say=_say)
    batch = exported.batch
    data = batch.to_bytes(thin=thin)
    if out_file is not None:
        atomic_write(out_file, data, mode=0o644)
    if qr_out is not None or fmt is QrFormat.TERMINAL:
        write_qr(
            data,
            qr_out or Path("."),
            ContentType.REQUEST,
            preset=preset.value,
            fmt=fmt,
            console=err,
            caption=digest_phrase(batch.digest),
        )
    for request in batch.requests:
        roles = ", ".join(f"{e.role} v{e.version}" for e in request.expect)
        out.print(f"{request.gun}: request {request.id} ({roles})", markup=False)
    for gun, why in exported.skipped.items():
        out.print(f"{gun}: not in the batch ({why})", markup=False)
    out.print(f"batch:   {batch.id} ({len(batch.requests)} repositories)", markup=False)
    out.print(f"digest:  {batch.digest}", markup=False)
    out.print(f"words:   {digest_phrase(batch.digest)}", markup=False)
    where = " and ".join(str(p) for p in (out_file, qr_out) if p is not None) or "the terminal"
    _say(
        f"Wrote the {'thin ' if thin else ''}batch request ({len(data)} bytes) to {where}; "
        "review and sign it offline with `ceremony sign` (one confirmation for the batch)."
    )


def publish(g: Globals, data: bytes, jobs: int) -> None:
    """Publish every repository of a batch signatures document; report each; exit 1 if any failed."""
    batch = BatchSignatures.from_bytes(data)
    _say(f"batch signatures words: {digest_phrase(batch.digest)}")
    with g.connect() as server:
        results = publish_batch(Home(g.home), server, batch, utc_now(), jobs=jobs)
    failed: list[tuple[str, CeremonyError]] = []
    for r in results:
        if r.error is not None:
            failed.append((r.gun, r.error))
            out.print(f"{r.gun}: FAILED: {r.error.message}", markup=False)
        elif r.result is not None:
            versions = ", ".join(f"{role} v{v}" for role, v in sorted(r.result.versions.items()))
            state = "already published" if r.result.already else "published"
            out.print(f"{r.gun}: {state} ({versions})", markup=False)
    for gun in batch.skipped:
        out.print(
            f"{gun}: skipped by the keyholder (--skip): not signed, not published", markup=False
        )
    done = len(results) - len(failed)
    _say(
        f"{done} of {len(results)} repository(ies) published; {len(batch.skipped)} skipped offline."
    )
    if failed:
        environment = any(isinstance(e, EnvironmentFailure) for _, e in failed)
        kind: type[CeremonyError] = EnvironmentFailure if environment else InputRejected
        raise kind(
            f"{len(failed)} repository(ies) were not published ({', '.join(g for g, _ in failed)}); "
            "everything is kept: fix the cause and run the same publish again to finish them."
        )
