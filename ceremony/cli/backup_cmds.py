"""`ceremony key backup|restore` (SLIP-39 share sheets) and `ceremony backup|restore home`.

Share words never come from the command line, where `ps` and shell history would see
them: only from a prompt, standard input or share files. Results (the files written,
the restored key id) go to stdout; everything addressed to the operator to stderr.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ceremony.cli import home_of
from ceremony.cli._custody_prompts import (
    backup_passphrase,
    expected_key,
    new_share_passphrase,
    prompt_shares,
    share_passphrase,
)
from ceremony.cli._prompts import get_passphrase
from ceremony.cli.token_cmds import ModuleOption
from ceremony.core.documents import sha256_hex
from ceremony.core.errors import InputRejected, UsageError, printable
from ceremony.core.gotime import utc_now
from ceremony.core.gun import check_gun
from ceremony.core.metadata import Key, is_delegation_name
from ceremony.edge.clikit import err_console, new_app
from ceremony.edge.fsutil import MAX_INPUT, atomic_write, read_input
from ceremony.offline import custody, homebackup, transcript
from ceremony.offline.sheets import KeyFacts
from ceremony.signing.keystore import GENERATABLE_ROLES, KeyStore
from ceremony.signing.shares import share_words

backup_app = new_app("Back up the whole offline home into one encrypted archive.")
restore_app = new_app(
    "Restore the offline home from an encrypted archive (merging, never forgetting)."
)

SHEET_CAP = 256 * 1024  # a sheet is a few kilobytes


class ShareAlgorithm(StrEnum):
    """Key kinds shares can hold."""

    ecdsa = "ecdsa"
    ed25519 = "ed25519"


def _say(text: str) -> None:
    err_console.print(text, markup=False, highlight=False)


def _passphrase_for(alias: str) -> str:
    return get_passphrase(alias, new=False)


def key_backup(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="The key (id, fingerprint or unique prefix).")],
    shares: Annotated[int, typer.Option("--shares", help="How many share sheets to make (N).")],
    threshold: Annotated[
        int, typer.Option("--threshold", help="How many sheets rebuild the key (M).")
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Folder for the sheets, outside the home (made 0700).")
    ],
    passphrase_protect: Annotated[
        bool,
        typer.Option(
            "--passphrase-protect",
            help="The shares also need a share passphrase (prompt, or CEREMONY_SHARE_PASSPHRASE).",
        ),
    ] = False,
) -> None:
    """Split a P-256 or Ed25519 key into N SLIP-39 share sheets (PDF and text), any M of which
    rebuild it; print the files written."""
    store = KeyStore(home_of(ctx))
    record = store.resolve(key_id)
    transcript.note(keys=[record.canonical_id])  # the key only: never a share word
    custody.backup_refusal(record)
    custody.prepare_out_dir(out, store.home)  # refuse a bad folder before any passphrase
    secret_passphrase = new_share_passphrase() if passphrase_protect else ""
    result = custody.backup_key(
        store,
        record,
        _passphrase_for,
        count=shares,
        threshold=threshold,
        out=out,
        share_passphrase=secret_passphrase,
        now=utc_now(),
    )
    _say(
        f"Wrote {shares} share sheets of {record.role} key {record.canonical_id[:12]} to "
        f"{printable(str(out))} (a PDF and a text file each): any {threshold} of them rebuild "
        "the key."
    )
    _say(
        "THESE SHEETS ARE SECRETS: each one is part of the private key. They are outside the "
        "home (files 0600, folder 0700). Print them, give each to its keyholder, then delete "
        "the files."
    )
    if passphrase_protect:
        _say("The shares also need the share passphrase: keep it apart from every sheet.")
    for path in result.files:
        typer.echo(str(path))


def _read_sheets(files: list[Path]) -> list[tuple[str, str]]:
    texts = []
    for path in files:
        data = read_input(path, "share file", cap=SHEET_CAP)
        try:
            texts.append((path.name, data.decode("ascii")))
        except UnicodeDecodeError:
            raise InputRejected(
                f"{path.name} is not a text share sheet (give the .txt file, not the PDF)."
            ) from None
    return texts


def _stdin_shares() -> list[list[str]]:
    """One share per line; blank lines and lines starting with # are skipped."""
    data = sys.stdin.buffer.read(MAX_INPUT + 1)
    if len(data) > MAX_INPUT:
        raise InputRejected("Standard input is too long to hold shares.")
    text = data.decode("ascii", "replace")
    return [
        share_words(line)
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def _typed_facts(
    role: str | None,
    guns: list[str],
    algorithm: ShareAlgorithm | None,
) -> tuple[str, list[str], str]:
    if role is None:
        raise UsageError(
            "Typed shares carry no role: give --role (and --gun for each repository the key "
            "serves), or give the sheets' .txt files with --share-file."
        )
    if role not in GENERATABLE_ROLES and not is_delegation_name(role):
        raise UsageError(
            f"{role!r} is not a role: use root, targets, delegation or targets/<name>."
        )
    if not guns:
        raise UsageError(f"Give --gun for each repository the {role} key serves.")
    return role, [check_gun(g) for g in guns], (algorithm or ShareAlgorithm.ecdsa).value


def key_restore(
    ctx: typer.Context,
    share_file: Annotated[
        list[Path] | None,
        typer.Option("--share-file", help="A share sheet's .txt file; repeat for each share."),
    ] = None,
    stdin: Annotated[
        bool, typer.Option("--stdin", help="Read shares from standard input, one per line.")
    ] = False,
    expect_key: Annotated[
        str | None,
        typer.Option(
            "--expect-key",
            help="The key id or fingerprint printed on the sheet (at least 16 hex digits).",
        ),
    ] = None,
    role: Annotated[
        str | None, typer.Option("--role", help="Typed shares: the key's role.")
    ] = None,
    gun: Annotated[
        list[str] | None,
        typer.Option("--gun", help="Typed shares: a repository the key serves; repeatable."),
    ] = None,
    algorithm: Annotated[
        ShareAlgorithm | None,
        typer.Option("--algorithm", help="Typed shares: ecdsa (P-256, the default) or ed25519."),
    ] = None,
    certificate: Annotated[
        list[Path] | None,
        typer.Option(
            "--certificate",
            help="Typed shares of a root key: its root certificate PEM for one GUN; repeatable "
            "(else taken from this home's trust state).",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            help="Write the key onto this PKCS#11 token (RFC 7512 URI) instead of a key file; "
            "PIN from CEREMONY_PKCS11_PIN or a prompt.",
        ),
    ] = None,
    pkcs11_module: ModuleOption = None,
) -> None:
    """Rebuild a key from M share sheets, check it against the key id on the sheet, and store
    it under a new passphrase (or with --token, on a token); print its id.

    Shares come from a prompt (default), standard input (--stdin) or the sheets' text files
    (--share-file), never from the command line.
    """
    store = KeyStore(home_of(ctx))
    files = share_file or []
    sheets = custody.read_sheets(_read_sheets(files)) if files else []
    facts: KeyFacts | None = sheets[0].key if sheets else None
    key_guns: list[str] = []
    given: list[Key] = []
    if facts is not None:
        if role is not None or gun or algorithm is not None or certificate:
            raise UsageError(
                "The role, GUNs, algorithm and certificates come from the share files; leave "
                "out --role, --gun, --algorithm and --certificate."
            )
        if expect_key is not None:
            wanted = custody.check_expected(expect_key)
            if not (facts.canonical_id.startswith(wanted) or facts.fingerprint.startswith(wanted)):
                raise InputRejected(
                    f"The share files are of key {facts.canonical_id[:12]}, not of key "
                    f"{wanted[:12]} given with --expect-key; nothing was restored."
                )
        key_role, algorithm_name = facts.role, facts.algorithm
    else:
        key_role, key_guns, algorithm_name = _typed_facts(role, gun or [], algorithm)
        if expect_key is not None:
            custody.check_expected(expect_key)
        given = [
            custody.certificate_from_file(read_input(p, "certificate file"), p.name)
            for p in certificate or []
        ]
        if key_role == "root":
            custody.check_certificate_sources(store.home, key_guns, given)

    destination = (
        custody.token_destination(token, pkcs11_module, algorithm_name)
        if token is not None
        else None
    )

    shares = [list(s.words) for s in sheets]
    if stdin:
        shares += _stdin_shares()
    elif not files:
        shares = prompt_shares()
    expected = facts.canonical_id if facts is not None else expect_key or expected_key()

    custody.check_expected(expected)
    protected = sheets[0].protected if sheets else None
    passphrase = "" if protected is False else share_passphrase(required=bool(protected))
    private = custody.rebuild(shares, passphrase, algorithm_name, expected)

    guns: dict[str, Key | None]
    if facts is not None:
        custody.check_facts(private, facts)
        guns = dict(facts.guns)
    elif key_role == "root":
        guns = dict(custody.certificates_for(store.home, private.canonical_id, key_guns, given))
    else:
        guns = dict.fromkeys(key_guns)

    custody.restore_refusal(store, private.canonical_id)
    if destination is not None:
        record = custody.restore_to_token(
            store, private, key_role, guns, destination, _passphrase_for
        )
        where = ", sensitive and not extractable (the shares stay its backup)"
    else:
        new_passphrase = get_passphrase(key_role, new=True, label=" (restored)")
        record = custody.store_restored(store, private, key_role, guns, new_passphrase)
        where = ", under its new passphrase"
    transcript.note(keys=[record.canonical_id])
    _say(f"Restored {key_role} key from {len(shares)} share(s); it is the key on the sheet:")
    for line in store.describe(record):
        _say(f"  {line}")
    _say(f"  lives in {printable(store.location(record))}{where}")
    typer.echo(record.canonical_id)


def backup_home(
    ctx: typer.Context,
    out: Annotated[
        Path, typer.Option("--out", help="The archive file to write (outside the home).")
    ],
) -> None:
    """Write one encrypted archive of the whole offline home (keys, records, certificates,
    trust state, transcript)."""
    home = home_of(ctx)
    if custody.inside(out, home):
        raise UsageError(f"{out} is inside the ceremony home {home}; write the archive outside it.")
    if out.exists():
        raise UsageError(f"{out} already exists; choose a new file name.")
    now = utc_now()
    archive = homebackup.collect(home, now.isoformat(timespec="seconds"))
    data = homebackup.seal(archive, backup_passphrase(new=True))
    atomic_write(out, data, mode=0o600)
    transcript.note(details={"archive_sha256": sha256_hex(data)})  # of the ciphertext
    counts = homebackup.summary(archive)
    _say(
        f"Wrote the home backup {printable(str(out))}: {counts['keys']} key file(s), "
        f"{counts['records']} key record(s), {counts['guns']} trust state(s), "
        f"{counts['files']} files in all, encrypted (AES-256-GCM, scrypt)."
    )
    _say("It holds the encrypted key files: keep it as safe as the keys themselves.")
    typer.echo(str(out))


def restore_home(
    ctx: typer.Context,
    archive_file: Annotated[Path, typer.Argument(help="The home backup archive.")],
) -> None:
    """Restore the offline home from an archive: add what is missing, merge the trust
    states, never overwrite a key file; refuse if the home holds newer records."""
    home = home_of(ctx)
    data = read_input(archive_file, "home backup")
    if not homebackup.is_archive(data):
        raise InputRejected(f"{archive_file.name} is not a notary-ceremony home backup.")
    archive = homebackup.unseal(data, backup_passphrase(new=False))
    plan = homebackup.restore(home, archive)
    transcript.note(
        keys=plan.added_keys,
        details={"archive_sha256": sha256_hex(data), "archive_made": archive.made},
    )
    _say(f"Restored from the backup made {archive.made} into {printable(str(home))}:")
    _say(f"  keys added: {len(plan.added_keys)}")
    _say(f"  trust states added: {len(plan.added_guns)}, merged: {len(plan.merged_guns)}")
    for gun in plan.merged_guns:
        _say(f"    merged {printable(gun)}: every signed record of both kept")
    for path in plan.kept:
        _say(f"  kept this home's {printable(path)} (the archive's differs)")
    for cid in plan.skipped_retired:
        _say(f"  not restored: key {cid[:12]} was retired in this home")
