"""`ceremony key generate --token` and `ceremony key import-token`: keys on PKCS#11 tokens.

The token is an RFC 7512 URI (`pkcs11:token=LABEL`); the module comes from the URI's
`module-path`, else `--pkcs11-module` / `CEREMONY_PKCS11_MODULE`, and is recorded in
the key's URI so signing later needs nothing else. The PIN comes from
`CEREMONY_PKCS11_PIN` or a prompt (`_prompts.get_passphrase`), never the command line.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from ceremony.cli import home_of
from ceremony.cli._prompts import get_passphrase
from ceremony.core.errors import printable
from ceremony.core.gotime import utc_now
from ceremony.core.gun import check_gun
from ceremony.edge.clikit import err_console
from ceremony.offline import transcript
from ceremony.signing.keystore import KeyRecord, KeyStore
from ceremony.signing.pkcs11uri import Pkcs11Uri

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
