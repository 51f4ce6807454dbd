"""The offline key store in the ceremony home directory.

Layout (HOME is `--home`, default ~/.ceremony)::

    HOME/private/            0700  usable as a notary trust dir's private/ folder
    HOME/private/<id>.key    0600  Notary key file, named by canonical id
    HOME/keys/               0700  public index: no secrets, no passphrase needed
    HOME/keys/<id>.json      0600  one record per key (see `KeyRecord`)

A record is one key and everything public about it: its role, where its private half
lives (a signer URI: `file:` for a key file, `pkcs11:` for a token), and the
repositories it serves, each with its own root certificate for a root key (one root
key commonly serves many GUNs, notary-formats.md §3.4). A key signs only for the GUNs
its record lists.

Every write is atomic. Secrets come from a `PassphraseSource`; this module never
prompts and never reads the clock (`now` is passed in).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from ceremony.core.documents import PublicKeyEntry, PublicKeysDocument, is_role_alias
from ceremony.core.errors import HomeDamaged, InputRejected, MalformedInput, UsageError
from ceremony.core.fields import Fields, read_home_file
from ceremony.core.gun import check_gun
from ceremony.core.keys import (
    canonical_key_id,
    check_root_certificate,
    describe_key,
    key_fingerprint,
)
from ceremony.core.metadata import Key, is_delegation_name
from ceremony.edge.fsutil import (
    MAX_INPUT,
    atomic_write,
    private_dir,
    read_home_file_bytes,
    sweep_temporaries,
)
from ceremony.signing.certificates import certify, make_root_certificate
from ceremony.signing.filekey import FILE_SCHEME
from ceremony.signing.keyfile import decode_key_file, encode_key_file, read_key_file_headers
from ceremony.signing.pkcs11uri import Pkcs11Uri
from ceremony.signing.private import PrivateKey
from ceremony.signing.signer import PassphraseSource, Signer, raw_signer_from_uri, signer_from_uri

INDEX_VERSION = 2
GENERATABLE_ROLES = ("root", "targets", "snapshot", "delegation")
MIN_ID_PREFIX = 6
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX = re.compile(r"^[0-9a-f]+$")
BACKUP_KINDS = ("file", "shares", "none")
_PARSED: dict[Path, tuple[tuple[int, int, int], KeyRecord]] = {}  # see KeyStore._load


def _check_importable(private: PrivateKey) -> None:
    """Refuse a P-521 key (the store keeps P-256 and P-384 EC keys, RSA and Ed25519).

    Notary hashes every ECDSA signature with SHA-256, so the larger curve adds no strength
    to what is signed, and notary and docker trust only ever make P-256 keys: a P-521 key
    in a trust dir is a sign of something other than a Notary key, refused up front.
    """
    native = private.native
    if isinstance(native, ec.EllipticCurvePrivateKey) and native.curve.key_size > 384:
        raise InputRejected(
            f"The key is on the unsupported curve {native.curve.name} (P-521): import a P-256 "
            "or P-384 key (notary and docker trust make P-256 keys)."
        )


def _key_file_bytes(path: Path) -> bytes:
    """A key file of this store: anything but a regular file there means the home is damaged."""
    data = read_home_file_bytes(path, "key file", cap=MAX_INPUT)
    if data is None:
        raise HomeDamaged(f"The key file {path} is missing: restore it from a backup.")
    return data


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A key the store holds: where its private half lives, and its public halves (no secret)."""

    canonical_id: str
    role: str
    public: Key  # the bare key
    uri: str  # the signer: "file:<id>.key" (in HOME/private) or "pkcs11:…"
    guns: Mapping[str, Key | None] = field(default_factory=dict)  # GUN -> root certificate
    backup: str = "file"  # "file": the key file is its backup; "shares": made; "none": impossible
    retired: str | None = None  # when its private half was removed (the record stays)

    @property
    def fingerprint(self) -> str:
        return key_fingerprint(self.public)

    @property
    def on_token(self) -> bool:
        return self.uri.startswith("pkcs11:")

    def certificate(self, gun: str) -> Key | None:
        return self.guns.get(gun)

    def metadata_key(self, gun: str) -> Key:
        """The key as `gun`'s metadata lists it: its root certificate for that GUN, else bare."""
        certificate = self.guns.get(gun)
        return certificate if certificate is not None else self.public

    def to_index(self) -> dict[str, Any]:
        return {
            "backup": self.backup,
            "canonical_id": self.canonical_id,
            "guns": {g: (c.to_dict() if c is not None else None) for g, c in self.guns.items()},
            "public": self.public.to_dict(),
            "retired": self.retired,
            "role": self.role,
            "uri": self.uri,
            "version": INDEX_VERSION,
        }

    @classmethod
    def from_index(cls, f: Fields) -> KeyRecord:
        version = f.integer("version")
        if version not in (1, INDEX_VERSION):
            raise f.fail("has a format this version of the tool does not know")
        cid, role = f.hex("canonical_id", 64), f.text("role")
        if not role:
            raise f.fail("has an empty role")
        try:
            public = Key.from_dict(f.raw("public"), f"{f.where}'s public key")
            if version == 1:  # one GUN, one certificate
                gun, cert = f.optional("gun"), f.optional("certificate")
                raw_guns: dict[str, Any] = {gun: cert} if isinstance(gun, str) else {}
                uri, backup, retired = f"{FILE_SCHEME}{cid}.key", "file", None
            else:
                raw_guns = f.mapping("guns")
                uri, backup, retired = f.text("uri"), f.text("backup"), f.optional("retired")
            guns = {
                check_gun(g, f.where): (
                    Key.from_dict(c, f"{f.where}'s certificate for {g}") if c is not None else None
                )
                for g, c in raw_guns.items()
            }
        except MalformedInput as exc:
            raise HomeDamaged(exc.message) from exc
        f.done()
        if public.key_id != cid or any(
            c is not None and canonical_key_id(c) != cid for c in guns.values()
        ):
            raise f.fail("does not match its key id; remove it and import the key again")
        if backup not in BACKUP_KINDS or (retired is not None and not isinstance(retired, str)):
            raise f.fail("has a malformed backup or retirement")
        return cls(cid, role, public, uri, guns, backup, retired)


def _check_role(role: str) -> None:
    if role not in GENERATABLE_ROLES and not is_delegation_name(role):
        raise UsageError(
            f"Cannot make a key for role {role!r}: use root, targets, snapshot, delegation or "
            "targets/<name>."
        )


def _check_passphrase(passphrase: str) -> None:
    if not passphrase:
        raise UsageError(
            "An empty passphrase would leave the key unprotected; choose a passphrase."
        )


@dataclass(frozen=True, slots=True)
class KeyStore:
    """Key records, and Notary-format key files for the keys kept in files, in one home."""

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

    def file_of(self, record: KeyRecord) -> Path | None:
        """The key file of a record kept in a file (None for a token)."""
        if not record.uri.startswith(FILE_SCHEME):
            return None
        return self.private_dir / record.uri.removeprefix(FILE_SCHEME)

    def location(self, record: KeyRecord) -> str:
        """Where the private half lives, for people: a file, or a token."""
        path = self.file_of(record)
        if path is None:
            if record.on_token:
                try:
                    return Pkcs11Uri.parse(record.uri).describe()
                except UsageError:
                    return record.uri
            return record.uri
        return str(path) if path.is_file() else f"{path} (missing)"

    # -- writing ------------------------------------------------------------

    def _prepare_dirs(self) -> None:
        """Create the folders 0700; tighten our own two if someone loosened them."""
        private_dir(self.home)
        for directory in (self.private_dir, self.index_dir):
            private_dir(directory)
            if stat.S_IMODE(directory.stat().st_mode) & 0o077:
                os.chmod(directory, 0o700)
            sweep_temporaries(directory)  # left by a writer killed mid-write; live ones stay

    def save(self, record: KeyRecord) -> KeyRecord:
        """Write a record (atomically); the private half must already be where its URI says."""
        self._prepare_dirs()
        text = json.dumps(record.to_index(), indent=2, sort_keys=True) + "\n"
        atomic_write(self._index_path(record.canonical_id), text.encode("utf-8"))
        return record

    def store_file_key(
        self,
        private: PrivateKey,
        role: str,
        guns: Mapping[str, Key | None],
        passphrase: str,
    ) -> KeyRecord:
        """Write the key file (Notary format, 0600) first, then its record."""
        _check_passphrase(passphrase)
        self._prepare_dirs()
        cid = private.canonical_id
        header_gun = next(iter(guns)) if role == "targets" and len(guns) == 1 else None
        data = encode_key_file(private, role=role, gun=header_gun, passphrase=passphrase)
        key_path = self.key_path(cid)
        existed = key_path.exists()
        atomic_write(key_path, data, mode=0o600)
        record = KeyRecord(cid, role, private.public_key(), f"{FILE_SCHEME}{cid}.key", dict(guns))
        try:
            return self.save(record)
        except BaseException:
            if not existed:  # a full disk: no key file without the record that lists it
                with contextlib.suppress(OSError):
                    key_path.unlink()
            raise

    def generate(self, role: str, gun: str | None, passphrase: str, now: datetime) -> KeyRecord:
        """A new P-256 key in a file for `role`; a root key also gets its certificate (CN=GUN)."""
        _check_role(role)
        if not gun:
            raise UsageError(f"A {role} key serves a repository: give --gun.")
        _check_passphrase(passphrase)
        private = PrivateKey.generate_ecdsa()
        certificate = make_root_certificate(private, gun, now) if role == "root" else None
        return self.store_file_key(private, role, {gun: certificate}, passphrase)

    def import_key_file(
        self,
        data: bytes,
        passphrase_for: PassphraseSource,
        *,
        role: str | None = None,
        gun: str | None = None,
        certificates: Mapping[str, Key] | None = None,
        now: datetime | None = None,
    ) -> KeyRecord:
        """Store a Notary/Docker key file, re-encrypted in Notary's format.

        The role comes from the file's `role:` header (else `role`), the GUN from its
        `gun:` header (else `gun`). The passphrase from `passphrase_for(role)` opens an
        encrypted file and protects the stored copy. A root key keeps the existing
        `certificates` given (GUN -> certificate, e.g. from a trust dir's root.json);
        only a root key with a GUN and no certificate for it gets a new one. A key
        already in the store gains the GUNs and certificates given.
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
        _check_passphrase(passphrase)
        private = decode_key_file(data, passphrase)
        _check_importable(private)
        guns: dict[str, Key | None] = dict(certificates or {})
        key_gun = headers.gun or gun
        if key_gun and key_gun not in guns:
            guns[key_gun] = (
                make_root_certificate(private, key_gun, now)
                if alias == "root" and now is not None
                else None
            )
        existing = self.get(private.canonical_id)
        if existing is not None:
            added = {g: c for g, c in guns.items() if g not in existing.guns}
            return (
                self.save(replace(existing, guns={**existing.guns, **added})) if added else existing
            )
        return self.store_file_key(private, alias, guns, passphrase)

    def certify(
        self, record: KeyRecord, gun: str, passphrase_for: PassphraseSource, now: datetime
    ) -> KeyRecord:
        """Make `record`'s root key serve `gun` too: a new certificate (CN = gun) signed by the
        key wherever it lives (a key file or a token)."""
        if record.role != "root":
            raise UsageError(
                f"Only a root key is certified for a GUN; {record.canonical_id[:12]} is a {record.role} key."
            )
        return self.certify_many(record, [gun], passphrase_for, now)

    def certify_many(
        self,
        record: KeyRecord,
        guns: Sequence[str],
        passphrase_for: PassphraseSource,
        now: datetime,
    ) -> KeyRecord:
        """`certify` for many GUNs: the key is opened once and the record written once."""
        if record.role != "root":
            raise UsageError(
                f"Only a root key is certified for a GUN; {record.canonical_id[:12]} is a {record.role} key."
            )
        new = [g for g in dict.fromkeys(guns) if record.certificate(g) is None]
        if not new:
            return record
        self.check_file_headers(record)
        sign_raw = raw_signer_from_uri(self._absolute(record.uri), record.public, passphrase_for)
        added = {g: certify(record.public, sign_raw, g, now) for g in new}
        return self.save(replace(record, guns={**record.guns, **added}))

    def serve(
        self,
        record: KeyRecord,
        guns: Sequence[str],
        passphrase_for: PassphraseSource,
        now: datetime,
    ) -> KeyRecord:
        """Make a key serve these GUNs (a root key: certified for each), in one write."""
        if record.role == "root":
            return self.certify_many(record, guns, passphrase_for, now)
        new = {g: None for g in guns if g not in record.guns}
        return self.save(replace(record, guns={**record.guns, **new})) if new else record

    # -- reading ------------------------------------------------------------

    def get(self, canonical_id: str) -> KeyRecord | None:
        path = self._index_path(canonical_id)
        if not _HEX64.match(canonical_id) or not path.is_file():
            return None
        return self._load(path)

    def _load(self, path: Path) -> KeyRecord:
        # A root key serving 1,000 repositories holds 1,000 certificates: a record is parsed
        # once per version of its file (atomic writes give each version a new inode).
        what = f"key index file {path.name}"
        stamp: tuple[int, int, int] | None = None
        with contextlib.suppress(OSError):  # a loop or a vanished file: the read below says so
            st = path.stat()
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        cached = _PARSED.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        data = read_home_file_bytes(path, what)
        if data is None:
            raise HomeDamaged(f"The {what} vanished while it was read: run the command again.")
        f = read_home_file(data, what)
        record = KeyRecord.from_index(f)
        if path.stem != record.canonical_id:
            raise f.fail("does not match its key id; remove it and import the key again")
        if stamp is not None:
            _PARSED[path] = (stamp, record)
        return record

    def records(self) -> list[KeyRecord]:
        """Every indexed key, by role and id."""
        if not self.index_dir.is_dir():
            return []
        found = [self._load(p) for p in sorted(self.index_dir.glob("*.json"))]
        order = {"root": 0, "targets": 1}
        return sorted(found, key=lambda r: (order.get(r.role, 2), r.role, r.canonical_id))

    def orphans(self) -> list[Path]:
        """Key files no record lists: left by `key generate` or `key import` stopped between
        writing the key file and its record (or copied in by hand). Shown by `key list`."""
        if not self.private_dir.is_dir():
            return []
        listed = {p.name for r in self.records() if (p := self.file_of(r)) is not None}
        return sorted(
            p for p in self.private_dir.glob("*.key") if p.name not in listed and p.is_file()
        )

    def resolve(self, key_id: str) -> KeyRecord:
        """The record for a canonical id, a fingerprint, a certificate key id, or a prefix."""
        wanted = key_id.strip().lower().replace(":", "")
        if len(wanted) < MIN_ID_PREFIX or not _HEX.match(wanted):
            raise UsageError(
                f"{key_id!r} is not a key id: give at least {MIN_ID_PREFIX} hex digits."
            )
        matches = [
            r
            for r in self.records()
            if r.canonical_id.startswith(wanted)
            or r.fingerprint.startswith(wanted)
            or any(c is not None and c.key_id.startswith(wanted) for c in r.guns.values())
        ]
        if not matches:
            raise InputRejected(f"No key {key_id} is in the store; see `ceremony key list`.")
        if len(matches) > 1:
            raise UsageError(f"Key id {key_id} is ambiguous; give more digits.")
        return matches[0]

    def private_key(self, record: KeyRecord, passphrase_for: PassphraseSource) -> PrivateKey:
        """Decrypt a key kept in a file (WrongPassphrase if the passphrase does not open it)."""
        path = self.file_of(record)
        if path is None:
            raise UsageError(
                f"Key {record.canonical_id[:12]} lives on a token; its private half never leaves it."
            )
        self.check_file_headers(record)
        private = decode_key_file(_key_file_bytes(path), passphrase_for(record.role))
        if private.canonical_id != record.canonical_id:
            raise MalformedInput(
                f"The key file for {record.canonical_id[:12]} holds a different key; restore it "
                "from a backup."
            )
        return private

    def holder(self, key: Key, gun: str) -> str | None:
        """The role this store holds metadata key `key`'s private half for, in repository
        `gun`; None if it is not held, or held only for other repositories.

        A `targets` body does not name its repository, so a key signs only for the
        GUNs its record lists: what it signed for one repository must never be
        replayable into another. Needs no secret: the review labels every key before
        anything is decrypted.
        """
        try:
            cid = canonical_key_id(key)
        except MalformedInput:
            return None
        record = self.get(cid)
        if record is not None:
            return record.role if gun in record.guns and record.retired is None else None
        path = self.key_path(cid)
        if path.is_file():  # a bare Notary key file copied in (a trust dir's private/)
            headers = read_key_file_headers(_key_file_bytes(path))
            return (headers.role or "root") if headers.gun == gun else None
        return None

    def _absolute(self, uri: str) -> str:
        if uri.startswith(FILE_SCHEME):
            return f"{FILE_SCHEME}{self.private_dir / uri.removeprefix(FILE_SCHEME)}"
        return uri

    def uri_for(self, key: Key) -> str | None:
        """The signer URI of the key held here for metadata key `key`, or None."""
        try:
            cid = canonical_key_id(key)
        except MalformedInput:
            return None
        record = self.get(cid)
        if record is not None:
            return None if record.retired is not None else self._absolute(record.uri)
        path = self.key_path(cid)
        return f"{FILE_SCHEME}{path}" if path.is_file() else None

    def signer_for(self, key: Key, passphrase_for: PassphraseSource) -> Signer | None:
        """A signer for metadata key `key` (e.g. a root certificate key), or None if not held;
        the backend is the one the key's URI names."""
        uri = self.uri_for(key)
        if uri is None:
            return None
        record = self.get(canonical_key_id(key))
        if record is not None:
            self.check_file_headers(record)
        return signer_from_uri(uri, key, passphrase_for)

    def check_file_headers(self, record: KeyRecord) -> None:
        """Refuse a key file whose `role:` or `gun:` header no longer matches this store's
        record. The headers are not authenticated (the passphrase protects only the key),
        so an edit would otherwise go unnoticed; the record is what this machine wrote."""
        path = self.file_of(record)
        if path is None or not path.is_file():
            return
        headers = read_key_file_headers(_key_file_bytes(path))
        if headers.role not in (None, record.role) or (
            headers.gun is not None and headers.gun not in record.guns
        ):
            said = f"a {headers.label} key" + (f" for {headers.gun}" if headers.gun else "")
            kept = ", ".join(sorted(record.guns)) or "no repository"
            raise InputRejected(
                f"The key file {path.name} says it is {said}, but this store recorded it as a "
                f"{record.role} key for {kept}: its headers were edited; restore it from a backup."
            )

    # -- export ---------------------------------------------------------------

    def public_keys(
        self,
        gun: str,
        key_ids: Sequence[str] = (),
        *,
        passphrase_for: PassphraseSource,
        now: datetime,
    ) -> PublicKeysDocument:
        """The public keys document for `gun`: the given keys, or every live key serving it.

        A root key named with `key_ids` but not yet certified for `gun` gets its
        certificate now (that needs the key: its passphrase or PIN).
        """
        selected = (
            [self.resolve(k) for k in key_ids]
            if key_ids
            else [r for r in self.records() if gun in r.guns and r.retired is None]
        )
        if not selected:
            raise InputRejected(
                f"No keys for {gun} are in the store; generate or import one, or name keys "
                "with --key."
            )
        entries: list[PublicKeyEntry] = []
        for record in {r.canonical_id: r for r in selected}.values():
            current = record
            if record.role == "root":
                current = self.certify(record, gun, passphrase_for, now)
                problem = check_root_certificate(current.metadata_key(gun), gun, now)
                if problem:
                    raise InputRejected(
                        f"Root key {current.canonical_id[:12]} cannot be exported: {problem}."
                    )
            elif gun not in record.guns:
                current = self.save(replace(record, guns={**record.guns, gun: None}))
            entries.append(
                PublicKeyEntry(current.role, current.canonical_id, current.metadata_key(gun))
            )
        return PublicKeysDocument(gun, tuple(entries))

    def describe(self, record: KeyRecord) -> list[str]:
        """Lines that identify a key for people (each within 80 columns but for long names):
        its fingerprint and id, then each GUN it serves with its root certificate."""
        lines = [
            f"{record.role} key",
            f"  fingerprint {record.fingerprint}",
            f"  id          {record.canonical_id}",
        ]
        for gun, certificate in sorted(record.guns.items()):
            lines.append(f"  serves      {gun}")
            if certificate is not None:
                d = describe_key(certificate)
                expiry = d.not_after.date().isoformat() if d.not_after else "?"
                lines.append(f"              root certificate SHA-256 (expires {expiry}):")
                lines.append(f"              {d.certificate_sha256}")
        if not record.guns:
            lines.append("  serves      no repository yet")
        return lines
