"""`ceremony key check`: prove, before a ceremony, that each key and its passphrase or PIN work.

Each key signs a domain-separated challenge (`ceremony.core.liveness`); the
signatures go to a small proof document (a file, or one QR code) that
`ceremony-online check-liveness` verifies against the published keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ceremony.cli import home_of
from ceremony.cli._prompts import get_passphrase
from ceremony.core.documents import sha256_hex
from ceremony.core.errors import InputRejected, MalformedInput, UsageError
from ceremony.core.gotime import utc_now
from ceremony.core.gun import check_gun
from ceremony.core.liveness import check_nonce, liveness_time
from ceremony.edge.clikit import output_console
from ceremony.edge.fsutil import atomic_write
from ceremony.offline import transcript
from ceremony.offline.liveness import check_keys, keys_to_check, proof_of
from ceremony.qr.transfer import digest_phrase
from ceremony.signing.keystore import KeyStore

out = output_console()
err = output_console(stderr=True)


def check(
    ctx: typer.Context,
    key_ids: Annotated[
        list[str] | None,
        typer.Argument(
            help="Keys to check (ids, fingerprints or prefixes); default: every live key."
        ),
    ] = None,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Where to write the liveness proof.")
    ] = None,
    qr_out: Annotated[
        Path | None,
        typer.Option("--qr-out", help="Also write the proof as one QR code into this folder."),
    ] = None,
    nonce: Annotated[
        str | None,
        typer.Option("--nonce", help="Hex nonce from the online side, to show the proof is fresh."),
    ] = None,
    gun: Annotated[
        str | None,
        typer.Option("--gun", help="Check only the live keys serving this repository (GUN)."),
    ] = None,
) -> None:
    """Sign a liveness challenge with each key; write the proof for `ceremony-online check-liveness`."""
    if out_file is None and qr_out is None:
        raise UsageError("Say where the proof goes: --out FILE and/or --qr-out DIR.")
    try:
        raw_nonce = check_nonce(nonce or "", "--nonce")
    except MalformedInput as exc:
        raise UsageError(exc.message) from exc
    if key_ids and gun:
        raise UsageError("Name keys or give --gun, not both.")
    store = KeyStore(home_of(ctx))
    records = keys_to_check(store, key_ids or (), check_gun(gun) if gun else None)
    when = liveness_time(utc_now())

    def passphrase_for(alias: str) -> str:
        return get_passphrase(alias, new=False)

    checks = check_keys(store, records, when, raw_nonce, passphrase_for)
    transcript.note(keys=[c.record.canonical_id for c in checks if c.signature is not None])
    for c in checks:
        label = f"{c.record.role} key {c.record.fingerprint}"
        if c.signature is not None:
            out.print(f"works   {label}", markup=False)
        else:
            out.print(f"FAILED  {label}: {c.problem}", markup=False)
    proof = proof_of(checks, when, raw_nonce)
    failed = [c for c in checks if c.signature is None]
    if proof is not None:
        data = proof.to_bytes()
        transcript.note(details={"proof_sha256": sha256_hex(data)})
        if out_file is not None:
            atomic_write(out_file, data, mode=0o644)
            err.print(f"Wrote the liveness proof to {out_file} (no secret).", markup=False)
        if qr_out is not None:
            from ceremony.qr.frames import ContentType
            from ceremony.qr.transfer import write_qr

            write_qr(data, qr_out, ContentType.OTHER, single=True, name="liveness", console=err)
            err.print(f"Liveness proof QR code written to {qr_out}", markup=False)
        nonce_text = f", nonce {proof.nonce}" if proof.nonce else ""
        out.print(f"checked at {when}{nonce_text}", markup=False)
        out.print(f"proof words: {digest_phrase(sha256_hex(data))}", markup=False)
    if failed:
        transcript.note(details={"failed": [c.record.canonical_id for c in failed]})
        names = ", ".join(f"{c.record.fingerprint[:16]}… ({c.problem})" for c in failed)
        kept = f"; the proof holds the other {len(checks) - len(failed)}" if proof else ""
        raise InputRejected(
            f"{len(failed)} key(s) failed the check: {names}{kept}; fix them before the ceremony."
        )
