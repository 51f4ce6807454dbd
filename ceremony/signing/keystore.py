"""The offline key store in the ceremony home directory.

Layout (HOME is `--home`, default ~/.ceremony)::

    HOME/private/            0700  usable as a notary trust dir's private/ folder
    HOME/private/<id>.key    0600  Notary key file, named by canonical id
    HOME/keys/               0700  public index: no secrets, no passphrase needed
    HOME/keys/<id>.json      0600  role, GUN, public key, root certificate key

Every write is atomic. Passphrases are asked for through a `PassphraseSource`
(`alias -> passphrase`, the alias being the key's role); this module never
prompts and never reads the clock (`now` is passed in).
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from ceremony.core.documents import PublicKeyEntry, PublicKeysDocument, is_role_alias
from ceremony.core.errors import HomeDamaged, InputRejected, MalformedInput, UsageError
from ceremony.core.fields import Fields, read_home_file
from ceremony.core.keys import canonical_key_id, check_root_certificate, describe_key
from ceremony.core.metadata import Key, is_delegation_name
from ceremony.edge.fsutil import atomic_write, private_dir
from ceremony.signing.certificates import make_root_certificate
from ceremony.signing.filekey import file_uri
from ceremony.signing.keyfile import decode_key_file, encode_key_file, read_key_file_headers
from ceremony.signing.private import PrivateKey
from ceremony.signing.signer import PassphraseSource, Signer, signer_from_uri

INDEX_VERSION = 1
GENERATABLE_ROLES = ("root", "targets", "snapshot", "delegation")
MIN_ID_PREFIX = 6
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX = re.compile(r"^[0-9a-f]+$")


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A key the store holds: where it lives and its public halves (no secret)."""

    canonical_id: str
    role: str
    gun: str | None
    location: Path
    public: Key
    certificate: Key | None = None

    @property
    def metadata_key(self) -> Key:
        """The key as metadata lists it: the certificate for root, else the bare key."""
        return self.certificate if self.certificate is not None else self.public

    def to_index(self) -> dict[str, Any]:
        return {
            "version": INDEX_VERSION,
            "canonical_id": self.canonical_id,
            "role": self.role,
            "gun": self.gun,
            "public": self.public.to_dict(),
            "certificate": self.certificate.to_dict() if self.certificate else None,
        }

    @classmethod
    def from_index(cls, f: Fields, location: Path) -> KeyRecord:
        if f.integer("version") != INDEX_VERSION:
            raise f.fail("has a format this version of the tool does not know")
        cid, role = f.hex("canonical_id", 64), f.text("role")
        gun = f.optional("gun")
        if not role or (gun is not None and not isinstance(gun, str)):
            raise f.fail("has a malformed role or GUN")
        try:
            public = Key.from_dict(f.raw("public"), f"{f.where}'s public key")
            cert = f.optional("certificate")
            certificate = (
                Key.from_dict(cert, f"{f.where}'s certificate") if cert is not None else None
            )
        except MalformedInput as exc:
            raise HomeDamaged(exc.message) from exc
        f.done()
        if public.key_id != cid or (
            certificate is not None and canonical_key_id(certificate) != cid
        ):
            raise f.fail("does not match its key id; remove it and import the key again")
        return cls(cid, role, gun, location, public, certificate)


def _check_role(role: str) -> None:
    if role not in GENERATABLE_ROLES and not is_delegation_name(role):
        raise UsageError(
            f"Cannot make a key for role {role!r}: use root, targets, snapshot, delegation or targets/<name>."
        )


@dataclass(frozen=True, slots=True)
class KeyStore:
    """Notary-format private keys plus a public index, under one home directory."""

    home: Path

    @property
    def private_dir(self) -> Path:
        return self.home / "private"

    @property
    def index_dir(self) -> Path:
        return self.home / "keys"

    def key_path(self, canonical_id: str) -> Path:
        return self.private_dir / f"{canonical_id}.key"

    def _index_path(self, canonical_id: str) -> Path:
        return self.index_dir / f"{canonical_id}.json"

    # -- writing ------------------------------------------------------------

    def _prepare_dirs(self) -> None:
        """Create the folders 0700; tighten our own two if someone loosened them."""
        private_dir(self.home)
        for directory in (self.private_dir, self.index_dir):
            private_dir(directory)
            if stat.S_IMODE(directory.stat().st_mode) & 0o077:
                os.chmod(directory, 0o700)

    def _write_index(self, record: KeyRecord) -> None:
        text = json.dumps(record.to_index(), indent=2, sort_keys=True) + "\n"
        atomic_write(self._index_path(record.canonical_id), text.encode("utf-8"))

    def _store(
        self,
        private: PrivateKey,
        role: str,
        gun: str | None,
        passphrase: str,
        certificate: Key | None,
    ) -> KeyRecord:
        """Write the key file (Notary format) first, then its index entry."""
        self._prepare_dirs()
        cid = private.canonical_id
        data = encode_key_file(private, role=role, gun=gun, passphrase=passphrase)
        atomic_write(self.key_path(cid), data, mode=0o600)
        record = KeyRecord(cid, role, gun, self.key_path(cid), private.public_key(), certificate)
        self._write_index(record)
        return record

    def generate(self, role: str, gun: str | None, passphrase: str, now: datetime) -> KeyRecord:
        """A new P-256 key for `role`; a root key also gets its certificate (CN=GUN)."""
        _check_role(role)
        if role in ("root", "targets", "snapshot") and not gun:
            raise UsageError(f"A {role} key belongs to one GUN: give --gun.")
        if not passphrase:
            raise UsageError(
                "An empty passphrase would leave the key unprotected; choose a passphrase."
            )
        private = PrivateKey.generate_ecdsa()
        certificate = make_root_certificate(private, gun, now) if role == "root" and gun else None
        return self._store(private, role, gun, passphrase, certificate)

    def import_key_file(
        self,
        data: bytes,
        passphrase_for: PassphraseSource,
        *,
        role: str | None = None,
        gun: str | None = None,
        now: datetime | None = None,
    ) -> KeyRecord:
        """Store a Notary/Docker key file, re-encrypted in Notary's format.

        The role comes from the file's `role:` header (else `role`); the
        passphrase from `passphrase_for(role)` opens an encrypted file and
        protects the stored copy. A root key with a GUN and `now` also gets its
        certificate. A key already in the store is left as it is.
        """
        headers = read_key_file_headers(data)
        alias = headers.role or role
        if not alias:
            raise UsageError(
                "The key file has no role header: say which role it is for with --role."
            )
        if not is_role_alias(alias):
            raise MalformedInput("The key file's role header is not a role name.")
        passphrase = passphrase_for(alias)
        if not passphrase:
            raise UsageError(
                "An empty passphrase would leave the key unprotected; choose a passphrase."
            )
        private = decode_key_file(data, passphrase)
        existing = self.get(private.canonical_id)
        if existing is not None:
            return existing
        key_gun = headers.gun or gun
        certificate = None
        if alias == "root" and key_gun and now is not None:
            certificate = make_root_certificate(private, key_gun, now)
        return self._store(private, alias, key_gun, passphrase, certificate)

    # -- reading ------------------------------------------------------------

    def get(self, canonical_id: str) -> KeyRecord | None:
        path = self._index_path(canonical_id)
        if not _HEX64.match(canonical_id) or not path.is_file():
            return None
        return self._load(path)

    def _load(self, path: Path) -> KeyRecord:
        f = read_home_file(path.read_bytes(), f"key index file {path.name}")
        record = KeyRecord.from_index(f, Path())
        if path.stem != record.canonical_id:
            raise f.fail("does not match its key id; remove it and import the key again")
        return replace(record, location=self.key_path(record.canonical_id))

    def records(self) -> list[KeyRecord]:
        """Every indexed key, by GUN, role and id."""
        if not self.index_dir.is_dir():
            return []
        found = [self._load(p) for p in sorted(self.index_dir.glob("*.json"))]
        return sorted(found, key=lambda r: (r.gun or "", r.role, r.canonical_id))

    def resolve(self, key_id: str) -> KeyRecord:
        """The record for a canonical id, a certificate key id, or a unique id prefix."""
        wanted = key_id.strip().lower()
        if len(wanted) < MIN_ID_PREFIX or not _HEX.match(wanted):
            raise UsageError(
                f"{key_id!r} is not a key id: give at least {MIN_ID_PREFIX} hex digits."
            )
        matches = [
            r
            for r in self.records()
            if r.canonical_id.startswith(wanted)
            or (r.certificate is not None and r.certificate.key_id.startswith(wanted))
        ]
        if not matches:
            raise InputRejected(f"No key {key_id} is in the store; see `ceremony key list`.")
        if len(matches) > 1:
            raise UsageError(f"Key id {key_id} is ambiguous; give more digits.")
        return matches[0]

    def private_key(self, record: KeyRecord, passphrase_for: PassphraseSource) -> PrivateKey:
        """Decrypt a stored key (WrongPassphrase if the passphrase does not open it)."""
        private = decode_key_file(record.location.read_bytes(), passphrase_for(record.role))
        if private.canonical_id != record.canonical_id:
            raise MalformedInput(
                f"The key file for {record.canonical_id[:12]} holds a different key; restore it from backup."
            )
        return private

    def holder(self, key: Key, gun: str) -> str | None:
        """The role this store holds metadata key `key`'s private half for, in repository
        `gun`; None if it is not held, or held only for other repositories.

        A `targets` body does not name its repository, so a key signs only for the
        GUNs it is recorded for: what it signed for one repository must never be
        replayable into another. Needs no passphrase: the review labels every key
        before anything is decrypted.
        """
        try:
            cid = canonical_key_id(key)
        except MalformedInput:
            return None
        record = self.get(cid)
        if record is not None:
            return record.role if record.gun == gun else None
        path = self.key_path(cid)
        if path.is_file():
            headers = read_key_file_headers(path.read_bytes())
            return (headers.role or "root") if headers.gun == gun else None
        return None

    def signer_for(self, key: Key, passphrase_for: PassphraseSource) -> Signer | None:
        """A signer for metadata key `key` (e.g. a root certificate key), or None if not held.

        Keys are found by canonical id, in the index or as a bare Notary key file
        in private/ (so a copied notary trust dir works too); the signer is the
        backend the key's URI names.
        """
        uri = self.uri_for(key)
        return signer_from_uri(uri, key, passphrase_for) if uri is not None else None

    def uri_for(self, key: Key) -> str | None:
        """The signer URI of the key held here for metadata key `key`, or None."""
        try:
            cid = canonical_key_id(key)
        except MalformedInput:
            return None
        path = self.key_path(cid)
        if self.get(cid) is not None or path.is_file():
            return file_uri(path)
        return None

    # -- certificates and export ---------------------------------------------

    def ensure_certificate(
        self, record: KeyRecord, gun: str, passphrase_for: PassphraseSource, now: datetime
    ) -> KeyRecord:
        """A root record with a certificate for `gun`, made (and stored) if it has none."""
        if record.role != "root":
            return record
        if record.certificate is not None:
            description = describe_key(record.certificate)
            if description.common_name != gun:
                raise InputRejected(
                    f"Root key {record.canonical_id[:12]} has a certificate for "
                    f"{description.common_name!r}, not {gun!r}; use a separate root key per GUN."
                )
            return record
        private = self.private_key(record, passphrase_for)
        updated = replace(record, gun=gun, certificate=make_root_certificate(private, gun, now))
        self._write_index(updated)
        return updated

    def public_keys(
        self,
        gun: str,
        key_ids: Sequence[str] = (),
        *,
        passphrase_for: PassphraseSource,
        now: datetime,
    ) -> PublicKeysDocument:
        """The public keys document for `gun`: the given keys, or every key recorded for it.

        Root keys without a certificate get one (this needs their passphrase).
        """
        selected = (
            [self.resolve(k) for k in key_ids]
            if key_ids
            else [r for r in self.records() if r.gun == gun]
        )
        if not selected:
            raise InputRejected(
                f"No keys for {gun} are in the store; generate or import one, or name keys with --key."
            )
        entries: list[PublicKeyEntry] = []
        for record in dict.fromkeys(selected):
            current = self.ensure_certificate(record, gun, passphrase_for, now)
            key = current.metadata_key
            if current.role == "root":
                problem = check_root_certificate(key, gun, now)
                if problem:
                    raise InputRejected(
                        f"Root key {current.canonical_id[:12]} cannot be exported: {problem}."
                    )
            entries.append(PublicKeyEntry(current.role, current.canonical_id, key))
        return PublicKeysDocument(gun, tuple(entries))
