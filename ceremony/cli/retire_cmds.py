"""`ceremony key retire`: remove an old root or targets key once a rotation has replaced it."""

from __future__ import annotations

from typing import Annotated

import typer

from ceremony.cli import home_of
from ceremony.cli._prompts import get_passphrase, interactive
from ceremony.core.errors import Aborted, printable
from ceremony.core.gotime import utc_now
from ceremony.edge.clikit import output_console
from ceremony.offline import transcript
from ceremony.offline.retirement import retire as retire_key
from ceremony.offline.review import MIN_ACK_PREFIX
from ceremony.offline.trust import TrustStore
from ceremony.signing.keystore import KeyStore

out = output_console()
err = output_console(stderr=True)


def retire(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="The key to retire (id, fingerprint or prefix).")],
    confirm: Annotated[
        str | None,
        typer.Option(
            "--confirm",
            help=f"Acknowledge by the key's id or fingerprint (at least {MIN_ACK_PREFIX} hex digits).",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Retire even a key a trusted root still lists, or one it cannot place."
        ),
    ] = False,
) -> None:
    """Remove a rotated-out key's private half (its key file, or its objects on the token:
    PIN from CEREMONY_PKCS11_PIN or a prompt); its record stays, marked retired."""
    home = home_of(ctx)
    store = KeyStore(home)
    record = store.resolve(key_id)
    transcript.note(keys=[record.canonical_id])
    for line in store.describe(record):
        err.print(f"  {printable(line)}", markup=False)
    err.print(f"  lives in {printable(store.location(record))}", markup=False)
    if confirm is None:
        if not interactive():
            raise Aborted(
                f"Retiring a key must be acknowledged: re-run with --confirm and at least "
                f"{MIN_ACK_PREFIX} hex digits of its id or fingerprint (shown above)."
            )
        confirm = typer.prompt(
            "Type the id of the key to retire (at least 16 hex digits)",
            default="",
            show_default=False,
        )
    done = retire_key(
        store,
        TrustStore(home),
        record,
        confirmation=confirm,
        force=force,
        now=utc_now(),
        pin_for=lambda alias: get_passphrase(alias, new=False),
    )
    short = done.record.canonical_id[:12]
    if done.removed is not None:
        out.print(f"Removed {done.removed}.", markup=False)
    if done.token is not None:
        if done.token_objects:
            out.print(
                f"Removed {done.token_objects} object(s) of key {short} (private key, public "
                f"key, certificates) from {printable(done.token)}.",
                markup=False,
            )
        else:
            out.print(f"{printable(done.token)} holds no object of key {short}.", markup=False)
    if done.already:
        out.print(f"Key {short} was already retired on {done.record.retired}.", markup=False)
    else:
        out.print(
            f"Retired {done.record.role} key {short} on {done.record.retired}; its record is "
            "kept. Backups of it (share sheets, copies) are not touched: destroy them too if "
            "the key must be gone for good.",
            markup=False,
        )
