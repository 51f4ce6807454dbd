"""`ceremony verify`, `ceremony review` and `ceremony sign`."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer
from rich.table import Table
from rich.text import Text

from ceremony.cli import home_of
from ceremony.cli._prompts import KeySecret, ask_acknowledgements, confirm, interactive, unlock
from ceremony.core.batch import BatchRequest, media_type_of
from ceremony.core.documents import BATCH_REQUEST_MEDIA_TYPE, Request
from ceremony.core.errors import InputRejected, UsageError, printable
from ceremony.core.gotime import GoTime, utc_now
from ceremony.core.keys import canonical_key_id, describe_key
from ceremony.core.metadata import Key
from ceremony.core.verify import RepositoryReport, TargetEntry, verify_repository
from ceremony.edge.clikit import JsonOption, output_console, print_json, write_lines
from ceremony.edge.fsutil import MAX_BULK_INPUT, atomic_write, read_input
from ceremony.edge.progress import Steps
from ceremony.offline import transcript
from ceremony.offline.policy import Policy
from ceremony.offline.review import (
    Acknowledgements,
    ReviewResult,
    keys_to_sign,
    normalise_fingerprint,
    record_signing,
    review_request,
    sign_review,
)
from ceremony.offline.trust import TrustStore
from ceremony.qr.transfer import digest_phrase

if TYPE_CHECKING:
    from ceremony.signing.keystore import KeyStore
    from ceremony.signing.signer import Signer

out = output_console()
err = output_console(stderr=True)


def parse_now(value: str | None) -> datetime:
    """`--now` (RFC 3339) or this machine's clock."""
    if value is None:
        return utc_now()
    try:
        return GoTime.parse(value).to_datetime()
    except (ValueError, OverflowError) as exc:
        raise UsageError(
            f"--now {value!r} is not an RFC 3339 time such as 2030-01-01T00:00:00Z."
        ) from exc


def load_metadata_dir(directory: Path) -> dict[str, bytes]:
    """Role name (without .json) -> bytes for every metadata file under `directory`."""
    if not directory.is_dir():
        raise UsageError(f"{directory} is not a directory of Notary metadata.")
    files: dict[str, bytes] = {}
    for path in sorted(directory.rglob("*.json")):
        name = path.relative_to(directory).as_posix()[: -len(".json")]
        files[name] = read_input(path, "metadata file", cap=MAX_BULK_INPUT)
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


def verify(
    ctx: typer.Context,
    directory: Annotated[
        Path,
        typer.Argument(help="A copied Notary metadata folder (e.g. ~/.notary/tuf/GUN/metadata)."),
    ],
    gun: Annotated[
        str, typer.Option("--gun", help="The repository (GUN) the metadata must belong to.")
    ],
    now: Annotated[
        str | None,
        typer.Option("--now", help="Check expiry at this RFC 3339 time instead of the clock."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the verified repository as one JSON document.")
    ] = False,
) -> None:
    """Verify a Notary metadata folder from its root down and print what it holds."""
    when = parse_now(now)
    with Steps(err, plain=False) as steps:  # stderr off a terminal: empty or one error line
        steps.step(f"Reading the metadata in {directory}")
        files = load_metadata_dir(directory)
        state = TrustStore(home_of(ctx)).load(gun)
        steps.step(f"Verifying {len(files)} metadata file(s) of {gun} from the root down")
        report = verify_repository(
            files,
            gun,
            when,
            trusted_root=state.root if state is not None else None,
            previous_versions=state.versions if state is not None else None,
        )
    if as_json:
        write_lines([json_report(report, when, first_use=state is None)])
        return
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
        (r.name, str(r.version), r.expires.format(), str(r.threshold), "\n".join(r.signed_by))
        for r in report.roles
    ]
    out.print(plain_table(("role", "version", "expires", "threshold", "signed by"), roles))
    for env in (report.targets, *report.delegations.values()):
        for d in env.body.delegations.roles:
            paths = ", ".join(repr(p) for p in d.paths) or "(none)"
            out.print(
                f"delegation {d.name}: threshold {d.threshold}, paths {paths}, keys {', '.join(d.keyids)}",
                markup=False,
            )
    # Targets can number 10⁶: plain lines written straight out, `sha256sum`-like, name last.
    entries = report.target_entries  # made on each access: once here
    out.print(f"{len(entries)} target(s): sha256, length, role, name", markup=False)
    width = max((len(t.role) for t in entries), default=0)
    write_lines(_target_line(t, width) for t in entries)


def _target_line(entry: TargetEntry, width: int) -> str:
    length, sha256 = entry.summary()
    return f"{sha256 or '-':64}  {length:>12}  {entry.role:{width}}  {printable(entry.name)}"


def json_report(report: RepositoryReport, when: datetime, *, first_use: bool) -> str:
    """The verified repository for scripts: roles, root keys, delegations and every target."""
    root = report.root.body
    doc = {
        "gun": report.gun,
        "verified_at": when.isoformat(),
        "root_trusted_on_first_use": first_use,
        "root_keys": [describe_key(root.keys[kid]).summary() for kid in root.roles["root"].keyids],
        "roles": [
            {
                "name": r.name,
                "version": r.version,
                "expires": r.expires.format(),
                "threshold": r.threshold,
                "signed_by": list(r.signed_by),
            }
            for r in report.roles
        ],
        "delegations": [
            {
                "name": d.name,
                "threshold": d.threshold,
                "paths": list(d.paths),
                "keyids": list(d.keyids),
            }
            for env in (report.targets, *report.delegations.values())
            for d in env.body.delegations.roles
        ],
        "targets": [
            {"role": t.role, "name": t.name, "length": length, "sha256": sha256}
            for t in report.target_entries
            for length, sha256 in (t.summary(),)
        ],
        "warnings": list(report.warnings),
    }
    return orjson.dumps(doc).decode("utf-8")


def read_request_bytes(request: Path | None, qr: list[Path] | None) -> bytes:
    if qr:
        from ceremony.qr.frames import ContentType
        from ceremony.qr.transfer import read_qr

        return read_qr(qr, ContentType.REQUEST)
    if request is None:
        raise UsageError("Give a request file, or --qr with images of the request's QR codes.")
    return read_input(request, "request", cap=MAX_BULK_INPUT)


def read_request(request: Path | None, qr: list[Path] | None) -> Request:
    return Request.from_bytes(read_request_bytes(request, qr))


def _batch_of(data: bytes) -> BatchRequest | None:
    """A batch request (many repositories), or None for a single request."""
    if media_type_of(data) != BATCH_REQUEST_MEDIA_TYPE:
        return None
    return BatchRequest.from_bytes(data)


def _review(home: Path, store: TrustStore, request: Request, now: datetime) -> ReviewResult:
    """Review `request` against the stored trust state (the caller holds the store's lock to sign)."""
    from ceremony.signing.keystore import KeyStore

    state = store.load(request.gun)
    return review_request(
        request,
        state,
        lambda d: store.body(request.gun, d),
        now,
        holder=functools.partial(KeyStore(home).holder, gun=request.gun),
        policy=Policy.load(home),
    )


def _trust_line(result: ReviewResult) -> str:
    if result.first_contact == "init":
        return "NEW repository, initialised from this request (first contact)"
    if result.first_contact == "tofu":
        return "FIRST CONTACT: no trust state here; the root would be trusted on first use"
    held, reached = result.trusted_root_version, result.root.body.version
    if held == reached:
        return f"chains to root v{held} held on this machine"
    return (
        f"chains from root v{held} held on this machine to root v{reached} "
        "(each signed by its predecessor's keys)"
    )


def _detail(result: ReviewResult) -> Iterator[str]:
    for d in result.diffs:
        old = f"v{d.old_version}" if d.old_version is not None else "new"
        yield ""
        yield f"{d.role}: {old} -> v{d.new_version}"
        yield f"  expires {d.new_expires} ({d.expiry_note})"
        if d.old_expires is not None:
            yield f"  previous expiry {d.old_expires}"
        for line in d.detail():
            yield f"  {line.render()}"
        for s in d.signers:
            yield f"  must be signed by {s}"


def _detail_count(result: ReviewResult) -> int:
    return sum(
        3 + (d.old_expires is not None) + d.detail_count + len(d.signers) for d in result.diffs
    )


def show_review(result: ReviewResult, now: datetime, *, full: bool) -> None:
    """The summary, every line that changes who can sign, what must be acknowledged, the detail."""
    req = result.request
    say = functools.partial(out.print, markup=False)
    say(f"Request {req.id} for {printable(req.gun)}")
    say(f"  created (online clock): {req.created}")
    say(f"  digest: {req.digest}")
    say(f"  words:  {digest_phrase(req.digest)}")
    say(f"  trust: {_trust_line(result)}")
    if result.base_timestamp is not None:
        say(f"  base: the server's timestamp {result.base_timestamp}")
    say(f"  offline clock (warnings only): {now.replace(microsecond=0).isoformat()}")
    if result.already is not None:
        say(
            f"  ALREADY SIGNED on this machine on {result.already.signed_at[0]}: `sign` refuses a "
            "replay; `sign --again` writes its signatures again over the identical bytes"
        )
    say("")
    say("Summary:")
    for d in result.diffs:
        say(f"  {d.summary()}")
    for line in result.root_keys:
        say(f"  {line}")
    say("")
    bangs = result.bang_lines
    if bangs:
        say(f"Changes to who can sign ({len(bangs)}):")
        for line in bangs:
            say(f"! {line}")
    else:
        say("No change to who can sign.")
    for trust_line in result.trust_lines:
        if not trust_line.bang:
            say(f"  {trust_line.text}")
    for violation in result.policy_violations:
        say(f"! POLICY: this machine's signing policy refuses it: {violation}")
    if result.needed:
        say("To sign it, acknowledge by name (a prompt at a terminal, or these options):")
        for need in result.needed:
            say(f"  {need.flag}    {need.why}")
    if full:
        write_lines(_detail(result))
    elif out.is_terminal:
        import pydoc

        pydoc.pager("\n".join(["Detail of every change:", *_detail(result)]))
    else:
        say("")
        say(f"(The detail, {_detail_count(result)} lines, is printed with --full.)")
    for w in result.warnings:
        err.print(f"warning: {w}", markup=False)


RequestArgument = Annotated[
    Path | None, typer.Argument(help="The request file from the online half.")
]
QrInput = Annotated[
    list[Path] | None,
    typer.Option(
        "--qr",
        help="Read the request from QR codes: images, a folder, a GIF or a video; "
        "--qr webcam (or webcam:N) films them with a camera. Repeatable.",
    ),
]
FullOption = Annotated[
    bool,
    typer.Option(
        "--full", help="Print the full detail of every change (at a terminal it opens in a pager)."
    ),
]


def review(
    ctx: typer.Context,
    request: RequestArgument = None,
    qr: QrInput = None,
    full: FullOption = False,
    as_json: JsonOption = False,
) -> None:
    """Verify a request against this machine's trust state and show exactly what would be signed.

    Read-only: it writes nothing but its transcript line, and a request already signed here
    is shown as such. The request comes from a file, or from QR codes with --qr (images, a
    folder, a GIF, a video, or --qr webcam to film the codes with a camera).

    \b
    Examples:
      ceremony review request.json
      ceremony review --qr webcam
      ceremony review --qr frames/ --full
    """
    home = home_of(ctx)
    data = read_request_bytes(request, qr)
    batch = _batch_of(data)
    if batch is not None:
        from ceremony.cli import fleet_review_cmds

        fleet_review_cmds.review(home, batch, full=full)
        return
    now = utc_now()
    req = Request.from_bytes(data)
    transcript.note(request_id=req.id, digest=req.digest)
    result = _review(home, TrustStore(home), req, now)
    if as_json:
        print_json(review_json(result))
        return
    show_review(result, now, full=full)


def review_json(result: ReviewResult) -> dict[str, object]:
    """The review as data: the same facts as the text (every `!` line, the acknowledgements)."""
    req = result.request
    roles = []
    for d in result.diffs:
        entry: dict[str, object] = {
            "role": d.role,
            "old_version": d.old_version,
            "new_version": d.new_version,
            "expires": d.new_expires,
            "summary": d.summary(),
            "lines": [{"text": line.text, "bang": line.bang} for line in d.lines],
            "signers": list(d.signers),
        }
        roles.append(entry)
    return {
        "request": req.id,
        "gun": req.gun,
        "digest": req.digest,
        "words": digest_phrase(req.digest),
        "trust": _trust_line(result),
        "already_signed": result.already.signed_at[0] if result.already is not None else None,
        "roles": roles,
        "root_keys": list(result.root_keys),
        "changes_to_who_can_sign": list(result.bang_lines),
        "acknowledgements": [
            {"option": n.flag, "names": list(n.names), "why": n.why} for n in result.needed
        ],
        "warnings": list(result.warnings),
        "policy_violations": list(result.policy_violations),
    }


def _given(
    expect_key: list[str] | None, accept: list[str] | None, abandon: list[str] | None
) -> Acknowledgements:
    return Acknowledgements(
        tuple(normalise_fingerprint(k) for k in expect_key or ()),
        tuple(dict.fromkeys(accept or ())),
        tuple(a.strip().lower() for a in abandon or ()),
    )


def _ask_acknowledgements(result: ReviewResult, given: Acknowledgements) -> Acknowledgements:
    """Prompt for what the options did not acknowledge; without a terminal, refuse."""
    missing = result.missing(given)
    if not missing:
        return given
    if not interactive():
        raise InputRejected(
            "This request must be acknowledged by name before it is signed: "
            + "; ".join(f"{n.flag} ({n.why})" for n in missing)
            + ". Compare with your record, then re-run with those options."
        )
    typed = ask_acknowledgements(given, ((need, "") for need in missing))
    result.check_acknowledgements(typed)
    still = result.missing(typed)
    if still:
        raise InputRejected(
            "What was typed does not acknowledge "
            + "; ".join(n.why for n in still)
            + ": nothing was signed."
        )
    return typed


def sign(
    ctx: typer.Context,
    request: RequestArgument = None,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write the signatures document here.")
    ] = None,
    qr: QrInput = None,
    qr_out: Annotated[
        Path | None,
        typer.Option("--qr-out", help="Also write the signatures as a QR code into DIR."),
    ] = None,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes", help="Answer the plain 'Sign?' question (it acknowledges nothing else)."
        ),
    ] = False,
    expect_key: Annotated[
        list[str] | None,
        typer.Option(
            "--expect-key",
            "--trust-root",
            help="Confirm a key the request adds or first trusts, by the fingerprint on your "
            "record (at least 16 hex digits); repeatable.",
        ),
    ] = None,
    accept: Annotated[
        list[str] | None,
        typer.Option(
            "--accept", help="Accept that the request changes who signs ROLE; repeatable."
        ),
    ] = None,
    abandon: Annotated[
        list[str] | None,
        typer.Option(
            "--abandon",
            help="Acknowledge that request ID, signed here earlier, was never published; repeatable.",
        ),
    ] = None,
    again: Annotated[
        bool,
        typer.Option(
            "--again",
            help="Sign a request already signed here once more, over the identical bytes "
            "(after its signatures file was lost).",
        ),
    ] = False,
    full: FullOption = False,
    skip: Annotated[
        list[str] | None,
        typer.Option(
            "--skip",
            help="Batch: leave this repository (GUN, named exactly) out and sign the others; "
            "repeatable.",
        ),
    ] = None,
) -> None:
    """Review a request, confirm, sign with every key held here, and write the signatures.

    What this machine signed is recorded before the signatures are written. A batch
    request is reviewed per repository and signed with one confirmation.

    \b
    Examples:
      ceremony sign request.json --out signatures.json
      ceremony sign --qr webcam --qr-out sig-qr/
      ceremony sign request.json --out s.json --yes --accept root
    """
    if request is None and not qr:
        raise UsageError(
            "Give the request to sign: a file (ceremony sign request.json --out "
            "signatures.json), or its QR codes with --qr PATH or --qr webcam."
        )
    if out_file is None and qr_out is None:
        raise UsageError("Say where the signatures go: --out FILE and/or --qr-out DIR.")
    from ceremony.signing.keystore import KeyStore

    home = home_of(ctx)
    data = read_request_bytes(request, qr)
    batch = _batch_of(data)
    if batch is not None:
        from ceremony.cli import fleet_review_cmds

        fleet_review_cmds.sign(
            home,
            batch,
            out_file=out_file,
            qr_out=qr_out,
            yes=yes,
            given=_given(expect_key, accept, abandon),
            skip=list(skip or ()),
            again=again,
            full=full,
        )
        return
    if skip:
        raise UsageError("--skip names a repository of a batch request; this request is single.")
    now = utc_now()
    req = Request.from_bytes(data)
    transcript.note(request_id=req.id, digest=req.digest)
    store = TrustStore(home)
    keystore = KeyStore(home)
    given = _given(expect_key, accept, abandon)
    waiting = functools.partial(
        err.print, "Waiting for another ceremony command that is using this home…", markup=False
    )
    with store.locked(on_wait=waiting):
        result = _review(home, store, req, now)
        show_review(result, now, full=full)
        if result.policy_violations:
            raise InputRejected(
                "This machine's signing policy refuses the request ("
                + "; ".join(result.policy_violations)
                + "); nothing was signed."
            )
        if again and result.already is None:
            raise UsageError(
                f"--again signs a request this machine signed before; {req.id} was never signed here."
            )
        if result.already is not None:
            given = Acknowledgements(
                (
                    *given.keys,
                    *(a[4:] for a in result.already.acknowledged if a.startswith("key:")),
                ),
                (
                    *given.roles,
                    *(a[5:] for a in result.already.acknowledged if a.startswith("role:")),
                ),
                (
                    *given.abandoned,
                    *(a[8:] for a in result.already.acknowledged if a.startswith("abandon:")),
                ),
            )
        result.check_acknowledgements(given)
        keys = keys_to_sign(result, again=again)
        if result.already is not None and not again and not keys:
            raise InputRejected(
                f"Request {req.id} was already signed on this machine on "
                f"{result.already.signed_at[0]}: a request is signed once. If its signatures file "
                "was lost, `ceremony sign --again` writes them again over the identical bytes."
            )
        given = _ask_acknowledgements(result, given)
        confirm(f"Sign {', '.join(result.plan.roles)} for {req.gun}?", assume_yes=yes)

        signers = unlock_signers(result, keys, keystore)
        outcome = sign_review(
            result,
            lambda key: signers.get(key.key_id),
            keys,
            given,
            GoTime.from_datetime(now).format(),
        )
        store.save(record_signing(store.load(req.gun), outcome.state), outcome.bodies)
        transcript.note(keys=[s.keyid for r in outcome.document.roles for s in r.signatures])
    # Recorded first: a failure from here on leaves a record, and `sign --again` recovers.
    data = outcome.document.to_bytes()
    if out_file is not None:
        atomic_write(out_file, data, mode=0o644, sweep_stale=True)
        err.print(f"Signatures written to {out_file}", markup=False)
    if qr_out is not None:
        from ceremony.qr.frames import ContentType
        from ceremony.qr.transfer import write_qr

        caption = (
            f"{req.gun}  request {req.id}\n"
            f"signatures words: {digest_phrase(outcome.document.digest)}"
        )
        with Steps(err) as steps:
            steps.step(f"Drawing the signatures QR code in {qr_out}")
            write_qr(
                data,
                qr_out,
                ContentType.SIGNATURES,
                console=err,
                caption=caption,
                on_frame=steps.progress,
            )
        err.print(f"Signatures QR code written to {qr_out}", markup=False)
    signed = sum(len(r.signatures) for r in outcome.document.roles)
    if again:
        out.print(
            f"Signed request {req.id} AGAIN over the identical bytes (first signed here on "
            f"{result.already.signed_at[0] if result.already else '?'}).",
            markup=False,
        )
    elif result.already is not None:
        out.print(
            f"Request {req.id} was signed here before by other keys; signed now with the "
            "key(s) that had not signed it.",
            markup=False,
        )
    out.print(f"Made {signed} signature(s) for request {req.id}", markup=False)
    out.print(f"signatures digest: {outcome.document.digest}", markup=False)
    out.print(f"signatures words: {digest_phrase(outcome.document.digest)}", markup=False)
    for role in outcome.unsigned_roles:
        err.print(
            f"note: this machine holds no key for {role}; another keyholder must sign it.",
            markup=False,
        )


def unlock_signers(
    result: ReviewResult, keys: Mapping[str, Sequence[Key]], keystore: KeyStore
) -> dict[str, Signer]:
    """Open every key that will sign before anything is signed, each asked for by name.

    Each prompt names the role, old or new (in a rotation) and the key's canonical id (the
    id `ceremony key list` and `notary key list` show); a key is opened once however many
    roles it signs.
    """
    signers: dict[str, Signer] = {}
    opened: dict[str, Signer | None] = {}
    for role, role_keys in keys.items():
        base = result.root.body.roles.get(role)
        old_ids = set(base.keyids) if base is not None and result.first_contact != "init" else set()
        rotating = any(key.key_id not in old_ids for key in role_keys) and bool(old_ids)
        for key in role_keys:
            cid = canonical_key_id(key)
            if cid not in opened:
                age = ("old" if key.key_id in old_ids else "new") if rotating else ""
                secret = KeySecret(role, cid[:16], age=age)
                opened[cid] = unlock(functools.partial(_open_signer, keystore, key), secret)
            signer = opened[cid]
            if signer is not None:
                signers[key.key_id] = signer
    return signers


def _open_signer(keystore: KeyStore, key: Key, secret: KeySecret) -> Signer | None:
    return keystore.signer_for(key, secret)
