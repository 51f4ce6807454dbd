"""Key backups as SLIP-39 share sheets, and keys restored from them.

`ceremony key backup` splits a key's secret into N shares (any M rebuild it) and writes
one sheet per share; `ceremony key restore` rebuilds the key from M shares, checks it
against the key id on the sheet (a wrong share passphrase silently gives another key),
gives it back its role, GUNs and root certificates, and stores it under a new passphrase,
or writes it onto a PKCS#11 token. A token key that is to have a backup is made in memory,
split into sheets, then written onto the token (`generate_with_backup`): a token never
gives a key out, so it cannot be split later.
The restored key is the same key: same canonical id, same certificates, so the same
certificate key ids, and it signs exactly as before.

Secrets (share words, passphrases) come in as arguments from the CLI layer; nothing here
prompts, reads the clock or prints.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from ceremony.core.errors import (
    EnvironmentFailure,
    InputRejected,
    MalformedInput,
    UsageError,
    VerificationFailed,
)
from ceremony.core.keys import (
    canonical_key_id,
    describe_key,
    key_fingerprint,
    pem_blocks,
    pem_encode,
)
from ceremony.core.metadata import Key, b64encode, is_delegation_name
from ceremony.edge.fsutil import atomic_write
from ceremony.offline.sheets import KeyFacts, ShareSheet, parse_sheet, sheet_pdf, sheet_text
from ceremony.offline.trust import TrustStore
from ceremony.signing.certificates import make_root_certificate
from ceremony.signing.keystore import GENERATABLE_ROLES, KeyRecord, KeyStore
from ceremony.signing.pkcs11uri import Pkcs11Uri
from ceremony.signing.private import PrivateKey
from ceremony.signing.shares import (
    check_split,
    combine,
    master_secret,
    private_from_secret,
    set_of,
    share_words,
    split,
)
from ceremony.signing.signer import PassphraseSource

MIN_EXPECTED_DIGITS = 16


# ---------------------------------------------------------------------------
# where sheets may go


def inside(path: Path, home: Path) -> bool:
    """Whether `path` is `home` or lies under it (after following symlinks)."""
    resolved, home_resolved = path.resolve(), home.resolve()
    return resolved == home_resolved or home_resolved in resolved.parents


def prepare_out_dir(out: Path, home: Path) -> Path:
    """The folder share sheets go to: outside the home, created 0700 (or tightened to it)."""
    if inside(out, home):
        raise UsageError(
            f"{out} is inside the ceremony home {home}: share sheets are secrets that must "
            "live apart from the key; give an --out folder outside the home."
        )
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} is a file, not a folder; give an --out folder.")
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    if stat.S_IMODE(out.stat().st_mode) & 0o077:
        with contextlib.suppress(OSError):  # a medium without permissions: checked below
            os.chmod(out, 0o700)
        if stat.S_IMODE(out.stat().st_mode) & 0o077:
            raise EnvironmentFailure(
                f"{out} can be read by other users and cannot be made private (0700); use "
                "another folder, or mount the medium with umask 077."
            )
    return out


# ---------------------------------------------------------------------------
# backup


def key_facts(record: KeyRecord, private: PrivateKey) -> KeyFacts:
    return KeyFacts(
        record.canonical_id,
        record.fingerprint,
        record.role,
        private.algorithm,
        dict(record.guns),
    )


def backup_refusal(record: KeyRecord) -> None:
    """Refuse a key whose secret this machine cannot, or may not, split."""
    short = record.canonical_id[:12]
    if record.backup == "none":
        raise InputRejected(
            f"Key {short} cannot be backed up: it was generated on the token without backup."
        )
    if record.retired is not None:
        raise InputRejected(
            f"Key {short} was retired on {record.retired}; its private half is gone."
        )
    if record.on_token:
        raise InputRejected(
            f"Key {short} lives on a token, which never gives its private half out: its share "
            "sheets were made when it was generated with --backup-shares (or it was restored "
            "from them); keep those."
        )


def make_sheets(
    private: PrivateKey,
    facts: KeyFacts,
    *,
    count: int,
    threshold: int,
    share_passphrase: str,
    now: datetime,
) -> list[ShareSheet]:
    """One sheet per share; the shares are recombined (two different subsets) and checked
    against the key before anything is written."""
    check_split(count, threshold)
    secret = master_secret(private)
    mnemonics = split(secret, count, threshold, share_passphrase)
    words = [share_words(m) for m in mnemonics]
    for subset in (words[:threshold], words[-threshold:]):
        again = private_from_secret(facts.algorithm, combine(subset, share_passphrase))
        if again is None or again.canonical_id != private.canonical_id:
            raise VerificationFailed(
                "The shares just made do not give the key back; nothing was written. Report this."
            )
    set_id = set_of(words[0], 1).set_id
    date = now.date().isoformat()
    return [
        ShareSheet(facts, tuple(w), k, count, threshold, set_id, bool(share_passphrase), date)
        for k, w in enumerate(words, 1)
    ]


def sheet_paths(sheets: Sequence[ShareSheet], out: Path) -> list[Path]:
    """The files the sheets go to; refuses a folder that already holds any of them."""
    paths = [out / f"{s.file_stem()}{suffix}" for s in sheets for suffix in (".txt", ".pdf")]
    existing = [p for p in paths if p.exists()]
    if existing:
        raise UsageError(
            f"{out} already holds share sheets of this key ({existing[0].name}); choose an "
            "empty folder so two sets are never mixed."
        )
    return paths


def write_sheets(sheets: Sequence[ShareSheet], out: Path) -> list[Path]:
    """Each sheet as `.txt` and `.pdf`, 0600; refuses to overwrite sheets already there."""
    paths = sheet_paths(sheets, out)
    for sheet in sheets:
        stem = out / sheet.file_stem()
        atomic_write(stem.with_suffix(".txt"), sheet_text(sheet).encode("ascii"), mode=0o600)
        atomic_write(stem.with_suffix(".pdf"), sheet_pdf(sheet), mode=0o600)
    return paths


@dataclass(frozen=True, slots=True)
class BackupResult:
    record: KeyRecord
    sheets: tuple[ShareSheet, ...]
    files: tuple[Path, ...]


def backup_key(
    store: KeyStore,
    record: KeyRecord,
    passphrase_for: PassphraseSource,
    *,
    count: int,
    threshold: int,
    out: Path,
    share_passphrase: str,
    now: datetime,
) -> BackupResult:
    """Split a file key into sheets in `out` (outside the home) and record `backup="shares"`."""
    backup_refusal(record)
    check_split(count, threshold)
    out = prepare_out_dir(out, store.home)
    private = store.private_key(record, passphrase_for)
    sheets = make_sheets(
        private,
        key_facts(record, private),
        count=count,
        threshold=threshold,
        share_passphrase=share_passphrase,
        now=now,
    )
    files = write_sheets(sheets, out)
    saved = store.save(replace(record, backup="shares"))
    return BackupResult(saved, tuple(sheets), tuple(files))


def generate_with_backup(
    store: KeyStore,
    role: str,
    gun: str,
    uri: Pkcs11Uri,
    pin_for: PassphraseSource,
    *,
    count: int,
    threshold: int,
    out: Path,
    share_passphrase: str,
    now: datetime,
) -> BackupResult:
    """A token key that has a backup: made in this process's memory (a token never gives a
    key out, so it cannot be split after), split into share sheets (checked), written onto
    the token, its sheets written to `out`, its record saved (backup "shares"); nothing
    keeps the copy in memory after that. A wrong PIN or a missing token stops before
    anything is written; when a later step fails, the key is removed from the token and the
    sheets written are removed too."""
    from ceremony.signing.tokenkeys import put_on_token

    check_split(count, threshold)
    out = prepare_out_dir(out, store.home)
    private = PrivateKey.generate_ecdsa()
    certificate = make_root_certificate(private, gun, now) if role == "root" else None
    guns: dict[str, Key | None] = {gun: certificate}
    facts = KeyFacts(
        private.canonical_id,
        key_fingerprint(private.public_key()),
        role,
        private.algorithm,
        guns,
    )
    sheets = make_sheets(
        private,
        facts,
        count=count,
        threshold=threshold,
        share_passphrase=share_passphrase,
        now=now,
    )
    paths = sheet_paths(sheets, out)  # none of them exists yet
    try:
        record = put_on_token(
            store,
            private,
            role,
            guns,
            uri,
            pin_for,
            backup="shares",
            before_record=lambda: write_sheets(sheets, out),
        )
    except BaseException:
        for path in paths:  # sheets of a key that is nowhere must not stay behind
            path.unlink(missing_ok=True)
        raise
    return BackupResult(record, tuple(sheets), tuple(paths))


# ---------------------------------------------------------------------------
# restore


def read_sheets(texts: Sequence[tuple[str, str]]) -> list[ShareSheet]:
    """Sheets from (where, text) pairs; all must be of one key and one set."""
    sheets = [parse_sheet(text, where) for where, text in texts]
    for (where, _), sheet in zip(texts, sheets, strict=True):
        role = sheet.key.role
        if role not in GENERATABLE_ROLES and not is_delegation_name(role):
            raise MalformedInput(f"{where} names a role no key is held for; it is damaged.")
    for (where, _), sheet in zip(texts[1:], sheets[1:], strict=True):
        if sheet.key.canonical_id != sheets[0].key.canonical_id:
            raise InputRejected(
                f"{where} is a share of key {sheet.key.canonical_id[:12]}, and {texts[0][0]} of "
                f"key {sheets[0].key.canonical_id[:12]}: shares of different sets cannot be "
                "combined; use sheets of one set only."
            )
        if sheet.set_id != sheets[0].set_id or sheet.key != sheets[0].key:
            raise InputRejected(
                f"{where} is from a different backup set than {texts[0][0]}: shares of "
                "different sets cannot be combined; use sheets of one set only."
            )
    return sheets


def matches_expected(private: PrivateKey, expected: str) -> bool:
    """Whether the rebuilt key is the one the sheet (or the operator) names: its canonical id
    or its fingerprint, in full or by a prefix of at least 16 hex digits."""
    wanted = expected.strip().lower().replace(":", "")
    public = private.public_key()
    return any(
        candidate.startswith(wanted) for candidate in (public.key_id, key_fingerprint(public))
    )


def check_expected(expected: str) -> str:
    wanted = expected.strip().lower().replace(":", "")
    if len(wanted) < MIN_EXPECTED_DIGITS or any(c not in "0123456789abcdef" for c in wanted):
        raise UsageError(
            f"The key id to check against must be at least {MIN_EXPECTED_DIGITS} hex digits of "
            "the key id or fingerprint printed on the sheet."
        )
    return wanted


def rebuild(
    shares: Sequence[Sequence[str]], share_passphrase: str, algorithm: str, expected: str
) -> PrivateKey:
    """The key from the shares, checked against `expected` (from the sheet): a share of
    another key and a wrong share passphrase both give another key, and are refused."""
    wanted = check_expected(expected)
    private = private_from_secret(algorithm, combine(shares, share_passphrase))
    if private is None or not matches_expected(private, wanted):
        got = f"key {private.canonical_id[:12]}" if private is not None else "no valid key"
        raise InputRejected(
            f"The shares give {got}, not key {wanted[:12]} named on the sheet: they are shares "
            "of another key, or the share passphrase is wrong; nothing was restored."
        )
    return private


def certificate_from_file(data: bytes, where: str) -> Key:
    """A root certificate (bundle) from a PEM file, in the exact form Notary lists it."""
    blocks = [b for b in pem_blocks(data, what=where) if b.type == "CERTIFICATE"]
    if not blocks:
        raise MalformedInput(f"{where} holds no CERTIFICATE block.")
    pem = b"".join(pem_encode("CERTIFICATE", b.body) for b in blocks)
    for keytype in ("ecdsa-x509", "rsa-x509"):
        key = Key(keytype, b64encode(pem))
        try:
            canonical_key_id(key)
        except MalformedInput:
            continue
        return key
    raise MalformedInput(f"{where} does not hold a certificate Notary can use.")


def _no_certificate(gun: str) -> UsageError:
    return UsageError(
        f"No root certificate of this key for {gun} is known here: give it with "
        "--certificate FILE (it is printed on the share sheet), or restore the home's "
        "trust state first."
    )


def check_certificate_sources(home: Path, guns: Sequence[str], given: Sequence[Key]) -> None:
    """Before any share is typed: every GUN of a root key needs a certificate file or a
    trust state to find its certificate in."""
    named = {describe_key(c).common_name for c in given}
    trust = TrustStore(home)
    for gun in guns:
        if gun not in named and trust.load(gun) is None:
            raise _no_certificate(gun)


def certificates_for(
    home: Path,
    canonical_id: str,
    guns: Sequence[str],
    given: Sequence[Key],
) -> dict[str, Key | None]:
    """The root certificates of a root key, per GUN: from `--certificate` files, else from
    this home's trust state (the newest root it trusts). Refuses a GUN with none: a new
    certificate would be a new key id, and the key would no longer sign as before."""
    by_gun: dict[str, Key] = {}
    for certificate in given:
        if canonical_key_id(certificate) != canonical_id:
            raise InputRejected(
                f"A --certificate file holds a certificate of key "
                f"{canonical_key_id(certificate)[:12]}, not of the restored key "
                f"{canonical_id[:12]}."
            )
        common_name = describe_key(certificate).common_name or ""
        by_gun[common_name] = certificate
    trust = TrustStore(home)
    out: dict[str, Key | None] = {}
    for gun in guns:
        found = by_gun.get(gun)
        if found is None:
            state = trust.load(gun)
            listed = state.root.body.keys.values() if state is not None else ()
            found = next((k for k in listed if _canonical(k) == canonical_id), None)
        if found is None:
            raise _no_certificate(gun)
        out[gun] = found
    return out


def _canonical(key: Key) -> str | None:
    try:
        return canonical_key_id(key)
    except MalformedInput:
        return None


def check_facts(private: PrivateKey, facts: KeyFacts) -> None:
    """The sheet's certificates and fingerprint must be the restored key's."""
    if key_fingerprint(private.public_key()) != facts.fingerprint:
        raise InputRejected(
            "The restored key's fingerprint differs from the one on the sheet; the sheet is "
            "damaged or altered; nothing was restored."
        )
    for gun, certificate in facts.guns.items():
        if certificate is not None and _canonical(certificate) != private.canonical_id:
            raise InputRejected(
                f"The sheet's certificate for {gun} is not of the restored key; the sheet is "
                "damaged or altered; nothing was restored."
            )


def restore_refusal(store: KeyStore, canonical_id: str) -> KeyRecord | None:
    """The existing record of the key, if any; refuses when its private half is in place (its
    key file, or the token its record names, when that token is present: a lost token's key
    may be restored, and its record then points at the new place)."""
    record = store.get(canonical_id)
    if record is None:
        return None
    path = store.file_of(record)
    if record.on_token:
        from ceremony.signing.pkcs11 import token_present

        if token_present(record.uri):
            raise InputRejected(
                f"Key {canonical_id[:12]} lives on {store.location(record)}, which is present: "
                "it needs no restore; nothing was restored."
            )
        return record  # its token is lost: the restored key replaces it
    if path is not None and path.is_file():
        raise InputRejected(
            f"Key {canonical_id[:12]} is already in this home ({path.name}); nothing was restored."
        )
    return record


def token_destination(uri: str, module: str | None, algorithm: str) -> Pkcs11Uri:
    """`--token URI` (and `--pkcs11-module`), checked before any share is typed."""
    if algorithm != "ecdsa":
        raise UsageError(
            f"Only a P-256 key can be written to a token, and the shares are of an {algorithm} "
            "key; restore it into the home without --token."
        )
    return token_uri(uri, module)


def token_uri(uri: str, module: str | None) -> Pkcs11Uri:
    """The token URI given, with the module from the option or environment; it must name one."""
    parsed = Pkcs11Uri.parse(uri).with_module(module)
    if parsed.module_path is None:
        raise UsageError(
            "Say which PKCS#11 module to load: --pkcs11-module PATH, CEREMONY_PKCS11_MODULE, "
            "or module-path= in the URI."
        )
    return parsed


def _merged_guns(
    store: KeyStore, private: PrivateKey, guns: Mapping[str, Key | None]
) -> dict[str, Key | None]:
    """The GUNs restored, plus those an existing record of the key knows (refusing a key
    whose private half is still in place)."""
    existing = restore_refusal(store, private.canonical_id)
    merged: dict[str, Key | None] = dict(guns)
    if existing is not None:
        merged.update({g: c for g, c in existing.guns.items() if c is not None or g not in merged})
    return merged


def restore_to_token(
    store: KeyStore,
    private: PrivateKey,
    role: str,
    guns: Mapping[str, Key | None],
    uri: Pkcs11Uri,
    pin_for: PassphraseSource,
) -> KeyRecord:
    """Write the restored (already checked) key onto the token, sensitive and not
    extractable, with its root certificates; its record points at the token, backup
    "shares". A wrong PIN or a missing token stops before anything is written."""
    from ceremony.signing.tokenkeys import put_on_token

    merged = _merged_guns(store, private, guns)
    return put_on_token(store, private, role, merged, uri, pin_for, backup="shares")


def store_restored(
    store: KeyStore,
    private: PrivateKey,
    role: str,
    guns: Mapping[str, Key | None],
    new_passphrase: str,
) -> KeyRecord:
    """Write the key file under its new passphrase, then its record (backup="shares")."""
    merged = _merged_guns(store, private, guns)
    record = store.store_file_key(private, role, merged, new_passphrase)
    return store.save(replace(record, backup="shares"))
