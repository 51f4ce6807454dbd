"""`ceremony key generate --token` and `ceremony key import-token`: keys on PKCS#11 tokens.

A key made on the token never leaves it and has no backup. With `--backup-shares N
--backup-threshold M --backup-out DIR` it is made in memory instead, split into share
sheets, and written onto the token: it existed outside the token, and the CLI says so.

The token is an RFC 7512 URI (`pkcs11:token=LABEL`); the module comes from the URI's
`module-path`, else `--pkcs11-module` / `CEREMONY_PKCS11_MODULE`, and is recorded in
the key's URI so signing later needs nothing else. The PIN comes from
`CEREMONY_PKCS11_PIN` or a prompt (`_prompts.get_passphrase`), never the command line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from ceremony.cli import home_of
from ceremony.cli._custody_prompts import new_share_passphrase
from ceremony.cli._prompts import get_passphrase
from ceremony.core.errors import UsageError, printable
from ceremony.core.gotime import utc_now
from ceremony.core.gun import check_gun
from ceremony.edge.clikit import err_console
from ceremony.offline import transcript
from ceremony.signing.keystore import KeyRecord, KeyStore
from ceremony.signing.pkcs11uri import Pkcs11Uri
from ceremony.signing.shares import check_split

TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        help="Make the key ON this PKCS#11 token (RFC 7512 URI, e.g. pkcs11:token=LABEL); "
        "no key file is written.",
    ),
]
ModuleOption = Annotated[
    str | None,
    typer.Option(
        "--pkcs11-module",
        envvar="CEREMONY_PKCS11_MODULE",
        help="The PKCS#11 module (.so) to load when the URI has no module-path.",
    ),
]


BackupSharesOption = Annotated[
    int | None,
    typer.Option(
        "--backup-shares",
        help="With --token: make the key in memory, split it into N share sheets, then write "
        "it onto the token (without these options a token key has no backup).",
    ),
]
BackupThresholdOption = Annotated[
    int | None,
    typer.Option("--backup-threshold", help="With --backup-shares: how many sheets rebuild it."),
]
BackupOutOption = Annotated[
    Path | None,
    typer.Option(
        "--backup-out", help="With --backup-shares: folder for the sheets, outside the home."
    ),
]
BackupProtectOption = Annotated[
    bool,
    typer.Option(
        "--backup-passphrase-protect",
        help="With --backup-shares: the shares also need a share passphrase (prompt, or "
        "CEREMONY_SHARE_PASSPHRASE).",
    ),
]


@dataclass(frozen=True, slots=True)
class BackupPlan:
    """The share sheets a token key is to be generated with."""

    shares: int
    threshold: int
    out: Path
    protect: bool


def token_backup_plan(
    token: str | None,
    shares: int | None,
    threshold: int | None,
    out: Path | None,
    protect: bool,
) -> BackupPlan | None:
    """The --backup-* options of `key generate`, all or none, and only with --token."""
    given = shares is not None or threshold is not None or out is not None or protect
    if not given:
        return None
    if token is None:
        raise UsageError(
            "--backup-shares, --backup-threshold and --backup-out are for keys generated on a "
            "token (--token); a key in a file is backed up with `ceremony key backup`."
        )
    if shares is None or threshold is None or out is None:
        raise UsageError(
            "A token key with a backup needs all three of --backup-shares N, "
            "--backup-threshold M and --backup-out DIR."
        )
    return BackupPlan(shares, threshold, out, protect)


def _say(text: str) -> None:
    err_console.print(text, markup=False, highlight=False)


def _secret(alias: str) -> str:
    return get_passphrase(alias, new=False)


def token_uri(token: str, module: str | None) -> Pkcs11Uri:
    """The URI given, with the module from the option or environment when it names none."""
    return Pkcs11Uri.parse(token).with_module(module)


def generate_on_token(
    store: KeyStore, role: str, gun: str, token: str, module: str | None, now: datetime
) -> KeyRecord:
    """`key generate … --token URI`: the key is made on the token, its record written last."""
    from ceremony.signing.tokenkeys import generate_on_token as generate

    return generate(store, role, gun, token_uri(token, module), _secret, now)


def generate_on_token_with_backup(
    store: KeyStore,
    role: str,
    gun: str,
    token: str,
    module: str | None,
    plan: BackupPlan,
    now: datetime,
) -> KeyRecord:
    """`key generate … --token URI --backup-shares N …`: made in memory, split into sheets,
    written onto the token; says plainly that the key existed outside the token."""
    from ceremony.offline import custody

    uri = custody.token_uri(token, module)
    check_split(plan.shares, plan.threshold)
    custody.prepare_out_dir(plan.out, store.home)  # refuse a bad folder before any secret
    share_passphrase = new_share_passphrase() if plan.protect else ""
    result = custody.generate_with_backup(
        store,
        role,
        gun,
        uri,
        _secret,
        count=plan.shares,
        threshold=plan.threshold,
        out=plan.out,
        share_passphrase=share_passphrase,
        now=now,
    )
    _say(
        f"The key was made in this computer's memory, not on the token, so that it could be "
        f"split into {plan.shares} share sheets (any {plan.threshold} rebuild it); it was then "
        "written onto the token (sensitive, not extractable); this program's copy is gone when "
        "it exits. It existed outside the token for the backup: make it on an air-gapped machine."
    )
    _say(
        f"THESE SHEETS ARE SECRETS: each one is part of the private key. They are in "
        f"{printable(str(plan.out))} (files 0600, folder 0700). Print them, give each to its "
        "keyholder, then delete the files."
    )
    if plan.protect:
        _say("The shares also need the share passphrase: keep it apart from every sheet.")
    for path in result.files:
        _say(f"  {printable(str(path))}")
    return result.record


def warn_no_backup() -> None:
    """Said after a key is made on a token without --backup-shares."""
    _say(
        "warning: this key was made on the token and never leaves it: it has NO BACKUP. If the "
        "token is lost or breaks, the key is gone. For a backup, generate it with "
        "--backup-shares N --backup-threshold M --backup-out DIR."
    )


def import_token(
    ctx: typer.Context,
    token: Annotated[
        str,
        typer.Option(
            "--token", help="The PKCS#11 token (RFC 7512 URI); id= or object= picks one key."
        ),
    ],
    role: Annotated[
        str | None,
        typer.Option(
            "--role",
            help="Role of the keys adopted (default: from the label of keys made by this tool, "
            "or root for a key with a certificate on the token).",
        ),
    ] = None,
    gun: Annotated[
        str | None,
        typer.Option(
            "--gun", help="A repository the keys serve (a root key gets a certificate for it)."
        ),
    ] = None,
    pkcs11_module: ModuleOption = None,
) -> None:
    """Adopt keys already on a token: find EC keys, their public halves and certificates, and
    make a key record for each (a root key keeps its certificate's GUN); print their ids."""
    from ceremony.cli.key_cmds import _show_record
    from ceremony.signing.tokenkeys import adopt_token_keys

    store = KeyStore(home_of(ctx))
    adoption = adopt_token_keys(
        store,
        token_uri(token, pkcs11_module),
        _secret,
        role=role,
        gun=check_gun(gun) if gun is not None else None,
        now=utc_now(),
    )
    for note in adoption.notes:
        _say(f"note: {printable(note)}.")
    for record in adoption.records:
        if record.canonical_id in adoption.new:
            _say("Adopted a key from the token:")
            _show_record(store, record)
        else:
            _say(f"Key {record.canonical_id[:12]} is already in the store.")
        transcript.note(keys=[record.canonical_id])
        typer.echo(record.canonical_id)
