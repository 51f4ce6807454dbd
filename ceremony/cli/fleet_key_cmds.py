"""`ceremony key certify` and the shared root key: one root key for many repositories.

Notary and Docker Content Trust use one root key for all of a user's repositories: a
second `notary init` says "Root key found, using: <id>" and certifies the same key again
with CN = the new GUN (notary-formats.md §3.4). `key certify` does that for any number of
GUNs at once, with the key wherever it lives (a key file or a token, through the signer
registry); `key generate root` reuses the one root key it finds (see `reusable_root`).
"""

from __future__ import annotations

from typing import Annotated

import typer

from ceremony.cli import home_of
from ceremony.cli._prompts import get_passphrase
from ceremony.core.errors import InputRejected, UsageError
from ceremony.core.gotime import utc_now
from ceremony.core.gun import check_gun
from ceremony.core.keys import check_root_certificate
from ceremony.edge.clikit import err_console
from ceremony.signing.keystore import KeyRecord, KeyStore


def _say(text: str) -> None:
    err_console.print(text, markup=False, highlight=False)


def reusable_root(store: KeyStore, gun: str) -> KeyRecord | None:
    """The root key `key generate root --gun GUN` reuses, as `notary init` does, or None.

    A live root key that serves other repositories but not `gun` is reused: one root key
    for all of a user's repositories. A root key that already serves `gun` means a new key
    is wanted (a root rotation), so none is reused; several candidates are ambiguous and
    the operator names one with `key certify` (or asks for `--new-key`).
    """
    live = [r for r in store.records() if r.role == "root" and r.retired is None]
    if any(gun in r.guns for r in live):
        return None
    candidates = [r for r in live if r.guns]
    if len(candidates) > 1:
        ids = ", ".join(r.canonical_id[:12] for r in candidates)
        raise UsageError(
            f"This store holds several root keys ({ids}): certify one for {gun} with "
            f"`ceremony key certify ID --gun {gun}`, or make a new one with --new-key."
        )
    return candidates[0] if candidates else None


def certify(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="The root key (id, fingerprint or prefix).")],
    gun: Annotated[
        list[str],
        typer.Option("--gun", help="A repository (GUN) the key will serve; repeatable."),
    ],
) -> None:
    """Make an existing root key (file or token) serve more repositories: one certificate
    (CN = GUN, self-signed by the key, 10 years) per GUN; print the certificate key ids."""
    store = KeyStore(home_of(ctx))
    record = store.resolve(key_id)
    if record.role != "root":
        raise UsageError(
            f"Key {record.canonical_id[:12]} is a {record.role} key: only a root key is certified."
        )
    if record.retired is not None:
        raise InputRejected(
            f"Key {record.canonical_id[:12]} was retired ({record.retired}): it certifies nothing."
        )
    guns = list(dict.fromkeys(check_gun(g) for g in gun))
    asked: dict[str, str] = {}

    def passphrase_for(alias: str) -> str:  # one passphrase or PIN for every certificate
        if alias not in asked:
            asked[alias] = get_passphrase(alias, new=False)
        return asked[alias]

    now = utc_now()
    before = dict(record.guns)
    record = store.certify_many(record, guns, passphrase_for, now)
    for g in guns:
        certificate = record.metadata_key(g)
        problem = check_root_certificate(certificate, g, now)
        if problem:
            raise InputRejected(f"The certificate for {g} is unusable: {problem}.")
        _say(f"{g}: {'already certified' if before.get(g) is not None else 'certified'}")
        typer.echo(f"{certificate.key_id}  {g}")
    _say(
        f"Root key {record.fingerprint} now serves {len(record.guns)} repositories; "
        "export each with `ceremony key export-public --gun GUN`."
    )
