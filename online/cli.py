"""`ceremony-online`: the online half's commands (stage, export, publish, status).

Printing and the clock live here only: results go to stdout, progress to
stderr, and every failure becomes one sentence and an exit code in
`ceremony.edge.clikit.run_app`. The work is done by `online.operations` (server and
home) and the pure `online.flow`.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from ceremony.core.batch import media_type_of
from ceremony.core.canonical import parse_json
from ceremony.core.changes import (
    AddTarget,
    Change,
    RemoveDelegation,
    RemoveTarget,
    ReplaceKeys,
    SetDelegation,
)
from ceremony.core.documents import (
    BATCH_SIGNATURES_MEDIA_TYPE,
    PublicKeysDocument,
    Request,
    SignaturesDocument,
)
from ceremony.core.errors import CeremonyError, InputRejected, UsageError, VerificationFailed
from ceremony.core.gotime import utc_now
from ceremony.core.gun import check_gun
from ceremony.core.keys import key_from_pem
from ceremony.core.metadata import FileMeta, is_delegation_name
from ceremony.edge.clikit import (
    JsonOption,
    new_app,
    output_console,
    print_json,
    run_app,
)
from ceremony.edge.fsutil import MAX_BULK_INPUT, atomic_write, read_input
from ceremony.edge.progress import Steps
from ceremony.qr.frames import ContentType
from ceremony.qr.transfer import QrFormat, QrPreset, digest_phrase, read_qr, write_qr
from online import drill_cmds, fleet, fleet_cmds, signer_cmds, staging_cmds
from online.changelist import canonical_custom, read_changelist, translate
from online.cli_root import CURRENT, Globals, app, globals_of
from online.client.config import ServerConfig
from online.client.http import TrustServer
from online.home import Home, RequestRecord
from online.operations import (
    RepositoryStatus,
    cancel_request,
    export_request,
    publish_documents,
    refresh_changes,
    repository_status,
    rotation_keys,
    stage_init,
)
from online.staging_cmds import (
    STAGED_LISTED,
    check_first_staging,
    conflict_warnings,
    merge_public_keys,
    report_staged,
)

delegation_app = new_app("Delegations (defined in their parent role): list, add, update, remove.")
app.add_typer(delegation_app, name="delegation")
app.add_typer(signer_cmds.signer_app, name="signer")
delegation_app.command("list")(signer_cmds.delegation_list)
delegation_app.command("update")(signer_cmds.delegation_update)

out = output_console()
err = output_console(stderr=True)

_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


def _globals(ctx: typer.Context) -> Globals:
    return globals_of(ctx)


def _home(ctx: typer.Context) -> Home:
    return Home(_globals(ctx).home)


def _gun(gun: str) -> str:
    return check_gun(gun)


def _role(role: str) -> str:
    if role != "targets" and not is_delegation_name(role):
        raise UsageError(
            f"{role!r} is not a targets role: use targets or a delegation such as targets/releases."
        )
    return role


_CURRENT = CURRENT  # the global options of this run, for the first-staging check


def _connector() -> Callable[[], TrustServer] | None:
    """How to reach the trust server the options name, or None when none is set."""
    if not _CURRENT:
        return None
    try:
        _CURRENT[-1].config()
    except UsageError:
        return None
    return _CURRENT[-1].connect


def _staged(home: Home, gun: str, changes: list[Change]) -> None:
    repo = home.repository(gun)
    check_first_staging(repo, gun, _connector())
    before = repo.staged()
    staged = repo.stage(changes)
    report_staged(gun, staged)
    for line in conflict_warnings(gun, before, staged):
        err.print(line, markup=False)


def _load_public_keys(path: Path) -> PublicKeysDocument:
    return PublicKeysDocument.from_bytes(read_input(path, "public keys file"))


# ---------------------------------------------------------------------------
# staging commands


@app.command()
def init(
    ctx: typer.Context,
    gun: Annotated[str, typer.Argument(help="The repository (GUN) to create.")],
    public_keys: Annotated[
        list[Path],
        typer.Option(
            "--public-keys",
            help="Public keys file from `ceremony key export-public`; repeatable (one per "
            "keyholder): the files are merged.",
            metavar="FILE",
        ),
    ],
    root_threshold: Annotated[
        int | None,
        typer.Option("--root-threshold", help="Root signatures needed (default: all keys)."),
    ] = None,
    targets_threshold: Annotated[
        int | None,
        typer.Option("--targets-threshold", help="Targets signatures needed (default: all keys)."),
    ] = None,
    over_vanished: Annotated[
        bool,
        typer.Option(
            "--over-vanished",
            help="This home trusted GUN and the server lost it: set the old trust aside and "
            "start over.",
        ),
    ] = False,
) -> None:
    """Stage a new repository: offline root and targets keys, server-held snapshot and timestamp.

    \b
    Examples:
      ceremony-online init example.com/app --public-keys keys.json
      ceremony-online init example.com/app --public-keys alice.json \\
          --public-keys bob.json --root-threshold 2
    """
    g = _globals(ctx)
    gun = _gun(gun)
    keys = merge_public_keys([(str(p), _load_public_keys(p)) for p in public_keys])
    with g.connect() as server:
        staged = stage_init(
            Home(g.home),
            server,
            gun,
            keys,
            root_threshold=root_threshold,
            targets_threshold=targets_threshold,
            over_vanished=utc_now().strftime("%Y%m%dT%H%M%SZ") if over_vanished else None,
        )
    err.print(
        f"{gun} is a NEW repository: nothing by that name is on the server yet.", markup=False
    )
    report_staged(gun, (staged,))


def _file_meta(path: Path) -> FileMeta:
    """Length, sha256 and sha512 of a file, read in chunks (targets may be large)."""
    sha256, sha512, length = hashlib.sha256(), hashlib.sha512(), 0
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                sha256.update(chunk)
                sha512.update(chunk)
                length += len(chunk)
    except FileNotFoundError:
        raise UsageError(f"The target file {path} does not exist.") from None
    except IsADirectoryError:
        raise UsageError(f"The target file {path} is a directory.") from None
    return FileMeta(length, {"sha256": sha256.digest(), "sha512": sha512.digest()})


def parse_target_list(text: str, source: str, role: str) -> list[Change]:
    """`name sha256hex length` per line (blank lines and `#` comments skipped); all or nothing."""
    changes: list[Change] = []
    for number, line in enumerate(io.StringIO(text), start=1):  # no list of a million lines
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        problem = None
        if len(fields) != 3:
            problem = f"it has {len(fields)} fields"
        elif not _HEX64.match(fields[1]):
            problem = "its second field is not a 64-digit sha256 hex digest"
        elif not fields[2].isdigit() or not fields[2].isascii():
            problem = "its third field is not a length in bytes"
        if problem is not None:
            raise InputRejected(
                f"Line {number} of {source} is not `name sha256hex length` ({problem}); "
                "nothing was staged."
            )
        meta = FileMeta(int(fields[2]), {"sha256": bytes.fromhex(fields[1])})
        changes.append(AddTarget(role, fields[0], meta))
    if not changes:
        raise InputRejected(f"{source} lists no targets; nothing was staged.")
    return changes


@app.command()
def add(
    ctx: typer.Context,
    gun: Annotated[str | None, typer.Argument(help="The repository (GUN).")] = None,
    name: Annotated[str | None, typer.Argument(help="Target name.")] = None,
    file: Annotated[
        Path | None, typer.Argument(help="The target file (or give --sha256 and --length).")
    ] = None,
    sha256: Annotated[str | None, typer.Option("--sha256", help="Target sha256 (hex).")] = None,
    length: Annotated[int | None, typer.Option("--length", help="Target length in bytes.")] = None,
    role: Annotated[
        str, typer.Option("--role", help="targets, or a delegation such as targets/releases.")
    ] = "targets",
    custom: Annotated[
        str | None, typer.Option("--custom", help="Custom data: a JSON object.")
    ] = None,
    from_list: Annotated[
        Path | None,
        typer.Option("--from", help="File of `name sha256hex length` lines: stage them all."),
    ] = None,
    from_batch: Annotated[
        Path | None,
        typer.Option(
            "--from-batch", help="File of `GUN name sha256hex length` lines: many repositories."
        ),
    ] = None,
) -> None:
    """Stage adding target(s) to targets or a delegation.

    \b
    Examples:
      ceremony-online add example.com/app v1.tar.gz ./v1.tar.gz
      ceremony-online add example.com/app v1 --sha256 HEX --length 1024
      ceremony-online add example.com/app --from targets.txt
      ceremony-online add --from-batch many.txt
    """
    role = _role(role)
    if from_batch is not None:
        if gun is not None or name is not None or from_list is not None or custom is not None:
            raise UsageError("--from-batch names the GUN on every line: give nothing else.")
        fleet_cmds.from_batch(_globals(ctx), from_batch, role, remove=False)
        return
    if gun is None:
        raise UsageError("Give the repository GUN (or --from-batch FILE).")
    gun = _gun(gun)
    home = _home(ctx)
    if from_list is not None:
        if name is not None or file is not None or sha256 is not None or length is not None:
            raise UsageError(
                "--from stages a whole list: give no NAME, FILE, --sha256 or --length."
            )
        if custom is not None:
            raise UsageError("--custom applies to one target; it cannot be combined with --from.")
        with Steps(err) as steps:
            steps.step(f"Reading the target list {from_list}")
            try:
                text = read_input(from_list, "target list", cap=MAX_BULK_INPUT).decode("utf-8")
            except UnicodeDecodeError:
                raise InputRejected(f"{from_list} is not UTF-8 text; nothing was staged.") from None
            changes = parse_target_list(text, str(from_list), role)
            steps.step(f"Staging {len(changes)} target(s) for {gun}")
            repo = home.repository(gun)
            check_first_staging(repo, gun, _connector())
            before = repo.staged()
            staged = repo.stage(changes)
        report_staged(gun, staged)
        for line in conflict_warnings(gun, before, staged):
            err.print(line, markup=False)
        return
    if name is None:
        raise UsageError("Give the target NAME and FILE, --sha256 and --length, or --from LIST.")
    if file is not None:
        if sha256 is not None or length is not None:
            raise UsageError("Give either FILE or --sha256 and --length, not both.")
        meta = _file_meta(file)
    else:
        if sha256 is None or length is None:
            raise UsageError("Give the target FILE, or both --sha256 and --length.")
        if not _HEX64.match(sha256):
            raise UsageError(f"--sha256 {sha256!r} is not a 64-digit hex digest.")
        if length < 0:
            raise UsageError("--length must not be negative.")
        meta = FileMeta(length, {"sha256": bytes.fromhex(sha256)})
    if custom is not None:
        try:
            value = parse_json(custom.encode("utf-8"), what="--custom value")
        except CeremonyError as exc:
            raise UsageError(exc.message) from exc
        meta = FileMeta(meta.length, meta.hashes, canonical_custom(value, f"target {name!r}"))
    _staged(home, gun, [AddTarget(role, name, meta)])


@app.command()
def remove(
    ctx: typer.Context,
    gun: Annotated[str | None, typer.Argument(help="The repository (GUN).")] = None,
    name: Annotated[str | None, typer.Argument(help="Target name.")] = None,
    role: Annotated[str, typer.Option("--role", help="targets, or a delegation.")] = "targets",
    from_batch: Annotated[
        Path | None,
        typer.Option("--from-batch", help="File of `GUN name` lines: many repositories."),
    ] = None,
) -> None:
    """Stage removing a target."""
    if from_batch is not None:
        if gun is not None or name is not None:
            raise UsageError("--from-batch names the GUN on every line: give nothing else.")
        fleet_cmds.from_batch(_globals(ctx), from_batch, _role(role), remove=True)
        return
    if gun is None or name is None:
        raise UsageError("Give the repository GUN and the target NAME (or --from-batch FILE).")
    _staged(_home(ctx), _gun(gun), [RemoveTarget(_role(role), name)])


@delegation_app.command("add")
def delegation_add(
    ctx: typer.Context,
    gun: Annotated[str, typer.Argument(help="The repository (GUN).")],
    role: Annotated[str, typer.Argument(help="Delegation, e.g. targets/releases.")],
    cert: Annotated[
        list[Path] | None,
        typer.Option(
            "--cert", help="PEM certificate or public key of a delegation key; repeatable."
        ),
    ] = None,
    public_keys: Annotated[
        list[Path] | None,
        typer.Option(
            "--public-keys",
            help="A public-keys file from `ceremony key export-public`: its delegation keys; repeatable.",
        ),
    ] = None,
    all_paths: Annotated[
        bool, typer.Option("--all-paths", help="The delegation may sign any target name.")
    ] = False,
    path: Annotated[
        list[str] | None, typer.Option("--path", help="Target name prefix it may sign; repeatable.")
    ] = None,
    threshold: Annotated[int, typer.Option("--threshold", help="Signatures needed.")] = 1,
) -> None:
    """Stage a delegation with exactly these keys and paths (replacing any existing definition)."""
    gun = _gun(gun)
    if not is_delegation_name(role):
        raise UsageError(f"{role!r} is not a delegation name: use targets/NAME (lowercase).")
    if all_paths == bool(path):
        raise UsageError("Give either --all-paths or at least one --path.")
    now = utc_now()
    pem_keys = [key_from_pem(read_input(p, "certificate"), now) for p in cert or []]
    doc_keys = [
        entry.key
        for p in public_keys or []
        for entry in _load_public_keys(p).keys
        if entry.role not in ("root", "targets", "snapshot", "timestamp")
    ]
    keys = tuple(dict.fromkeys([*pem_keys, *doc_keys]))
    if not keys:
        raise UsageError(
            "Give the delegation's keys with --cert or --public-keys (a file with delegation keys)."
        )
    if not 1 <= threshold <= len(keys):
        raise UsageError(f"--threshold must be between 1 and the {len(keys)} key(s) given.")
    paths = ("",) if all_paths else tuple(dict.fromkeys(path or ()))
    _staged(_home(ctx), gun, [SetDelegation(role, keys, threshold, paths)])


@delegation_app.command("remove")
def delegation_remove(
    ctx: typer.Context,
    gun: Annotated[str, typer.Argument(help="The repository (GUN).")],
    role: Annotated[str, typer.Argument(help="Delegation, e.g. targets/releases.")],
) -> None:
    """Stage removing a delegation."""
    gun = _gun(gun)
    if not is_delegation_name(role):
        raise UsageError(f"{role!r} is not a delegation name: use targets/NAME (lowercase).")
    _staged(_home(ctx), gun, [RemoveDelegation(role)])


class RotatableRole(StrEnum):
    root = "root"
    targets = "targets"


@app.command()
def rotate(
    ctx: typer.Context,
    gun: Annotated[
        str | None, typer.Argument(help="The repository (GUN); in a batch, the role.")
    ] = None,
    role: Annotated[RotatableRole | None, typer.Argument(help="root or targets.")] = None,
    public_keys: Annotated[
        list[Path] | None,
        typer.Option(
            "--public-keys",
            help="Public keys file holding the NEW key(s); in a batch, one per GUN (or a folder).",
        ),
    ] = None,
    threshold: Annotated[
        int | None, typer.Option("--threshold", help="Signatures needed (default: all keys).")
    ] = None,
    guns: fleet_cmds.GunsOption = None,
    all_: fleet_cmds.AllOption = False,
    prefix: fleet_cmds.PrefixOption = None,
) -> None:
    """Stage replacing the root or targets keys with those in the public keys file."""
    if not public_keys:
        raise UsageError("Give the new keys with --public-keys FILE.")
    if fleet_cmds.is_batch(guns, all_, prefix):
        if gun is None or role is not None:
            raise UsageError("In a batch, name only the role: `rotate root --gun G1 --gun G2`.")
        fleet_cmds.rotate(_globals(ctx), gun, guns or (), all_, prefix, public_keys, threshold)
        return
    if gun is None or role is None or len(public_keys) != 1:
        raise UsageError("Give GUN, the role and one --public-keys FILE.")
    gun = _gun(gun)
    keys = rotation_keys(_load_public_keys(public_keys[0]), gun, role.value)
    value = len(keys) if threshold is None else threshold
    if not 1 <= value <= len(keys):
        raise UsageError(f"--threshold must be between 1 and the {len(keys)} key(s) given.")
    _staged(_home(ctx), gun, [ReplaceKeys(role.value, keys, value)])


@app.command()
def refresh(
    ctx: typer.Context,
    gun: Annotated[str | None, typer.Argument(help="The repository (GUN).")] = None,
    role: Annotated[
        list[str] | None,
        typer.Option(
            "--role",
            help="Role to re-sign with a fresh expiry; repeatable "
            "(default: every offline role expiring within 90 days).",
        ),
    ] = None,
    guns: fleet_cmds.GunsOption = None,
    all_: fleet_cmds.AllOption = False,
    prefix: fleet_cmds.PrefixOption = None,
    expiring_within: fleet_cmds.ExpiringWithinOption = None,
    jobs: fleet_cmds.JobsOption = fleet.DEFAULT_JOBS,
) -> None:
    """Stage re-signing roles with a new expiry (and nothing else)."""
    g = _globals(ctx)
    if fleet_cmds.is_batch(guns, all_, prefix) or expiring_within is not None:
        fleet_cmds.no_positional(gun, "refresh")
        roles = [r if r == "root" else _role(r) for r in role or ()]
        fleet_cmds.refresh(g, guns or (), all_, prefix, roles, expiring_within, jobs)
        return
    if gun is None:
        raise UsageError("Give the repository GUN, or --gun G... / --all for a batch.")
    gun = _gun(gun)
    roles = [r if r == "root" else _role(r) for r in role or ()]
    if roles:  # named roles need no server
        changes = refresh_changes(Home(g.home), None, gun, utc_now(), roles)
    else:
        with g.connect() as server:
            changes = refresh_changes(Home(g.home), server, gun, utc_now(), roles)
    _staged(Home(g.home), gun, changes)


@app.command("import-changelist")
def import_changelist(
    ctx: typer.Context,
    gun: Annotated[str, typer.Argument(help="The repository (GUN).")],
    notary_trust_dir: Annotated[
        Path, typer.Option("--notary-trust-dir", help="The notary client's trust directory (-d).")
    ],
) -> None:
    """Stage the changes the notary client staged (notary add/remove/delegation/witness)."""
    gun = _gun(gun)
    files = read_changelist(notary_trust_dir, gun)
    changes = translate(files, utc_now())
    _staged(_home(ctx), gun, changes)
    err.print(
        f"Imported {len(files)} notary change file(s); clear notary's copy with "
        f"`notary reset {gun} --all` so they are not published twice.",
        markup=False,
    )


# ---------------------------------------------------------------------------
# status, export, publish


@app.command()
def status(
    ctx: typer.Context,
    gun: Annotated[
        str | None, typer.Argument(help="The repository (GUN); without it, every one.")
    ] = None,
    guns: fleet_cmds.GunsOption = None,
    prefix: fleet_cmds.PrefixOption = None,
    expiring_within: fleet_cmds.ExpiringWithinOption = None,
    as_json: JsonOption = False,
    jobs: fleet_cmds.JobsOption = fleet.DEFAULT_JOBS,
) -> None:
    """Show what is published, staged, exported and signed for GUN (or every repository).

    Keys are shown by their canonical id (as `ceremony key list` and `notary key list`).

    \b
    Examples:
      ceremony-online status example.com/app
      ceremony-online status --expiring-within 90d --json
    """
    g = _globals(ctx)
    if gun is None:
        fleet_cmds.status(g, guns or (), not guns, prefix, expiring_within, as_json, jobs)
        return
    if guns or prefix is not None or expiring_within is not None:
        raise UsageError("A positional GUN shows one repository: give no batch options with it.")
    gun = _gun(gun)
    config: ServerConfig | None = None
    no_server: UsageError | None = None
    try:
        config = g.config()
    except UsageError as exc:  # still show what this home holds
        no_server = exc
    if config is None:
        result = repository_status(Home(g.home), None, gun, utc_now())
    else:
        with TrustServer(config) as server:
            result = repository_status(Home(g.home), server, gun, utc_now())
    if as_json:
        print_json(status_json(gun, result))
    else:
        _print_status(gun, result, no_server)
    if result.server_problem is not None:
        raise result.server_problem
    if no_server is not None:
        raise no_server


def status_json(gun: str, result: RepositoryStatus) -> dict[str, object]:
    """`status` as data, for scripts."""
    published = None
    if result.published is not None:
        published = [
            {
                "role": r.role,
                "version": r.version,
                "expires": r.expires.format(),
                "threshold": r.threshold,
                "keys": list(r.keyids),
                "expiring": r.expiring,
            }
            for r in result.published
        ]
    return {
        "gun": gun,
        "published": published,
        "warnings": list(result.warnings),
        "staged": [{"id": s.id, "change": s.change.describe()} for s in result.staged],
        "requests": [
            {
                "id": rs.record.id,
                "words": digest_phrase(rs.record.digest),
                "exported": rs.record.exported,
                "thin": rs.record.thin,
                "state": _record_state(rs.record),
                "signatures_documents": rs.documents,
                "sets": [
                    {
                        "role": p.role,
                        "label": p.label,
                        "have": p.have,
                        "threshold": p.threshold,
                        "complete": p.complete,
                        "keys": list(p.keyids),
                        "needs": list(p.missing),
                    }
                    for p in rs.sets
                ],
            }
            for rs in result.requests
        ],
        "server_problem": result.server_problem.message if result.server_problem else None,
    }


def _print_status(gun: str, result: RepositoryStatus, no_server: UsageError | None) -> None:
    out.print(f"Repository {gun}", markup=False)
    if result.published is not None:
        width = max(len(r.role) for r in result.published)
        for r in result.published:
            keys = f"{r.threshold} of [" + ", ".join(k for k in r.keyids) + "]"
            warning = "  WARNING: expires within 90 days, refresh it" if r.expiring else ""
            out.print(
                f"  {r.role:<{width}}  v{r.version:<3} expires {r.expires.format()}  "
                f"signing keys {keys}{warning}",
                markup=False,
            )
    elif result.server_problem is None and no_server is None:
        out.print("  not published on the server yet", markup=False)
    for warning in result.warnings:
        out.print(f"  note: {warning}", markup=False)
    out.print(f"Staged changes: {len(result.staged)}", markup=False)
    for s in result.staged[:STAGED_LISTED]:
        out.print(f"  #{s.id}: {s.change.describe()}", markup=False)
    if len(result.staged) > STAGED_LISTED:
        out.print(f"  … and {len(result.staged) - STAGED_LISTED} more", markup=False)
    out.print(f"Requests: {len(result.requests)}", markup=False)
    for rs in result.requests:
        rec = rs.record
        state = rec.state
        out.print(
            f"  {rec.id}  exported {rec.exported}{' (thin)' if rec.thin else ''}, "
            f"{rs.documents} signatures document(s), {state}",
            markup=False,
        )
        for p in rs.sets:
            label = f" ({p.label})" if p.label else ""
            mark = "complete" if p.complete else "needs " + ", ".join(k for k in p.missing)
            out.print(
                f"    {p.role}{label}: {p.have} of {p.threshold} signatures — {mark}",
                markup=False,
            )


@app.command()
def export(
    ctx: typer.Context,
    gun: Annotated[str | None, typer.Argument(help="The repository (GUN).")] = None,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Where to write the request file.")
    ] = None,
    thin: Annotated[
        bool,
        typer.Option(
            "--thin", help="Leave out the base files (for an offline machine that holds them)."
        ),
    ] = False,
    qr_out: Annotated[
        Path | None,
        typer.Option("--qr-out", help="Also write the request as QR codes into this folder."),
    ] = None,
    preset: Annotated[
        QrPreset, typer.Option("--preset", help="QR size and error correction.")
    ] = QrPreset.DEFAULT,
    fmt: Annotated[
        QrFormat,
        typer.Option(
            "--format", help="QR output: numbered PNGs, a GIF, an HTML player, or the terminal."
        ),
    ] = QrFormat.PNG,
    accept_expired: Annotated[
        bool,
        typer.Option(
            "--accept-expired-timestamp",
            help="Go on although the server serves an expired timestamp (a stuck server that "
            "needs a root change to recover); the offline review flags it.",
        ),
    ] = False,
    guns: fleet_cmds.GunsOption = None,
    all_: fleet_cmds.AllOption = False,
    prefix: fleet_cmds.PrefixOption = None,
    jobs: fleet_cmds.JobsOption = fleet.DEFAULT_JOBS,
) -> None:
    """Export everything staged for GUN as one signing request (a file and/or QR codes);
    with a repeated --gun or --all, one batch request for many repositories.

    Exporting the same staged changes again re-renders the same request (same id and
    words) in any format.

    \b
    Examples:
      ceremony-online export example.com/app --out request.json
      ceremony-online export example.com/app --qr-out qr/ --format html
      ceremony-online export example.com/app --format terminal
    """
    if out_file is None and qr_out is None and fmt is not QrFormat.TERMINAL:
        raise UsageError("Say where the request goes: --out FILE and/or --qr-out DIR.")
    g = _globals(ctx)
    if fleet_cmds.is_batch(guns, all_, prefix):
        fleet_cmds.no_positional(gun, "export")
        fleet_cmds.export(g, guns or (), all_, prefix, out_file, thin, qr_out, preset, fmt, jobs)
        return
    if gun is None:
        raise UsageError("Give the repository GUN, or --gun G... / --all for a batch request.")
    gun = _gun(gun)

    steps = Steps(err)
    delivered: list[Path] = []

    def deliver(request: Request) -> None:
        """Write the file and QR files before the request is kept (a failure keeps nothing)."""
        data = request.to_bytes(thin=thin)
        if out_file is not None:
            steps.step(f"Writing the request ({len(data)} bytes) to {out_file}")
            write_request(out_file, data)
            delivered.append(out_file)
        if qr_out is not None and fmt is not QrFormat.TERMINAL:
            steps.step(f"Drawing the request as QR codes ({fmt.value}) in {qr_out}")
            write_qr(
                data,
                qr_out,
                ContentType.REQUEST,
                preset=preset.value,
                fmt=fmt,
                console=err,
                caption=qr_caption(gun, request),
                on_frame=steps.progress,
            )

    try:
        with steps, g.connect() as server:
            request = export_request(
                Home(g.home),
                server,
                gun,
                utc_now(),
                thin=thin,
                accept_expired_timestamp=accept_expired,
                say=steps.step,
                deliver=deliver,
            )
    except (CeremonyError, OSError):
        for path in delivered:  # the home could not keep it (a full disk): no request file
            path.unlink(missing_ok=True)  # that publish would refuse is left behind
        raise
    if fmt is QrFormat.TERMINAL:
        write_qr(
            request.to_bytes(thin=thin),
            Path("."),
            ContentType.REQUEST,
            preset=preset.value,
            fmt=fmt,
            console=err,
            caption=qr_caption(gun, request),
        )
    digest = request.digest
    out.print(f"request: {request.id}", markup=False)
    out.print(f"digest:  {digest}", markup=False)
    out.print(f"words:   {digest_phrase(digest)}", markup=False)
    roles = ", ".join(f"{e.role} v{e.version}" for e in request.expect)
    where = " and ".join(str(p) for p in (out_file, qr_out) if p is not None) or "the terminal"
    err.print(
        f"Wrote the {'thin ' if thin else ''}request to {where} (signs {roles}); "
        "sign it offline with `ceremony sign`.",
        markup=False,
    )


def qr_caption(gun: str, request: Request) -> str:
    """What every QR output shows beside the code: GUN, request id and the words to compare."""
    return f"{gun}  request {request.id}\nwords: {digest_phrase(request.digest)}"


def write_request(path: Path, data: bytes) -> None:
    """Write an exported request atomically (the home already holds the full copy)."""
    atomic_write(path, data, mode=0o644, sweep_stale=True)


@app.command()
def publish(
    ctx: typer.Context,
    signatures: Annotated[
        list[Path] | None, typer.Argument(help="Signatures documents from `ceremony sign`.")
    ] = None,
    qr: Annotated[
        list[Path] | None,
        typer.Option("--qr", help="Read a signatures document from QR images (repeatable)."),
    ] = None,
    accept_expired: Annotated[
        bool,
        typer.Option(
            "--accept-expired-timestamp",
            help="Go on although the server serves an expired timestamp (a stuck server that "
            "needs a root change to recover); the offline review flags it.",
        ),
    ] = False,
    jobs: fleet_cmds.JobsOption = fleet.DEFAULT_JOBS,
) -> None:
    """Check the signatures, upload the signed metadata, and verify what the server serves
    (a batch signatures document: every repository, a few at a time).

    \b
    Examples:
      ceremony-online publish signatures.json
      ceremony-online publish alice.sig bob.sig
      ceremony-online publish --qr signatures-photo.png
    """
    if not signatures and not qr:
        raise UsageError(
            "Give signatures documents, or --qr with an image of the signatures QR code."
        )
    g = _globals(ctx)
    config = g.config()
    docs = [read_input(p, "signatures document") for p in signatures or []]
    docs.extend(read_qr([path], ContentType.SIGNATURES, console=err) for path in qr or [])
    if any(media_type_of(doc) == BATCH_SIGNATURES_MEDIA_TYPE for doc in docs):
        if len(docs) != 1:
            raise UsageError("Publish a batch signatures document on its own.")
        fleet_cmds.publish(g, docs[0], jobs)
        return
    for doc in docs:
        parsed = SignaturesDocument.from_bytes(
            doc
        )  # a foreign file is refused before anything else
        err.print(f"signatures document words: {digest_phrase(parsed.digest)}", markup=False)
    with Steps(err) as steps, TrustServer(config) as server:
        results = publish_documents(
            Home(g.home),
            server,
            docs,
            utc_now(),
            accept_expired_timestamp=accept_expired,
            say=steps.step,
        )
    for r in results:
        versions = ", ".join(f"{role} v{v}" for role, v in sorted(r.versions.items()))
        if r.already:
            dropped = (
                f" Dropped {r.dropped} staged change(s) it carried (an earlier publish stopped "
                "before it could)."
                if r.dropped
                else ""
            )
            out.print(
                f"Request {r.request_id} for {r.gun} was already published ({versions}).{dropped}",
                markup=False,
            )
        else:
            out.print(
                f"Published request {r.request_id} for {r.gun}: {versions}; the server serves it "
                f"and it verifies. Dropped {r.dropped} staged change(s) it carried.",
                markup=False,
            )


@app.command("check-liveness")
def check_liveness(
    ctx: typer.Context,
    gun: Annotated[str, typer.Option("--gun", help="The repository (GUN) whose keys to check.")],
    proofs: Annotated[
        list[Path] | None, typer.Argument(help="Liveness proofs from `ceremony key check`.")
    ] = None,
    nonce: Annotated[
        str | None,
        typer.Option(
            "--nonce", help="The hex nonce given to the keyholders: every proof must answer it."
        ),
    ] = None,
    qr: Annotated[
        list[Path] | None,
        typer.Option("--qr", help="Read a liveness proof from QR images (repeatable)."),
    ] = None,
) -> None:
    """Which keys the published repository lists are proven to work, and can each role sign?

    Exits 1 if any role's threshold cannot be reached with proven keys.
    """
    from ceremony.core.documents import sha256_hex
    from ceremony.core.liveness import check_nonce
    from online.liveness import check_liveness as check
    from online.liveness import read_proof

    if not proofs and not qr:
        raise UsageError("Give liveness proof files, or --qr with an image of the proof's QR code.")
    gun = _gun(gun)
    try:
        wanted = check_nonce(nonce, "--nonce") if nonce is not None else None
    except CeremonyError as exc:
        raise UsageError(exc.message) from exc
    g = _globals(ctx)
    config = g.config()
    docs = [(str(p), read_input(p, "liveness proof")) for p in proofs or []]
    docs.extend((str(path), read_qr([path], ContentType.OTHER, console=err)) for path in qr or [])
    for source, data in docs:
        read_proof(source, data)  # a foreign file is refused before anything else
        err.print(f"{source}: proof words {digest_phrase(sha256_hex(data))}", markup=False)
    with TrustServer(config) as server:
        report = check(Home(g.home), server, gun, docs, utc_now(), nonce=wanted)
    result = report.assessment
    out.print(f"Liveness of the keys {gun} publishes (root v{report.root_version}):", markup=False)
    for key in result.keys:
        when = f"proven at {key.proven_at}" if key.proven_at else "NOT proven"
        out.print(f"  {', '.join(key.roles)} key {key.fingerprint}: {when}", markup=False)
    for role in result.roles:
        state = "reachable" if role.reachable else "NOT reachable"
        out.print(
            f"  {role.role}: {role.proven} of {role.listed} key(s) proven, {role.threshold} "
            f"needed: threshold {state}",
            markup=False,
        )
    if result.foreign:
        out.print(
            f"  note: the proofs also prove key(s) {gun} does not list (ignored): "
            + ", ".join(k[:16] for k in result.foreign),
            markup=False,
        )
    if result.unreachable:
        names = ", ".join(r.role for r in result.unreachable)
        raise VerificationFailed(
            f"With the keys proven, the threshold of {names} cannot be reached: prove the "
            "other keys (or replace lost ones) before the ceremony."
        )


requests_app = new_app(
    "Exported requests: list them, or cancel one so the next export makes a new one."
)
app.add_typer(requests_app, name="requests")
app.command("local-server")(drill_cmds.local_server)
app.command("drill")(drill_cmds.drill)
app.command("unstage")(staging_cmds.unstage)
app.command("discard")(staging_cmds.discard)


@requests_app.command("list")
def requests_list(
    ctx: typer.Context,
    gun: Annotated[str, typer.Argument(help="The repository (GUN).")],
    as_json: JsonOption = False,
) -> None:
    """Every request exported for GUN: its id, words, the versions it signs and its state."""
    repo = _home(ctx).repository(_gun(gun))
    records = repo.records()
    if as_json:
        rows = [
            {
                "id": rec.id,
                "digest": rec.digest,
                "words": digest_phrase(rec.digest),
                "exported": rec.exported,
                "thin": rec.thin,
                "versions": dict(sorted(rec.versions.items())),
                "signatures_documents": len(repo.signatures(rec.id)),
                "state": _record_state(rec),
                "detail": rec.state,
            }
            for rec in records
        ]
        print_json({"gun": gun, "requests": rows})
        return
    if not records:
        out.print(f"No request was exported for {gun} from this home.", markup=False)
    for rec in records:
        versions = ", ".join(f"{r} v{v}" for r, v in sorted(rec.versions.items()))
        out.print(
            f"{rec.id}  {digest_phrase(rec.digest)}\n    exported {rec.exported}  {versions or '-'}  "
            f"{len(repo.signatures(rec.id))} signatures document(s)  {rec.state}",
            markup=False,
        )


def _record_state(record: RequestRecord) -> str:
    """One word for scripts: exported, published or cancelled."""
    if record.published is not None:
        return "published"
    return "cancelled" if record.cancelled is not None else "exported"


@requests_app.command("cancel")
def requests_cancel(
    ctx: typer.Context,
    gun: Annotated[str, typer.Argument(help="The repository (GUN).")],
    request_id: Annotated[str, typer.Argument(help="The request id to give up.")],
) -> None:
    """Give up a request: the next export makes a new one (past the versions it used)."""
    record = cancel_request(_home(ctx), _gun(gun), request_id, utc_now())
    out.print(
        f"Request {record.id} is {record.cancelled}; the staged changes are kept. The next "
        "export makes a new request, and any keyholder who signed this one is told it was "
        "abandoned.",
        markup=False,
    )


def main(argv: list[str] | None = None) -> NoReturn:
    """Every command registered (`online.cli_root.main`, the console script, is the quick way)."""
    run_app(app, argv)
