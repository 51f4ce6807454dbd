"""`ceremony key import --trust-dir DIR`: every key of a Docker or Notary trust directory."""

from __future__ import annotations

from pathlib import Path

import typer

from ceremony.cli._prompts import get_passphrase
from ceremony.core.errors import printable
from ceremony.edge.clikit import err_console
from ceremony.offline import transcript
from ceremony.offline.trust import TrustStore
from ceremony.offline.trustdir import import_trust_dir
from ceremony.signing.keystore import KeyStore


def _say(text: str) -> None:
    err_console.print(printable(text), markup=False, highlight=False)


def import_from_trust_dir(home: Path, trust_dir: Path) -> None:
    """Import the keys, say what each is and serves, print each imported id on stdout."""
    store = KeyStore(home)

    def passphrase_for(alias: str, path: Path, new: bool) -> str:
        return get_passphrase(alias, new=new, label=f" in {path.name}")

    results, notes = import_trust_dir(store, TrustStore(home), trust_dir, passphrase_for)
    for note in notes:
        _say(f"note: {note}")
    printed: set[str] = set()
    for item in results:
        label = item.found.label(trust_dir)
        if item.record is None:
            _say(f"{label}: left in the trust directory ({item.skipped}).")
            continue
        record = item.record
        state = "imported" if item.new else "already in the store"
        _say(f"{label}: {state}")
        for line in store.describe(record):
            _say(f"  {line}")
        if record.role == "root" and not any(c is not None for c in record.guns.values()):
            _say(
                "  no certificate for it was found in the trust directory's tuf/ cache or in "
                "this machine's trust state; `ceremony key export-public --gun GUN --key ID` "
                "certifies it for a repository"
            )
        elif not record.guns:
            _say(
                "  it serves no repository yet; `ceremony key export-public --gun GUN --key ID` "
                "adds one"
            )
        if record.canonical_id not in printed:
            printed.add(record.canonical_id)
            transcript.note(keys=[record.canonical_id])
            typer.echo(record.canonical_id)
    _say(
        f"Imported {len(printed)} key(s) from {trust_dir}. Once the ceremony works, remove "
        "them from the online machine (its private/ folder) and keep its backups offline."
    )
