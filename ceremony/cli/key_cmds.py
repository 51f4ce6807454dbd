"""`ceremony key …`: generate, list, import and export keys on the offline machine.

Output contract: a command's result (key ids, the key table) goes to stdout,
everything addressed to the operator goes to stderr, so ids can be captured in
scripts. `now` is read here, at the edge, and passed down.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ceremony.cli import home_of
from ceremony.cli._prompts import get_passphrase
from ceremony.cli.token_cmds import (
    BackupOutOption,
    BackupProtectOption,
    BackupSharesOption,
    BackupThresholdOption,
    ModuleOption,
    TokenOption,
    generate_on_token,
    generate_on_token_with_backup,
    token_backup_plan,
    warn_no_backup,
)
from ceremony.core.errors import CeremonyError, UsageError, printable
from ceremony.core.gotime import utc_now
from ceremony.core.gun import check_gun
from ceremony.core.keys import describe_key, key_fingerprint
from ceremony.edge.clikit import JsonOption, err_console, new_app, output_console, print_json
from ceremony.edge.fsutil import atomic_write, read_input
from ceremony.offline import transcript
from ceremony.offline.retirement import TrustedRoots, retired_lines
from ceremony.offline.trust import TrustStore
from ceremony.signing.keyfile import read_key_file_headers
from ceremony.signing.keystore import KeyRecord, KeyStore

key_app = new_app(
    "Offline keys: generate, list, import Notary/Docker key files, export public keys."
)


class NewKeyRole(StrEnum):
    """Roles a key can be generated for on the offline machine."""

    root = "root"
    targets = "targets"
    delegation = "delegation"


def _say(text: str) -> None:
    err_console.print(text, markup=False, highlight=False)


def _show_record(store: KeyStore, record: KeyRecord) -> None:
    for line in store.describe(record):
        _say(f"  {line}")
    _say(f"  lives in {printable(store.location(record))}")
    _say("  (write the fingerprint on the ceremony record: other keyholders confirm it with it)")


@key_app.command("generate")
def generate(
    ctx: typer.Context,
    role: Annotated[NewKeyRole, typer.Argument(help="root, targets or delegation.")],
    gun: Annotated[str, typer.Option("--gun", help="The repository (GUN) the key is for.")],
    token: TokenOption = None,
    pkcs11_module: ModuleOption = None,
    backup_shares: BackupSharesOption = None,
    backup_threshold: BackupThresholdOption = None,
    backup_out: BackupOutOption = None,
    backup_passphrase_protect: BackupProtectOption = False,
    new_key: Annotated[
        bool,
        typer.Option(
            "--new-key",
            help="Root: make a new key even when this store's root key could serve the GUN.",
        ),
    ] = False,
) -> None:
    """Generate a P-256 key (and for root, its certificate CN=GUN); print its id.

    Like `notary init`, a root key this store already holds for other repositories is
    used for a new GUN ("Root key found, using: ID"), certified for it; a GUN the root
    key already serves (a rotation), `--new-key` or `--token` make a new key.

    With --token the key is made on the token and has no backup, unless --backup-shares,
    --backup-threshold and --backup-out are given: then it is made in memory, split into
    share sheets, and written onto the token.

    \b
    Examples:
      ceremony key generate root --gun example.com/app
      ceremony key generate targets --gun example.com/app
    """
    from ceremony.cli.fleet_key_cmds import reusable_root

    store = KeyStore(home_of(ctx))
    gun = check_gun(gun)
    backup = token_backup_plan(
        token, backup_shares, backup_threshold, backup_out, backup_passphrase_protect
    )
    found = (
        reusable_root(store, gun)
        if role is NewKeyRole.root and token is None and not new_key
        else None
    )
    if found is not None:
        _say(f"Root key found, using: {found.canonical_id}")
        record = store.certify(
            found, gun, lambda alias: get_passphrase(alias, new=False), utc_now()
        )
        transcript.note(keys=[record.canonical_id])
        _say(f"Certified it for {gun} (give --new-key for a key of its own):")
        _show_record(store, record)
        typer.echo(record.canonical_id)
        return
    if token is not None and backup is not None:
        record = generate_on_token_with_backup(
            store, role.value, gun, token, pkcs11_module, backup, utc_now()
        )
    elif token is not None:
        record = generate_on_token(store, role.value, gun, token, pkcs11_module, utc_now())
    else:
        passphrase = get_passphrase(role.value, new=True)
        record = store.generate(role.value, gun, passphrase, utc_now())
    transcript.note(keys=[record.canonical_id])
    _say(f"Generated a new {role.value} key for {gun}:")
    _show_record(store, record)
    if record.backup == "none":
        warn_no_backup()
    typer.echo(record.canonical_id)


BACKUP_LINES = {  # what `key list` says of each backup state; each line within 80 columns
    "file": "  backup      file: its encrypted key file (`ceremony key backup` makes sheets)",
    "shares": "  backup      shares: SLIP-39 share sheets (any threshold of them rebuild it)",
    "none": "  backup      none: only on the token, no backup: lose the token, lose the key",
}


@key_app.command("list")
def list_keys(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List the keys in the store (no passphrase needed).

    Each key shows its id (Notary's canonical key id: the name of its key file, what
    `notary key list` shows, and the id `status`, `review` and `publish` use) and its
    fingerprint (SHA-256 of the public key, which keyholders confirm aloud).
    """
    store = KeyStore(home_of(ctx))
    records = store.records()
    orphans = store.orphans()
    if as_json:
        print_json(
            {
                "home": str(store.home),
                "keys": [_key_json(store, r) for r in records],
                "orphans": [str(p) for p in orphans],
            }
        )
        return
    console = output_console()
    for line in orphan_lines(orphans):
        console.print(printable(line), markup=False)
    if not records:
        console.print(
            f"No keys in {store.home}: create one with `ceremony key generate` or `ceremony key import`.",
            markup=False,
        )
        return
    console.print(f"Keys in {printable(str(store.home))}", markup=False)
    roots = TrustedRoots(TrustStore(store.home))
    for record in records:
        console.print("", markup=False)
        for line in store.describe(record):
            console.print(printable(line), markup=False)
        # A token key's place is two lines (token, then key id), to stay within 80 columns.
        place, on_token, token_key_id = printable(store.location(record)).partition(", key id ")
        console.print(f"  lives in {place}{',' if on_token else ''}", markup=False)
        if on_token:
            console.print(f"           key id {token_key_id}", markup=False)
        console.print(
            BACKUP_LINES.get(record.backup, f"  backup      {record.backup}"), markup=False
        )
        if record.retired is not None:
            console.print(f"  RETIRED {record.retired}: its private half was removed", markup=False)
        else:
            for line in retired_lines(record, roots):
                console.print(printable(line), markup=False)


def orphan_lines(orphans: list[Path]) -> list[str]:
    """What `key list` says of a key file without a record: it is there, and what to do."""
    lines = []
    for path in orphans:
        try:
            headers = read_key_file_headers(read_input(path, "key file"))
            role, gun = (not headers.role, not headers.gun)
        except CeremonyError:
            role, gun = (True, True)
        options = (" --role ROLE" if role else "") + (" --gun GUN" if gun else "")
        lines.append(
            f"orphan key file {path}: no record (a `key generate` or `key import` was stopped); "
            f"run `ceremony key import {path}{options}` to adopt it, or remove the file."
        )
    return lines


def _key_json(store: KeyStore, record: KeyRecord) -> dict[str, object]:
    guns: dict[str, object] = {}
    for gun, certificate in sorted(record.guns.items()):
        if certificate is None:
            guns[gun] = None
        else:
            d = describe_key(certificate)
            guns[gun] = {
                "certificate_sha256": d.certificate_sha256,
                "expires": d.not_after.isoformat() if d.not_after else None,
            }
    return {
        "id": record.canonical_id,
        "fingerprint": record.fingerprint,
        "role": record.role,
        "repositories": guns,
        "location": store.location(record),
        "backup": record.backup,
        "retired": record.retired,
    }


@key_app.command("fingerprint")
def fingerprint(
    ctx: typer.Context,
    key_ids: Annotated[list[str], typer.Argument(help="Key ids (or unique prefixes).")],
) -> None:
    """Print each key's fingerprint (SHA-256 of its public key), for the ceremony record.

    Another keyholder's `ceremony sign --expect-key` takes it when a request adds the key.
    """
    store = KeyStore(home_of(ctx))
    for key_id in key_ids:
        typer.echo(key_fingerprint(store.resolve(key_id).public))


@key_app.command("import")
def import_keys(
    ctx: typer.Context,
    files: Annotated[
        list[Path] | None,
        # not click's exists=True: it calls a symbolic link loop "does not exist";
        # read_input names each flaw (a loop, a FIFO, a device) in one sentence
        typer.Argument(help="Notary or Docker private key files."),
    ] = None,
    role: Annotated[
        str | None, typer.Option("--role", help="Role for files without a role: header.")
    ] = None,
    gun: Annotated[
        str | None, typer.Option("--gun", help="GUN for keys whose file names none (e.g. root).")
    ] = None,
    trust_dir: Annotated[
        Path | None,
        typer.Option(
            "--trust-dir",
            help="Import every key of a Docker/Notary trust dir (~/.docker/trust, ~/.notary), "
            "root keys with their certificates.",
            file_okay=False,
        ),
    ] = None,
) -> None:
    """Import private key files, or a whole trust dir; print each imported key's id."""
    if trust_dir is not None:
        if files or role or gun:
            raise UsageError(
                "--trust-dir imports a whole trust dir: give no files, --role or --gun."
            )
        from ceremony.cli.trustdir_cmds import import_from_trust_dir

        import_from_trust_dir(home_of(ctx), trust_dir)
        return
    if not files:
        raise UsageError("Give key files to import, or --trust-dir DIR.")
    store = KeyStore(home_of(ctx))
    known = {r.canonical_id for r in store.records()}
    now = utc_now()
    for path in files:
        data = read_input(path, "key file")
        headers = read_key_file_headers(data)

        def passphrase_for(
            alias: str, _path: Path = path, _new: bool = not headers.encrypted
        ) -> str:
            return get_passphrase(alias, new=_new, label=f" in {_path.name}")

        record = store.import_key_file(
            data,
            passphrase_for,
            role=role,
            gun=check_gun(gun) if gun else None,
            now=now,
        )
        if record.canonical_id in known:
            _say(f"{path.name}: this key is already in the store.")
        else:
            _say(f"Imported {path.name}:")
            _show_record(store, record)
        known.add(record.canonical_id)
        transcript.note(keys=[record.canonical_id])
        typer.echo(record.canonical_id)


@key_app.command("export-public")
def export_public(
    ctx: typer.Context,
    gun: Annotated[
        list[str],
        typer.Option(
            "--gun",
            help="The repository (GUN); repeatable (then --out is a folder, one file each).",
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", help="Where to write the public keys document (a folder for several GUNs)."
        ),
    ],
    key: Annotated[
        list[str] | None,
        typer.Option("--key", help="Export only this key (id or unique prefix); repeatable."),
    ] = None,
) -> None:
    """Write the public keys (and root certificate) for GUN, for `ceremony-online`."""
    from ceremony.core.gun import gun_folder

    store = KeyStore(home_of(ctx))
    asked: dict[str, str] = {}

    def passphrase_for(alias: str) -> str:
        if alias not in asked:
            asked[alias] = get_passphrase(alias, new=False)
        return asked[alias]

    guns = list(dict.fromkeys(check_gun(g) for g in gun))
    now = utc_now()
    if len(guns) > 1:
        out.mkdir(parents=True, exist_ok=True)
        for key_id in key or ():  # each named key serves every GUN: one write per key
            store.serve(store.resolve(key_id), guns, passphrase_for, now)
    for g in guns:
        document = store.public_keys(g, key or (), passphrase_for=passphrase_for, now=now)
        path = out / f"{gun_folder(g)}.json" if len(guns) > 1 else out
        atomic_write(path, document.to_bytes(), mode=0o644)
        for entry in document.keys:
            record = store.get(entry.canonical_id)
            serves = (
                f" (this key serves {len(record.guns)} repositories)"
                if record and len(record.guns) > 1
                else ""
            )
            _say(f"  {entry.role}: {describe_key(entry.key).summary()}{serves}")
        _say(f"Wrote {len(document.keys)} public key(s) for {g} to {path} (no secrets).")
