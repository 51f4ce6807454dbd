"""Key records for keys that live on PKCS#11 tokens: made there, or adopted from there.

A token key's record holds its `pkcs11:` URI (token label and serial, CKA_ID, label,
module path) and backup state `"none"`: its private half never leaves the token.
A root key's certificate (CN = GUN) is signed by the token key and stored on the
token too, with the key's CKA_ID, so another machine adopting the token finds it.
Keys made here are labelled `notary ROLE GUN`, which is how adoption knows their
role and repository without being told. `put_on_token` writes an existing key onto a
token (restoring from backup shares, or generating with shares): its record says which
backup exists.
"""

from __future__ import annotations

import secrets as random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from ceremony.core.errors import UsageError
from ceremony.core.gun import check_gun, gun_problem
from ceremony.core.keys import check_root_certificate, describe_key
from ceremony.core.metadata import Key, is_delegation_name
from ceremony.signing.certificates import certify
from ceremony.signing.keystore import BACKUP_KINDS, GENERATABLE_ROLES, KeyRecord, KeyStore
from ceremony.signing.pkcs11 import (
    TokenKey,
    discard_token_key,
    generate_token_key,
    scan_token,
    store_certificate,
    write_private_key,
)
from ceremony.signing.pkcs11uri import Pkcs11Uri
from ceremony.signing.private import PrivateKey
from ceremony.signing.signer import PassphraseSource, sign_metadata

LABEL_PREFIX = "notary"
_CHECK = b"notary-ceremony token key check v1\x00"


def _valid_role(role: str) -> bool:
    return role in GENERATABLE_ROLES or is_delegation_name(role)


def token_label(role: str, gun: str) -> str:
    """The CKA_LABEL of a key made here: `notary ROLE GUN`."""
    return f"{LABEL_PREFIX} {role} {gun}"


def role_and_gun_of_label(label: str) -> tuple[str | None, str | None]:
    """The role and GUN a `notary ROLE GUN` label names (None for what it does not)."""
    parts = label.split(" ", 2)
    if len(parts) < 2 or parts[0] != LABEL_PREFIX or not _valid_role(parts[1]):
        return None, None
    gun = parts[2] if len(parts) == 3 and gun_problem(parts[2]) is None else None
    return parts[1], gun


def _prove(key: TokenKey) -> None:
    """Sign a check message and verify it: the private and public halves belong together."""
    sign_metadata(key, key.public, _CHECK + random.token_bytes(16))


def generate_on_token(
    store: KeyStore,
    role: str,
    gun: str,
    uri: Pkcs11Uri,
    secrets: PassphraseSource,
    now: datetime,
) -> KeyRecord:
    """A new P-256 key made on the token; a root key also gets its certificate (CN = gun),
    signed by the token key and stored on the token. No key file is written."""
    if not _valid_role(role):
        raise UsageError(f"Cannot make a key for role {role!r} on a token.")
    key = generate_token_key(uri, secrets, label=token_label(role, gun))
    try:
        certificate: Key | None = None
        if role == "root":
            certificate = certify(key.public, key.sign_raw, gun, now)
            store_certificate(key, certificate)
        else:
            _prove(key)
        record = KeyRecord(
            key.public.key_id, role, key.public, str(key.uri), {gun: certificate}, backup="none"
        )
        return store.save(record)
    except BaseException:
        discard_token_key(key)
        raise


@dataclass(frozen=True, slots=True)
class Adoption:
    """What `adopt_token_keys` did: one record per key, the ids that are new, and notes."""

    records: tuple[KeyRecord, ...]
    new: frozenset[str]
    notes: tuple[str, ...]


def _root_certificates(
    certificates: tuple[Key, ...], key_id: str, now: datetime, notes: list[str]
) -> dict[str, Key]:
    """The token's certificates Notary would accept, by their CN (the GUN they serve)."""
    kept: dict[str, Key] = {}
    for certificate in certificates:
        cn = describe_key(certificate).common_name
        if cn is None or gun_problem(cn) is not None:
            notes.append(
                f"key {key_id[:12]}: a certificate on the token has no usable GUN as its common "
                "name; it was left out"
            )
            continue
        problem = check_root_certificate(certificate, cn, now)
        if problem is not None:
            notes.append(f"key {key_id[:12]}: its certificate for {cn} was left out: {problem}")
            continue
        kept.setdefault(cn, certificate)
    return kept


def adopt_token_keys(
    store: KeyStore,
    uri: Pkcs11Uri,
    secrets: PassphraseSource,
    *,
    role: str | None,
    gun: str | None,
    now: datetime,
) -> Adoption:
    """Make key records for the EC keys on a token (all, or those the URI's id/object select).

    Each key first signs a check message, verified with its public half. The role is
    `role`, else the one its `notary ROLE GUN` label names, else root when a certificate
    with its CKA_ID is on the token. A root key keeps each valid certificate on the
    token for that certificate's CN; `gun` (or the label's GUN) is added, a root key
    getting a new certificate signed by the token key for it. A key already in the
    store gains the GUNs found.
    """
    if role is not None and not _valid_role(role):
        raise UsageError(
            f"Cannot adopt a key for role {role!r}: use root, targets, snapshot, delegation or "
            "targets/<name>."
        )
    if gun is not None:
        check_gun(gun)
    scan = scan_token(uri, secrets)
    notes = list(scan.skipped)
    # First decide every key's role and certificates, so a refusal comes before any signing.
    planned: list[tuple[TokenKey, str, dict[str, Key | None], str | None]] = []
    seen: set[str] = set()
    for found in scan.keys:
        key = found.backend
        cid = key.public.key_id
        if cid in seen:
            continue
        seen.add(cid)
        label_role, label_gun = role_and_gun_of_label(key.label)
        certificates = _root_certificates(found.certificates, cid, now, notes)
        key_role = role or label_role or ("root" if certificates else None)
        if key_role is None:
            raise UsageError(
                f"Key {cid[:12]} ({key.uri.describe()}) has no certificate and no role in its "
                "label: say which role it is for with --role (and its GUN with --gun)."
            )
        guns: dict[str, Key | None] = {}
        if key_role == "root":
            guns.update(certificates)
        elif certificates:
            notes.append(
                f"key {cid[:12]}: a {key_role} key needs no certificate, so its certificates "
                "were ignored"
            )
        planned.append((key, key_role, guns, gun or label_gun))
    # Then prove each key signs, and certify root keys for a GUN they have no certificate for.
    for key, key_role, guns, key_gun in planned:
        _prove(key)
        if key_gun is not None and key_gun not in guns:
            guns[key_gun] = (
                certify(key.public, key.sign_raw, key_gun, now) if key_role == "root" else None
            )
    # Records last: nothing is written unless every key could be adopted.
    records: list[KeyRecord] = []
    new: set[str] = set()
    for key, key_role, guns, _ in planned:
        cid = key.public.key_id
        existing = store.get(cid)
        if existing is not None:
            added = {g: c for g, c in guns.items() if g not in existing.guns}
            if existing.uri != str(key.uri):
                notes.append(
                    f"key {cid[:12]} was already in the store ({existing.uri.partition('?')[0]}); "
                    "its record keeps that place"
                )
            records.append(
                store.save(replace(existing, guns={**existing.guns, **added}))
                if added
                else existing
            )
            continue
        records.append(
            store.save(KeyRecord(cid, key_role, key.public, str(key.uri), guns, backup="none"))
        )
        new.add(cid)
    return Adoption(tuple(records), frozenset(new), tuple(notes))


def put_on_token(
    store: KeyStore,
    private: PrivateKey,
    role: str,
    guns: Mapping[str, Key | None],
    uri: Pkcs11Uri,
    secrets: PassphraseSource,
    *,
    backup: str,
    before_record: Callable[[], object] | None = None,
) -> KeyRecord:
    """Write an existing P-256 key onto a token (non-extractable, with its root certificates)
    and record it there: for a key restored from backup shares, or generated in memory so
    that shares could be made (`backup="shares"`). The caller then forgets its copy.

    `before_record` runs once the key is on the token and before its record is written
    (writing the share sheets); if it fails, the key is removed from the token again."""
    if not _valid_role(role):
        raise UsageError(f"Cannot put a key for role {role!r} on a token.")
    if backup not in BACKUP_KINDS:
        raise UsageError(f"{backup!r} is not a backup state ({', '.join(BACKUP_KINDS)}).")
    label = token_label(role, min(guns)) if guns else f"{LABEL_PREFIX} {role}"
    certificates = tuple(c for c in guns.values() if c is not None)
    key = write_private_key(uri, private, secrets, label=label, certificates=certificates)
    try:
        if before_record is not None:
            before_record()
        record = KeyRecord(
            private.canonical_id, role, key.public, str(key.uri), dict(guns), backup=backup
        )
        return store.save(record)
    except BaseException:
        discard_token_key(key)
        raise
