"""`ceremony verify`, `ceremony review` and `ceremony sign`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from ceremony.bundles import Request
from ceremony.cli import app, home_of
from ceremony.cli._prompts import confirm, get_passphrase, interactive
from ceremony.clikit import output_console
from ceremony.crypto import describe_key
from ceremony.errors import Aborted, InputRejected, MalformedInput, UsageError, printable
from ceremony.fsutil import atomic_write
from ceremony.gotime import GoTime, utc_now
from ceremony.qr.transfer import digest_phrase
from ceremony.review import ReviewResult, review_request, sign_review
from ceremony.trust import TrustStore
from ceremony.verify import verify_repository

out = output_console()
err = output_console(stderr=True)
MAX_DOCUMENT = 64 * 1024 * 1024


def parse_now(value: str | None) -> datetime:
    """`--now` (RFC 3339) or this machine's clock."""
    if value is None:
        return utc_now()
    try:
        return GoTime.parse(value).to_datetime()
    except ValueError as exc:
        raise UsageError(
            f"--now {value!r} is not an RFC 3339 time such as 2030-01-01T00:00:00Z."
        ) from exc


def read_input_file(path: Path, what: str) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_DOCUMENT:
            raise MalformedInput(f"{path} is {size} bytes, too large to be a {what}.")
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise UsageError(f"{path} does not exist.") from exc
    except IsADirectoryError as exc:
        raise UsageError(f"{path} is a directory, not a {what} file.") from exc


def load_metadata_dir(directory: Path) -> dict[str, bytes]:
    """Role name (without .json) -> bytes for every metadata file under `directory`."""
    if not directory.is_dir():
        raise UsageError(f"{directory} is not a directory of Notary metadata.")
    files: dict[str, bytes] = {}
    for path in sorted(directory.rglob("*.json")):
        name = path.relative_to(directory).as_posix()[: -len(".json")]
        files[name] = read_input_file(path, "metadata")
    return files


def plain_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
    """A table of literal text: cells fold instead of being cut (ids and digests stay whole),
    and rich markup in a name from a metadata file is shown, never interpreted."""
    table = Table()
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    return table


@app.command()
def verify(
    ctx: typer.Context,
    directory: Path = typer.Argument(
        ..., help="A copied Notary metadata folder (e.g. ~/.notary/tuf/GUN/metadata)."
    ),
    gun: str = typer.Option(..., "--gun", help="The repository (GUN) the metadata must belong to."),
    now: str | None = typer.Option(
        None, "--now", help="Check expiry at this RFC 3339 time instead of the clock."
    ),
) -> None:
    """Verify a Notary metadata folder from its root down and print what it holds."""
    when = parse_now(now)
    files = load_metadata_dir(directory)
    state = TrustStore(home_of(ctx)).load(gun)
    report = verify_repository(
        files,
        gun,
        when,
        trusted_root=state.root if state is not None else None,
        previous_versions=state.versions if state is not None else None,
    )
    out.print(f"{gun}: verified at {when.isoformat()}", markup=False)
    if state is None:
        out.print(
            "(no trust state for this GUN on this machine: the root was trusted on first use;"
            " compare its certificate below with a trusted record)",
            markup=False,
        )
    root = report.root.body
    for kid in root.roles["root"].keyids:
        out.print(f"root key: {describe_key(root.keys[kid]).summary()}", markup=False)
    roles = [
        (r.name, str(r.version), r.expires, str(r.threshold), "\n".join(r.signed_by))
        for r in report.roles
    ]
    out.print(plain_table(("role", "version", "expires", "threshold", "signed by"), roles))
    targets = [
        (t.role, printable(t.name), str(t.meta.length), t.meta.sha256_hex)
        for t in report.target_entries
    ]
    out.print(plain_table(("role", "target", "length", "sha256"), targets))
    for env in (report.targets, *report.delegations.values()):
        for d in env.body.delegations.roles:
            paths = ", ".join(repr(p) for p in d.paths) or "(none)"
            out.print(
                f"delegation {d.name}: threshold {d.threshold}, paths {paths}, keys {', '.join(d.keyids)}",
                markup=False,
            )


def read_request(request: Path | None, qr: list[Path] | None) -> Request:
    if qr:
        from ceremony.qr.frames import ContentType
        from ceremony.qr.transfer import read_qr

        return Request.from_bytes(read_qr(qr, ContentType.REQUEST))
    if request is None:
        raise UsageError("Give a request file, or --qr with images of the request's QR codes.")
    return Request.from_bytes(read_input_file(request, "request"))


def _review(ctx: typer.Context, request: Request) -> tuple[ReviewResult, TrustStore]:
    store = TrustStore(home_of(ctx))
    state = store.load(request.gun)
    result = review_request(request, state, lambda d: store.body(request.gun, d), utc_now())
    return result, store


def show_review(result: ReviewResult) -> None:
    req = result.request
    out.print(f"Request {req.id} for {printable(req.gun)}", markup=False)
    out.print(f"  created (online clock): {req.created}", markup=False)
    out.print(f"  digest: {req.digest}", markup=False)
    out.print(f"  words:  {digest_phrase(req.digest)}", markup=False)
    if result.first_contact == "init":
        out.print(
            "  trust: NEW repository, initialised from this request (first contact)", markup=False
        )
    elif result.first_contact == "tofu":
        out.print(
            "  trust: FIRST CONTACT: no trust state here; the root would be trusted on first use",
            markup=False,
        )
    else:
        held, reached = result.trusted_root_version, result.root.body.version
        if held == reached:
            out.print(f"  trust: chains to root v{held} held on this machine", markup=False)
        else:
            out.print(
                f"  trust: chains from root v{held} held on this machine to root v{reached} "
                "(each signed by its predecessor's keys)",
                markup=False,
            )
    for fp in result.root_fingerprints:
        out.print(f"  root certificate SHA-256: {fp}", markup=False)
    out.print(
        f"  offline clock (warnings only): {utc_now().replace(microsecond=0).isoformat()}",
        markup=False,
    )
    for d in result.diffs:
        old = f"v{d.old_version}" if d.old_version is not None else "new"
        out.print("", markup=False)
        out.print(f"{d.role}: {old} -> v{d.new_version}", markup=False)
        out.print(f"  expires {d.new_expires} ({d.expiry_note})", markup=False)
        if d.old_expires is not None:
            out.print(f"  previous expiry {d.old_expires}", markup=False)
        for line in d.lines:
            out.print(f"  {line}", markup=False)
        for s in d.signers:
            out.print(f"  must be signed by {s}", markup=False)
    for w in result.warnings:
        err.print(f"warning: {w}", markup=False)


@app.command()
def review(
    ctx: typer.Context,
    request: Path | None = typer.Argument(None, help="The request file from the online half."),
    qr: list[Path] | None = typer.Option(
        None, "--qr", help="Read the request from QR images/folders/GIF/video."
    ),
) -> None:
    """Verify a request against this machine's trust state and show exactly what would be signed."""
    req = read_request(request, qr)
    result, _ = _review(ctx, req)
    show_review(result)


@app.command()
def sign(
    ctx: typer.Context,
    request: Path | None = typer.Argument(None, help="The request file from the online half."),
    out_file: Path | None = typer.Option(None, "--out", help="Write the signatures document here."),
    qr: list[Path] | None = typer.Option(
        None, "--qr", help="Read the request from QR images/folders/GIF/video."
    ),
    qr_out: Path | None = typer.Option(
        None, "--qr-out", help="Also write the signatures as a QR code into DIR."
    ),
    yes: bool = typer.Option(False, "--yes", help="Confirm without a prompt (scripted drills)."),
    trust_root: str | None = typer.Option(
        None, "--trust-root", help="First contact: the root certificate SHA-256 to trust (hex)."
    ),
) -> None:
    """Review a request, confirm, sign with every key held here, and write the signatures."""
    if out_file is None and qr_out is None:
        raise UsageError("Say where the signatures go: --out FILE and/or --qr-out DIR.")
    req = read_request(request, qr)
    result, store = _review(ctx, req)
    show_review(result)
    if result.first_contact == "tofu":
        _confirm_first_contact(result, trust_root)
    confirm(f"Sign {', '.join(result.plan.roles)} for {req.gun}?", assume_yes=yes)
    from ceremony.keystore import KeyStore

    keystore = KeyStore(home_of(ctx))

    def passphrase_for(alias: str) -> str:
        return get_passphrase(alias, new=False)

    outcome = sign_review(
        result, lambda key: keystore.signer_for(key, passphrase_for), store.load(req.gun)
    )
    data = outcome.document.to_bytes()
    if out_file is not None:
        atomic_write(out_file, data, mode=0o644)
        err.print(f"Signatures written to {out_file}", markup=False)
    if qr_out is not None:
        from ceremony.qr.frames import ContentType
        from ceremony.qr.transfer import write_qr

        write_qr(data, qr_out, ContentType.SIGNATURES, console=err)
        err.print(f"Signatures QR code written to {qr_out}", markup=False)
    store.save(outcome.state, outcome.bodies)
    signed = sum(len(r.signatures) for r in outcome.document.roles)
    out.print(f"Made {signed} signature(s) for request {req.id}", markup=False)
    out.print(f"signatures digest: {outcome.document.digest}", markup=False)
    out.print(f"signatures words: {digest_phrase(outcome.document.digest)}", markup=False)
    for role in outcome.unsigned_roles:
        err.print(
            f"note: this machine holds no key for {role}; another keyholder must sign it.",
            markup=False,
        )


def _confirm_first_contact(result: ReviewResult, trust_root: str | None) -> None:
    fingerprints = set(result.root_fingerprints)
    if trust_root is not None:
        if trust_root.lower().replace(":", "") not in fingerprints:
            raise InputRejected(
                "The request's root certificate does not have the fingerprint given with --trust-root; do not sign it."
            )
        return
    if not interactive():
        raise Aborted(
            "First contact with this repository: compare the root certificate SHA-256 above with a trusted "
            "record and re-run with --trust-root FINGERPRINT."
        )
    confirm(
        "Trust this root (compare its certificate SHA-256 with a trusted record)?", assume_yes=False
    )
