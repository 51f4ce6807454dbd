"""Notary 0.7 TUF metadata as immutable typed objects.

Modelled on python-tuf's Metadata API (`from_dict`/`to_dict` per class) but in
Notary's dialect: capitalised `_type`, `ecdsa-x509` keys whose `public` is base64
of PEM, base64 (not hex) hashes, signatures with a `method`, and an envelope
that is *not* canonical (notary-formats.md §2).

Parsing is strict: every required field must be present with the right type.
Unknown fields inside a signed body are kept (`unrecognized`) and written back
so that a parse/serialise round trip is byte-exact; note that Go drops them, so
`Envelope.is_go_fixed_point` reports such files.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeGuard, TypeVar

from ceremony.core.canonical import (
    Checked,
    RawJSON,
    encode_canonical,
    envelope_escape,
    parse_json,
)
from ceremony.core.errors import MalformedInput
from ceremony.core.fields import MAX_SAFE_INT, Fields
from ceremony.core.gotime import GoTime

KEY_TYPES = ("ecdsa", "ecdsa-x509", "rsa", "rsa-x509", "ed25519")
BASE_ROLES = ("root", "targets", "snapshot", "timestamp")
_HEX64 = re.compile(r"^[0-9a-f]{64}\Z")  # \Z: `$` would allow a trailing newline
_DELEGATION_NAME = re.compile(r"^[-a-z0-9_/]+\Z")


class MetadataError(MalformedInput):
    """Metadata that does not have Notary's structure."""


# ---------------------------------------------------------------------------
# field helpers


def b64decode(text: str, where: str) -> bytes:
    """Standard, padded base64 as Go's []byte encoding writes it."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise MetadataError(f"{where} is not valid base64.") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise MetadataError(f"{where} is not in standard padded base64.")
    return raw


def b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


# ---------------------------------------------------------------------------
# keys and signatures


@dataclass(frozen=True, slots=True)
class Key:
    """A public key as it appears in metadata (`TUFKey`)."""

    keytype: str
    public: str  # base64 text: DER SPKI, PEM certificate text, or raw ed25519 bytes

    def __post_init__(self) -> None:
        if self.keytype not in KEY_TYPES:
            raise MetadataError(f"Key type {self.keytype!r} is not one Notary supports.")

    @property
    def public_bytes(self) -> bytes:
        return b64decode(self.public, "a key's public value")

    @property
    def key_id(self) -> str:
        """The TUF key id: SHA-256 of the canonical key object."""
        return hashlib.sha256(encode_canonical(self.to_dict())).hexdigest()

    @property
    def is_x509(self) -> bool:
        return self.keytype.endswith("-x509")

    def to_dict(self) -> dict[str, Any]:
        return {"keytype": self.keytype, "keyval": {"private": None, "public": self.public}}

    @classmethod
    def from_dict(cls, data: Any, where: str = "key") -> Key:
        f = Fields(data, where, error=MetadataError)
        keytype = f.text("keytype")
        keyval = f.object("keyval")
        public = keyval.text("public")
        if keyval.optional("private") is not None:
            raise MetadataError(f"{where} carries a private key; refusing it.")
        keyval.done()
        f.done()
        key = cls(keytype, public)
        _ = key.public_bytes
        return key


@dataclass(frozen=True, slots=True)
class Signature:
    """One signature in an envelope: key id, method, raw signature bytes."""

    keyid: str
    method: str
    sig: bytes

    def to_dict(self) -> dict[str, Any]:
        # Declaration order, not sorted: Go writes the envelope with the struct's order.
        return {"keyid": self.keyid, "method": self.method, "sig": b64encode(self.sig)}

    @classmethod
    def from_dict(cls, data: Any, where: str = "signature") -> Signature:
        f = Fields(data, where, error=MetadataError)
        keyid = f.text("keyid")
        method = f.text("method").lower()
        sig = b64decode(f.text("sig"), f"{where}.sig")
        f.done()
        if not _HEX64.match(keyid):
            raise MetadataError(f"{where} has a malformed key id.")
        return cls(keyid, method, sig)


# ---------------------------------------------------------------------------
# roles and file metadata


@dataclass(frozen=True, slots=True)
class RoleKeys:
    """Key ids and threshold of a base role in root (`RootRole`)."""

    keyids: tuple[str, ...]
    threshold: int

    def to_dict(self) -> dict[str, Any]:
        return {"keyids": list(self.keyids), "threshold": self.threshold}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> RoleKeys:
        f = Fields(data, where, error=MetadataError)
        keyids = f.strings("keyids")
        threshold = f.integer("threshold", minimum=1)
        f.done()
        return cls(keyids, threshold)


@dataclass(frozen=True, slots=True)
class DelegatedRole:
    """A delegation as listed in its parent's `delegations.roles`."""

    name: str
    keyids: tuple[str, ...]
    threshold: int
    paths: tuple[str, ...] = ()  # empty: the key is omitted (Go omitempty); ("",) = all paths

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"keyids": list(self.keyids), "name": self.name}
        if self.paths:
            d["paths"] = list(self.paths)
        d["threshold"] = self.threshold
        return d

    @classmethod
    def from_dict(cls, data: Any, where: str) -> DelegatedRole:
        f = Fields(data, where, error=MetadataError)
        name = f.text("name")
        keyids = f.strings("keyids")
        threshold = f.integer("threshold", minimum=1)
        paths = f.strings("paths") if f.has("paths") else ()
        f.done()
        if not is_delegation_name(name):
            raise MetadataError(f"{name!r} is not a valid delegation name.")
        return cls(name, keyids, threshold, paths)

    def covers(self, target: str) -> bool:
        """Notary matches paths with plain prefixes; "" matches everything."""
        return any(target.startswith(p) for p in self.paths)


def is_delegation_name(name: str) -> bool:
    """`targets/...`, lowercase path segments, clean, under 256 characters."""
    if not name.startswith("targets/") or len(name) >= 256 or not _DELEGATION_NAME.match(name):
        return False
    parts = name.split("/")
    return all(p and p not in (".", "..") for p in parts)


def parent_role(name: str) -> str:
    return name.rsplit("/", 1)[0]


@dataclass(frozen=True, slots=True)
class FileMeta:
    """Length, hashes (algorithm -> raw digest) and optional custom data of a file."""

    length: int
    hashes: Mapping[str, bytes]
    custom: RawJSON | None = None
    unrecognized: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = dict(self.unrecognized)
        if self.custom is not None:
            d["custom"] = self.custom
        d["hashes"] = {alg: b64encode(h) for alg, h in self.hashes.items()}
        d["length"] = self.length
        return d

    @classmethod
    def from_dict(cls, data: Any, where: str) -> FileMeta:
        f = Fields(data, where, error=MetadataError)
        length = f.integer("length")
        raw_hashes = f.mapping("hashes")
        hashes: dict[str, bytes] = {}
        for alg, value in raw_hashes.items():
            if not isinstance(value, str):
                raise MetadataError(f"{where}.hashes.{alg} must be a string.")
            hashes[alg] = b64decode(value, f"{where}.hashes.{alg}")
        for alg, size in (("sha256", 32), ("sha512", 64)):
            if alg in hashes and len(hashes[alg]) != size:
                raise MetadataError(f"{where}.hashes.{alg} has the wrong length.")
        custom = f.optional("custom")
        if custom is not None and not isinstance(custom, RawJSON):
            custom = RawJSON(custom)
        return cls(length, hashes, custom, f.rest())

    @classmethod
    def for_bytes(cls, data: bytes, *, sha512: bool = True) -> FileMeta:
        """Metadata of a file: Notary records sha256 and sha512 (`NotaryDefaultHashes`)."""
        hashes = {"sha256": hashlib.sha256(data).digest()}
        if sha512:
            hashes["sha512"] = hashlib.sha512(data).digest()
        return cls(len(data), hashes)

    def matches(self, data: bytes) -> str | None:
        """None if `data` matches length and every known hash, else the reason."""
        if len(data) != self.length:
            return f"its length is {len(data)}, not the {self.length} recorded"
        known = [a for a in self.hashes if a in ("sha256", "sha512")]
        if not known:
            return "no known hash algorithm is recorded for it"
        for alg in known:
            if hashlib.new(alg, data).digest() != self.hashes[alg]:
                return f"its {alg} does not match"
        return None

    @property
    def sha256_hex(self) -> str:
        h = self.hashes.get("sha256")
        return h.hex() if h else ""


# Standard padded base64 of exactly 32 and 64 bytes, with the unused low bits zero
# (the only spelling Go writes and the only one `b64decode` accepts).
_SHA256_B64 = re.compile(r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=").fullmatch
_SHA512_B64 = re.compile(r"[A-Za-z0-9+/]{85}[AQgw]==").fullmatch


def is_plain_file_meta(entry: Any) -> TypeGuard[dict[str, Any]]:
    """Whether `entry` is a target's meta in the usual shape, exactly as `FileMeta.to_dict`
    writes it: a length and a sha256 (and maybe a sha512) in canonical base64, nothing else.
    Such an entry needs no `FileMeta` to be checked (`TargetFiles.from_dict` inlines this)."""
    if type(entry) is not dict or len(entry) != 2:
        return False
    length = entry.get("length")
    hashes = entry.get("hashes")
    if type(length) is not int or not 0 <= length < MAX_SAFE_INT or type(hashes) is not dict:
        return False
    sha256 = hashes.get("sha256")
    if type(sha256) is not str or not _SHA256_B64(sha256):
        return False
    count = len(hashes)
    if count == 1:
        return True
    sha512 = hashes.get("sha512")
    return count == 2 and type(sha512) is str and _SHA512_B64(sha512) is not None


class TargetFiles(Mapping[str, FileMeta]):
    """A targets role's `targets` map, kept as the JSON it was read from.

    At 10⁵–10⁶ targets a typed object per entry costs more than all the rest of a
    command. Entries are checked once when read (a loop with no call per entry for
    the usual shape, the full `FileMeta` reader for any other) and become `FileMeta`
    only when one is asked for; listing, diffing and re-encoding use the JSON.
    """

    __slots__ = ("_raw",)

    def __init__(self, raw: Checked | None = None) -> None:
        self._raw: Checked = Checked() if raw is None else raw

    @classmethod
    def of(cls, entries: Mapping[str, FileMeta]) -> TargetFiles:
        if isinstance(entries, TargetFiles):
            return entries
        return cls(Checked({name: meta.to_dict() for name, meta in entries.items()}))

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str) -> TargetFiles:
        """Check every entry of a parsed `targets` object (plain JSON from `parse_json`)."""
        checked = Checked(raw)
        for name, entry in raw.items():
            if type(entry) is dict and len(entry) == 2:
                length = entry.get("length")
                hashes = entry.get("hashes")
                if type(length) is int and 0 <= length < MAX_SAFE_INT and type(hashes) is dict:
                    sha256 = hashes.get("sha256")
                    if type(sha256) is str and _SHA256_B64(sha256):
                        count = len(hashes)
                        if count == 1:
                            continue
                        sha512 = hashes.get("sha512")
                        if count == 2 and type(sha512) is str and _SHA512_B64(sha512):
                            continue
            # Anything else (custom data, other algorithms, or a flaw) is read in full.
            checked[name] = FileMeta.from_dict(entry, f"{where}.targets[{name!r}]").to_dict()
        return cls(checked)

    def __getitem__(self, name: str) -> FileMeta:
        return FileMeta.from_dict(self._raw[name], f"target {name!r}")

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def __contains__(self, name: object) -> bool:
        return name in self._raw

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TargetFiles):
            return self._raw == other._raw
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def summary(self, name: str) -> tuple[int, str]:
        """Length and SHA-256 (hex, "" if none) of one entry, without building a `FileMeta`."""
        entry = self._raw[name]
        sha256 = entry["hashes"].get("sha256")
        return entry["length"], base64.b64decode(sha256).hex() if sha256 else ""

    def differences(self, newer: TargetFiles) -> tuple[list[str], list[str], list[str]]:
        """Names `newer` adds, removes and records differently (set operations on the JSON,
        and an identity check first: entries a plan did not touch are the same objects)."""
        mine, theirs = self._raw, newer._raw
        added = list(theirs.keys() - mine.keys())
        removed = list(mine.keys() - theirs.keys())
        changed = [
            name
            for name, entry in theirs.items()
            if (old := mine.get(name, entry)) is not entry and old != entry
        ]
        return added, removed, changed

    def edit(self) -> dict[str, Any]:
        """A mutable copy of the JSON entries, for `with_entries` after changes."""
        return dict(self._raw)

    @classmethod
    def with_entries(cls, entries: dict[str, Any]) -> TargetFiles:
        """Entries from `edit()`, with new ones from `FileMeta.to_dict()`."""
        return cls(Checked(entries))

    def to_dict(self) -> Checked:
        return self._raw


# ---------------------------------------------------------------------------
# bodies


def _common(f: Fields, type_name: str) -> tuple[GoTime, int]:
    t = f.text("_type")
    if t != type_name:
        raise f.fail(f"has _type {t!r}, expected {type_name!r}")
    try:
        expires = GoTime.parse(f.text("expires"))
    except ValueError as exc:
        raise MetadataError(f"{f.where}.expires is not an RFC 3339 time.") from exc
    version = f.integer("version")
    return expires, version


def _keys(value: dict[str, Any], where: str) -> dict[str, Key]:
    return {kid: Key.from_dict(k, f"{where}[{kid[:8]}]") for kid, k in value.items()}


@dataclass(frozen=True, slots=True)
class Root:
    TYPE: ClassVar[str] = "Root"
    expires: GoTime
    version: int
    keys: Mapping[str, Key]
    roles: Mapping[str, RoleKeys]
    consistent_snapshot: bool = False
    unrecognized: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.unrecognized)
        d.update(
            {
                "_type": self.TYPE,
                "consistent_snapshot": self.consistent_snapshot,
                "expires": self.expires.format(),
                "keys": {kid: k.to_dict() for kid, k in self.keys.items()},
                "roles": {name: r.to_dict() for name, r in self.roles.items()},
                "version": self.version,
            }
        )
        return d

    @classmethod
    def from_dict(cls, data: Any, where: str = "root") -> Root:
        f = Fields(data, where, error=MetadataError)
        expires, version = _common(f, cls.TYPE)
        cs = f.flag("consistent_snapshot")
        keys = _keys(f.mapping("keys"), f"{where}.keys")
        raw_roles = f.mapping("roles")
        roles = {n: RoleKeys.from_dict(r, f"{where}.roles.{n}") for n, r in raw_roles.items()}
        for name in BASE_ROLES:
            if name not in roles:
                raise MetadataError(f"{where} does not define the {name} role.")
            for kid in roles[name].keyids:
                if kid not in keys:
                    raise MetadataError(f"{where} lists key {kid[:8]} for {name} but not its key.")
        return cls(expires, version, keys, roles, cs, f.rest())

    def role_keys(self, role: str) -> dict[str, Key]:
        return {kid: self.keys[kid] for kid in self.roles[role].keyids}


@dataclass(frozen=True, slots=True)
class Delegations:
    keys: Mapping[str, Key] = field(default_factory=dict)
    roles: tuple[DelegatedRole, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "keys": {kid: k.to_dict() for kid, k in self.keys.items()},
            "roles": [r.to_dict() for r in self.roles],
        }

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Delegations:
        f = Fields(data, where, error=MetadataError)
        keys = _keys(f.mapping("keys"), f"{where}.keys")
        raw_roles = f.array("roles")
        f.done()
        roles = tuple(DelegatedRole.from_dict(r, f"{where}.roles") for r in raw_roles)
        for r in roles:
            for kid in r.keyids:
                if kid not in keys:
                    raise MetadataError(
                        f"{where} lists key {kid[:8]} for {r.name} but not its key."
                    )
        return cls(keys, roles)

    def role(self, name: str) -> DelegatedRole | None:
        return next((r for r in self.roles if r.name == name), None)


@dataclass(frozen=True, slots=True)
class Targets:
    TYPE: ClassVar[str] = "Targets"
    expires: GoTime
    version: int
    targets: TargetFiles = field(default_factory=TargetFiles)
    delegations: Delegations = field(default_factory=Delegations)
    unrecognized: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A plain {name: FileMeta} is accepted (TargetFiles.of returns a TargetFiles as it is).
        object.__setattr__(self, "targets", TargetFiles.of(self.targets))

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.unrecognized)
        d.update(
            {
                "_type": self.TYPE,
                "delegations": self.delegations.to_dict(),
                "expires": self.expires.format(),
                "targets": self.targets.to_dict(),
                "version": self.version,
            }
        )
        return d

    @classmethod
    def from_dict(cls, data: Any, where: str = "targets") -> Targets:
        f = Fields(data, where, error=MetadataError)
        expires, version = _common(f, cls.TYPE)
        targets = TargetFiles.from_dict(f.mapping("targets"), where)
        delegations = Delegations.from_dict(f.mapping("delegations"), f"{where}.delegations")
        return cls(expires, version, targets, delegations, f.rest())


def _meta_body_dict(body: Snapshot | Timestamp) -> dict[str, Any]:
    d = dict(body.unrecognized)
    d.update(
        {
            "_type": body.TYPE,
            "expires": body.expires.format(),
            "meta": {n: m.to_dict() for n, m in body.meta.items()},
            "version": body.version,
        }
    )
    return d


def _meta_body_fields(
    data: Any, type_name: str, where: str
) -> tuple[GoTime, int, dict[str, FileMeta], dict[str, Any]]:
    """Common fields of snapshot and timestamp: expiry, version, `meta`, and the rest."""
    f = Fields(data, where, error=MetadataError)
    expires, version = _common(f, type_name)
    raw = f.mapping("meta")
    meta = {n: FileMeta.from_dict(m, f"{where}.meta[{n!r}]") for n, m in raw.items()}
    return expires, version, meta, f.rest()


@dataclass(frozen=True, slots=True)
class Snapshot:
    TYPE: ClassVar[str] = "Snapshot"
    expires: GoTime
    version: int
    meta: Mapping[str, FileMeta]
    unrecognized: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _meta_body_dict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = "snapshot") -> Snapshot:
        expires, version, meta, rest = _meta_body_fields(data, cls.TYPE, where)
        for name in ("root", "targets"):
            if name not in meta or "sha256" not in meta[name].hashes:
                raise MetadataError(f"{where} does not record a sha256 for {name}.")
        return cls(expires, version, meta, rest)


@dataclass(frozen=True, slots=True)
class Timestamp:
    TYPE: ClassVar[str] = "Timestamp"
    expires: GoTime
    version: int
    meta: Mapping[str, FileMeta]
    unrecognized: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _meta_body_dict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = "timestamp") -> Timestamp:
        expires, version, meta, rest = _meta_body_fields(data, cls.TYPE, where)
        if "snapshot" not in meta:
            raise MetadataError(f"{where} does not record the snapshot.")
        return cls(expires, version, meta, rest)


Body = Root | Targets | Snapshot | Timestamp
T = TypeVar("T", Root, Targets, Snapshot, Timestamp)
_BODY_TYPES: dict[str, type[Root] | type[Targets] | type[Snapshot] | type[Timestamp]] = {
    "Root": Root,
    "Targets": Targets,
    "Snapshot": Snapshot,
    "Timestamp": Timestamp,
}


def body_bytes(body: Body) -> bytes:
    """The canonical bytes of a body: exactly what gets signed."""
    return encode_canonical(body.to_dict())


def role_order(role: str) -> tuple[int, int, str]:
    """Root, targets, delegations shallowest first, then snapshot and timestamp: the order
    a server takes an upload in, and the order roles are shown in."""
    fixed = {"root": 0, "targets": 1, "snapshot": 8, "timestamp": 9}
    return (fixed.get(role, 2), role.count("/"), role)


def role_type(role: str) -> type[Root] | type[Targets] | type[Snapshot] | type[Timestamp]:
    if role == "root":
        return Root
    if role == "snapshot":
        return Snapshot
    if role == "timestamp":
        return Timestamp
    if role == "targets" or is_delegation_name(role):
        return Targets
    raise MetadataError(f"{role!r} is not a Notary role name.")


@dataclass(frozen=True, slots=True)
class Envelope(Generic[T]):
    """A signed metadata file: `{"signed": body, "signatures": [...]}`.

    `signed_map_bytes` is what Go's verifier checks signatures against: the
    received `signed` object re-canonicalised as a map. For metadata we create,
    it equals `body_bytes(body)`. The body's own canonical bytes and the file's
    bytes are each encoded once per envelope and then kept.
    """

    body: T
    signatures: tuple[Signature, ...] = ()
    signed_map_bytes: bytes = b""
    raw: bytes = field(default=b"", repr=False, compare=False)  # the file as read (b"": made here)
    _memo: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def create(cls, body: T, signatures: tuple[Signature, ...] = ()) -> Envelope[T]:
        signed = body_bytes(body)
        return cls(body, signatures, signed, _memo={"signed": signed})

    @property
    def signed_bytes(self) -> bytes:
        """The canonical bytes of the typed body (what a signer signs)."""
        signed = self._memo.get("signed")
        if signed is None:
            signed = self._memo["signed"] = body_bytes(self.body)
        return signed

    def to_bytes(self) -> bytes:
        data = self._memo.get("file")
        if data is None:
            data = self._memo["file"] = _envelope_bytes(self.signed_bytes, self.signatures)
        return data

    def with_signatures(self, signatures: tuple[Signature, ...]) -> Envelope[T]:
        signed = self.signed_bytes
        return Envelope(self.body, signatures, signed, _memo={"signed": signed})

    @property
    def is_go_fixed_point(self) -> bool:
        """Whether Go would re-serialise this file to the same signed bytes."""
        return not self.body.unrecognized and self.signed_map_bytes == self.signed_bytes


def _envelope_bytes(signed: bytes, signatures: tuple[Signature, ...]) -> bytes:
    sigs = b",".join(encode_canonical(RawJSON(s.to_dict())) for s in signatures)
    return b'{"signed":' + envelope_escape(signed) + b',"signatures":[' + sigs + b"]}"


def _read_envelope(data: bytes, what: str, *, any_type: bool) -> tuple[dict[str, Any], bytes]:
    """The parsed envelope and the canonical bytes of its `signed` object as a map."""
    signed_map: list[bytes] = []

    def written_by_go(doc: Any) -> bytes | None:
        """The file Go would write for `doc`; when it is `data`, `data` is strict JSON."""
        if type(doc) is not dict or list(doc) != ["signed", "signatures"]:
            return None
        signed_map.append(encode_canonical(doc["signed"]))
        sigs = encode_canonical(RawJSON(doc["signatures"]))
        return b'{"signed":' + envelope_escape(signed_map[-1]) + b',"signatures":' + sigs + b"}"

    doc = parse_json(data, what=what, form=written_by_go)
    signed = doc.get("signed") if isinstance(doc, dict) else None
    kind = signed.get("_type") if isinstance(signed, dict) else None
    if any_type and not (isinstance(kind, str) and kind in _BODY_TYPES):
        raise MetadataError(f"The {what} is not Notary metadata.")
    if not isinstance(doc, dict) or set(doc) != {"signed", "signatures"}:
        raise MetadataError(f"The {what} is not a signed metadata envelope.")
    if not isinstance(doc["signatures"], list):
        raise MetadataError(f"The {what} has no signature list.")
    return doc, signed_map[-1] if signed_map else encode_canonical(doc["signed"])


def _envelope_of(
    doc: dict[str, Any], signed_map: bytes, expected: type[T], data: bytes, what: str
) -> Envelope[T]:
    body = expected.from_dict(doc["signed"], what)
    signatures = tuple(Signature.from_dict(s, f"{what} signature") for s in doc["signatures"])
    return Envelope(body, signatures, signed_map, data)


def parse_envelope(data: bytes, expected: type[T], *, what: str = "metadata") -> Envelope[T]:
    """Parse a metadata file whose body must be of type `expected`."""
    doc, signed_map = _read_envelope(data, what, any_type=False)
    return _envelope_of(doc, signed_map, expected, data, what)


def parse_any(data: bytes, *, what: str = "metadata") -> Envelope[Any]:
    """Parse a metadata file of any type, dispatching on `_type`."""
    doc, signed_map = _read_envelope(data, what, any_type=True)
    return _envelope_of(doc, signed_map, _BODY_TYPES[doc["signed"]["_type"]], data, what)
