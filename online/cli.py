"""`ceremony-online`: the online half's commands (stage, export, publish, status).

Printing and the clock live here only: results go to stdout, progress to
stderr, and every failure becomes one sentence and an exit code in
`ceremony.edge.clikit.run_app`. The work is done by `online.operations` (server and
home) and the pure `online.flow`.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from ceremony.core.canonical import parse_json
from ceremony.core.changes import (
    AddTarget,
    Change,
    RemoveDelegation,
    RemoveTarget,
    ReplaceKeys,
    SetDelegation,
)
from ceremony.core.documents import PublicKeysDocument, SignaturesDocument
from ceremony.core.errors import CeremonyError, InputRejected, UsageError, VerificationFailed
from ceremony.core.gotime import utc_now
from ceremony.core.gun import check_gun
from ceremony.core.keys import key_from_pem
from ceremony.core.metadata import FileMeta, is_delegation_name
from ceremony.edge.clikit import new_app, output_console, run_app
from ceremony.edge.fsutil import MAX_BULK_INPUT, atomic_write, read_input
from ceremony.qr.frames import ContentType
from ceremony.qr.transfer import QrFormat, QrPreset, digest_phrase, read_qr, write_qr
from online.changelist import canonical_custom, read_changelist, translate
from online.client.config import ENV_DOCKER_SERVER, ENV_SERVER, ENV_TLS_CA, ServerConfig
from online.client.http import TrustServer
from online.home import HOME_ENV, Home, StagedChange, default_home
from online.operations import (
    cancel_request,
    export_request,
    publish_documents,
    refresh_changes,
    repository_status,
    rotation_keys,
    stage_init,
)

app = new_app(
    "Online half of the Notary signing ceremony: stage changes, export signing requests, "
    "publish signatures. Holds no private key."
)
delegation_app = new_app("Add or remove a delegation (defined in its parent role).")
app.add_typer(delegation_app, name="delegation")

out = output_console()
err = output_console(stderr=True)

_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_STATUS_LIMIT = 40  # staged changes listed one by one; beyond, a summary


@dataclass(frozen=True, slots=True)
class Globals:
    """The global options, resolved."""

    home: Path
    server: str | None
    tls_ca: Path | None

    def config(self) -> ServerConfig:
        return ServerConfig.from_env(self.server, self.tls_ca)

    def connect(self) -> TrustServer:
        """The trust server the options name (a context manager that closes its connections)."""
        return TrustServer(self.config())


@app.callback()
def _global(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            envvar=HOME_ENV,
            help="Online home (staged changes, requests, signatures).",
            show_default="~/.ceremony-online",
        ),
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            envvar=[ENV_SERVER, ENV_DOCKER_SERVER],
            help="Trust server URL, e.g. https://notary.example.com:4443.",
        ),
    ] = None,
    tls_ca: Annotated[
        Path | None,
        typer.Option("--tls-ca", envvar=ENV_TLS_CA, help="CA certificate of the trust server."),
    ] = None,
) -> None:
    ctx.obj = Globals(home if home is not None else default_home(), server, tls_ca)


def _globals(ctx: typer.Context) -> Globals:
    obj = ctx.find_root().obj
    if not isinstance(obj, Globals):  # pragma: no cover - the callback always runs first
        raise UsageError("The global options were not read.")
    return obj


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


def _staged(home: Home, gun: str, changes: list[Change]) -> None:
    staged = home.repository(gun).stage(changes)
    _report_staged(gun, staged)


def _report_staged(gun: str, staged: tuple[StagedChange, ...]) -> None:
    if len(staged) <= _STATUS_LIMIT:
        for s in staged:
            out.print(f"staged #{s.id}: {s.change.describe()}", markup=False)
    else:
        out.print(f"staged #{staged[0].id}–#{staged[-1].id}: {len(staged)} changes", markup=False)
    err.print(
        f"{gun}: export with `ceremony-online export {gun} --out FILE` when ready.", markup=False
    )


def _load_public_keys(path: Path) -> PublicKeysDocument:
    return PublicKeysDocument.from_bytes(read_input(path, "public keys file"))


# ---------------------------------------------------------------------------
# staging commands


@app.command()
def init(
    ctx: typer.Context,
    gun: Annotated[str, typer.Argument(help="The repository (GUN) to create.")],
    public_keys: Annotated[
        Path,
        typer.Option("--public-keys", help="Public keys file from `ceremony key export-public`."),
    ],
    root_threshold: Annotated[
        int | None,
        typer.Option("--root-threshold", help="Root signatures needed (default: all keys)."),
    ] = None,
    targets_threshold: Annotated[
        int | None,
        typer.Option("--targets-threshold", help="Targets signatures needed (default: all keys)."),
    ] = None,
) -> None:
    """Stage a new repository: offline root and targets keys, server-held snapshot and timestamp."""
    g = _globals(ctx)
    gun = _gun(gun)
    keys = _load_public_keys(public_keys)
    with g.connect() as server:
        staged = stage_init(
            Home(g.home),
            server,
            gun,
            keys,
            root_threshold=root_threshold,
            targets_threshold=targets_threshold,
        )
    _report_staged(gun, (staged,))


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
    for number, line in enumerate(text.splitlines(), start=1):
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
    gun: Annotated[str, typer.Argument(help="The repository (GUN).")],
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
) -> None:
    """Stage adding target(s) to targets or a delegation."""
    gun = _gun(gun)
    role = _role(role)
    home = _home(ctx)
    if from_list is not None:
        if name is not None or file is not None or sha256 is not None or length is not None:
            raise UsageError(
                "--from stages a whole list: give no NAME, FILE, --sha256 or --length."
            )
        if custom is not None:
            raise UsageError("--custom applies to one target; it cannot be combined with --from.")
        try:
            text = read_input(from_list, "target list", cap=MAX_BULK_INPUT).decode("utf-8")
        except UnicodeDecodeError:
            raise InputRejected(f"{from_list} is not UTF-8 text; nothing was staged.") from None
        changes = parse_target_list(text, str(from_list), role)
        _staged(home, gun, changes)
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
    gun: Annotated[str, typer.Argument(help="The repository (GUN).")],
    name: Annotated[str, typer.Argument(help="Target name.")],
    role: Annotated[str, typer.Option("--role", help="targets, or a delegation.")] = "targets",
) -> None:
    """Stage removing a target."""
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
    gun: Annotated[str, typer.Argument(help="The repository (GUN).")],
    role: Annotated[RotatableRole, typer.Argument(help="root or targets.")],
    public_keys: Annotated[
        Path, typer.Option("--public-keys", help="Public keys file holding the NEW key(s).")
    ],
    threshold: Annotated[
        int | None, typer.Option("--threshold", help="Signatures needed (default: all keys).")
    ] = None,
) -> None:
    """Stage replacing the root or targets keys with those in the public keys file."""
    gun = _gun(gun)
    keys = rotation_keys(_load_public_keys(public_keys), gun, role.value)
    value = len(keys) if threshold is None else threshold
    if not 1 <= value <= len(keys):
        raise UsageError(f"--threshold must be between 1 and the {len(keys)} key(s) given.")
    _staged(_home(ctx), gun, [ReplaceKeys(role.value, keys, value)])


@app.command()
def refresh(
    ctx: typer.Context,
    gun: Annotated[str, typer.Argument(help="The repository (GUN).")],
    role: Annotated[
        list[str] | None,
        typer.Option(
            "--role",
            help="Role to re-sign with a fresh expiry; repeatable "
            "(default: every offline role expiring within 90 days).",
        ),
    ] = None,
) -> None:
    """Stage re-signing roles with a new expiry (and nothing else)."""
    g = _globals(ctx)
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
    gun: Annotated[str, typer.Argument(help="The repository (GUN).")],
) -> None:
    """Show what is published, staged, exported and signed for GUN."""
    g = _globals(ctx)
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
    for s in result.staged[:_STATUS_LIMIT]:
        out.print(f"  #{s.id}: {s.change.describe()}", markup=False)
    if len(result.staged) > _STATUS_LIMIT:
        out.print(f"  … and {len(result.staged) - _STATUS_LIMIT} more", markup=False)
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
    if result.server_problem is not None:
        raise result.server_problem
    if no_server is not None:
        raise no_server


@app.command()
def export(
    ctx: typer.Context,
    gun: Annotated[str, typer.Argument(help="The repository (GUN).")],
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
) -> None:
    """Export everything staged for GUN as one signing request (a file and/or QR codes)."""
    if out_file is None and qr_out is None and fmt is not QrFormat.TERMINAL:
        raise UsageError("Say where the request goes: --out FILE and/or --qr-out DIR.")
    g = _globals(ctx)
    gun = _gun(gun)
    with g.connect() as server:
        request = export_request(
            Home(g.home),
            server,
            gun,
            utc_now(),
            thin=thin,
            say=lambda text: err.print(text, markup=False),
        )
    data = request.to_bytes(thin=thin)
    if out_file is not None:
        write_request(out_file, data)
    if qr_out is not None or fmt is QrFormat.TERMINAL:
        write_qr(
            data,
            qr_out or Path("."),
            ContentType.REQUEST,
            preset=preset.value,
            fmt=fmt,
            console=err,
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


def write_request(path: Path, data: bytes) -> None:
    """Write an exported request atomically (the home already holds the full copy)."""
    atomic_write(path, data, mode=0o644)


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
) -> None:
    """Check the signatures, upload the signed metadata, and verify what the server serves."""
    if not signatures and not qr:
        raise UsageError(
            "Give signatures documents, or --qr with an image of the signatures QR code."
        )
    g = _globals(ctx)
    config = g.config()
    docs = [read_input(p, "signatures document") for p in signatures or []]
    docs.extend(read_qr([path], ContentType.SIGNATURES, console=err) for path in qr or [])
    for doc in docs:
        parsed = SignaturesDocument.from_bytes(
            doc
        )  # a foreign file is refused before anything else
        err.print(f"signatures document words: {digest_phrase(parsed.digest)}", markup=False)
    with TrustServer(config) as server:
        results = publish_documents(
            Home(g.home), server, docs, utc_now(), say=lambda text: err.print(text, markup=False)
        )
    for r in results:
        versions = ", ".join(f"{role} v{v}" for role, v in sorted(r.versions.items()))
        if r.already:
            out.print(
                f"Request {r.request_id} for {r.gun} was already published ({versions}).",
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


@requests_app.command("list")
def requests_list(
    ctx: typer.Context,
    gun: Annotated[str, typer.Argument(help="The repository (GUN).")],
) -> None:
    """Every request exported for GUN: its id, the versions it signs and its state."""
    repo = _home(ctx).repository(_gun(gun))
    records = repo.records()
    if not records:
        out.print(f"No request was exported for {gun} from this home.", markup=False)
    for rec in records:
        versions = ", ".join(f"{r} v{v}" for r, v in sorted(rec.versions.items()))
        out.print(
            f"{rec.id}  exported {rec.exported}  {versions or '-'}  "
            f"{len(repo.signatures(rec.id))} signatures document(s)  {rec.state}",
            markup=False,
        )


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
    """Console script `ceremony-online`."""
    if argv is None:  # the console script: the home is the operator's only, whatever the umask
        os.umask(0o077)
    run_app(app, argv)
