"""The two documents of the ceremony protocol ("PSBT for TUF"), pure and strict.

Request (online -> offline): the base (published envelopes the changes apply to,
the roots needed to chain to the offline trust state, and the server's snapshot
and timestamp over them; a *thin* request carries, but for the snapshot and
timestamp, only their digests and signatures), the typed changes, and for each role to sign the
expected version, expiry, digest of the canonical `signed` bytes and signers.

Signatures (offline -> online): the request's id and digest, and per role the
digest of the bytes signed and the signatures in Notary's encoding.

Public keys (offline -> online, at a key ceremony): the keys the offline machine
holds, for `ceremony-online init` and `rotate`: for root the self-signed
certificate, for other roles the bare public key. No secret.

Both are canonical JSON with a versioned media type; unknown fields are
rejected. The request `id` is a content address (SHA-256 over the request
without its id, which includes a random nonce): any edit made after export
changes it, so a tampered field is refused at once. Both `id` and the
operator-facing `digest` (shown as words on both machines) are computed over
the *thin* form, in which each base file is named by its SHA-256 and length:
that commits to the base bytes, and gives a full and a thin export of one
request the same id and digest.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ceremony.core.canonical import (
    CanonicalError,
    encode_canonical,
    parse_json,
    parse_json_unchecked,
)
from ceremony.core.changes import Change, read_change
from ceremony.core.errors import (
    CeremonyError,
    InputRejected,
    MalformedInput,
    VerificationFailed,
    clipped,
)
from ceremony.core.fields import Fields
from ceremony.core.gotime import GoTime
from ceremony.core.gun import check_gun
from ceremony.core.keys import canonical_key_id, check_root_certificate
from ceremony.core.liveness import challenge, check_nonce, check_time
from ceremony.core.metadata import Key, Signature, is_delegation_name
from ceremony.core.plan import Plan

REQUEST_MEDIA_TYPE = "application/vnd.notary-ceremony.request.v1+json"
SIGNATURES_MEDIA_TYPE = "application/vnd.notary-ceremony.signatures.v1+json"
PUBLIC_KEYS_MEDIA_TYPE = "application/vnd.notary-ceremony.public-keys.v1+json"
LIVENESS_MEDIA_TYPE = "application/vnd.notary-ceremony.liveness.v1+json"
BATCH_REQUEST_MEDIA_TYPE = "application/vnd.notary-ceremony.batch-request.v1+json"
BATCH_SIGNATURES_MEDIA_TYPE = "application/vnd.notary-ceremony.batch-signatures.v1+json"
_HEX = re.compile(r"^[0-9a-f]+$")
_KIND_NAMES = {
    REQUEST_MEDIA_TYPE: "a signing request",
    SIGNATURES_MEDIA_TYPE: "a signatures document",
    PUBLIC_KEYS_MEDIA_TYPE: "a public keys document",
    LIVENESS_MEDIA_TYPE: "a liveness proof",
    BATCH_REQUEST_MEDIA_TYPE: "a batch request",
    BATCH_SIGNATURES_MEDIA_TYPE: "a batch signatures document",
}


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _role(value: str, f: Fields, *, base: bool = False) -> str:
    """A role offline keys sign; in a base, also the server's snapshot and timestamp."""
    server_role = base and value in ("snapshot", "timestamp")
    if not (value in ("root", "targets") or server_role or is_delegation_name(value)):
        raise f.fail("names an invalid role")
    return value


def open_document(data: bytes, expected: str, *, checked: bool = True) -> dict[str, Any]:
    """Parse a ceremony document and check its media type, naming what it is if it is another.

    `checked=False` leaves the canonical check to the caller (`parse_json_unchecked`)."""
    noun = _KIND_NAMES.get(expected, "a document").split(" ", 1)[1]
    doc = parse_json(data, what=noun) if checked else parse_json_unchecked(data, what=noun)
    if not isinstance(doc, dict) or not isinstance(doc.get("media_type"), str):
        raise MalformedInput(
            f"This is not {_KIND_NAMES[expected]} of this toolkit (no media type)."
        )
    media = doc["media_type"]
    if media != expected:
        other = _KIND_NAMES.get(media)
        if other:
            raise MalformedInput(f"This file is {other}, not {_KIND_NAMES[expected]}.")
        raise MalformedInput(
            f"This is not {_KIND_NAMES[expected]}: its media type is {clipped(media)}."
        )
    return doc


@dataclass(frozen=True, slots=True)
class BaseFile:
    """A published metadata file the request builds on.

    A full request carries each file (`data`). A thin one carries, for a file
    whose `signed` body the offline machine already holds, only its digests and
    its signatures: the offline machine rebuilds the exact file from the body it
    holds and these signatures, and verifies it as if it had been sent whole.
    """

    role: str
    version: int
    sha256: str  # of the envelope bytes
    body_sha256: str  # of the canonical signed bytes
    signatures: tuple[Signature, ...]  # the envelope's, in its order
    data: bytes | None

    @property
    def always_carried(self) -> bool:
        """The server's snapshot and timestamp travel even in a thin request: they are new
        with every change, so the offline machine never holds them, and they are small."""
        return self.role in ("snapshot", "timestamp")

    def to_dict(self, *, thin: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "body_sha256": self.body_sha256,
            "role": self.role,
            "sha256": self.sha256,
            "signatures": [s.to_dict() for s in self.signatures],
            "version": self.version,
        }
        if self.data is not None and (not thin or self.always_carried):
            d["data"] = base64.b64encode(self.data).decode("ascii")
        return d

    @classmethod
    def from_dict(cls, d: Any) -> BaseFile:
        f = Fields(d, "The request's base entry")
        data = None
        if f.has("data"):
            try:
                data = base64.b64decode(f.text("data"), validate=True)
            except (binascii.Error, ValueError) as exc:
                raise f.fail("has data that is not base64") from exc
        entry = cls(
            _role(f.text("role"), f, base=True),
            f.integer("version"),
            f.hex("sha256", 64),
            f.hex("body_sha256", 64),
            tuple(
                Signature.from_dict(s, "The request's base entry signature")
                for s in f.array("signatures")
            ),
            data,
        )
        f.done()
        if data is not None and sha256_hex(data) != entry.sha256:
            raise VerificationFailed(
                f"The request's base file for {entry.role} does not match its recorded digest."
            )
        if entry.always_carried and data is None:
            raise MalformedInput(f"The request's base {entry.role} must be carried whole.")
        return entry


@dataclass(frozen=True, slots=True)
class SignerExpectation:
    keyids: tuple[str, ...]
    threshold: int

    def to_dict(self) -> dict[str, Any]:
        return {"keyids": list(self.keyids), "threshold": self.threshold}


@dataclass(frozen=True, slots=True)
class Expectation:
    """What the online half expects the offline half to compute and sign for one role."""

    role: str
    version: int
    expires: str
    digest: str  # sha256 hex of the canonical signed bytes
    signers: tuple[SignerExpectation, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "expires": self.expires,
            "role": self.role,
            "signers": [s.to_dict() for s in self.signers],
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, d: Any) -> Expectation:
        f = Fields(d, "The request's expectation")
        signers = []
        for raw in f.array("signers"):
            s = Fields(raw, "The request's expectation of signers")
            signers.append(SignerExpectation(s.strings("keyids"), s.integer("threshold")))
            s.done()
        expectation = cls(
            _role(f.text("role"), f),
            f.integer("version"),
            f.text("expires"),
            f.hex("digest", 64),
            tuple(signers),
        )
        f.done()
        return expectation

    @classmethod
    def from_plan(cls, plan: Plan) -> tuple[Expectation, ...]:
        return tuple(
            cls(
                rp.role,
                rp.body.version,
                rp.body.expires.format(),
                rp.digest,
                tuple(SignerExpectation(tuple(sorted(s.keys)), s.threshold) for s in rp.signers),
            )
            for rp in plan.roles.values()
        )


def _request_change(d: Any, number: int) -> tuple[Change, Mapping[str, Any]]:
    """One change of a request; its refusal says it is the request's (the file it came in)."""
    try:
        return read_change(d)
    except InputRejected as exc:
        why = exc.message
        kind = MalformedInput if isinstance(exc, MalformedInput) else InputRejected
        raise kind(f"In the request's change {number}, {why[:1].lower()}{why[1:]}") from exc


_CHANGES_CHUNK = 4096  # changes encoded at a time: a few MB of dicts, never a million


def _changes_parts(changes: Sequence[Change], data: Sequence[Mapping[str, Any]]) -> Iterator[bytes]:
    """The canonical encoding of the changes list, in pieces whose join is the bytes.

    A few thousand changes are turned into JSON (`data` if it holds them, else `to_dict`)
    and encoded at a time, so a million changes never exist as dicts and bytes at once.
    The canonical encoding of a list is its items' encodings between `[` `]`, joined by
    `,`: the pieces are exact."""
    source = data if data and len(data) == len(changes) else None
    yield b"["
    for start in range(0, len(changes), _CHANGES_CHUNK):
        stop = start + _CHANGES_CHUNK
        chunk = (
            list(source[start:stop])
            if source is not None
            else [c.to_dict() for c in changes[start:stop]]
        )
        if start:
            yield b","
        yield encode_canonical(chunk)[1:-1]
    yield b"]"


def _sha256_of_parts(parts: Iterable[bytes | memoryview]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Request:
    """An unsigned signing request.

    Encoded once, in three parts: the base (`{"base":…,"changes":`, per form), the changes
    (`[…]`, the same in both forms and most of the bytes) and the rest (`,"created":…}`). A
    request of a million changes is hashed for its id and its digest and written out from
    these parts; the changes are turned into JSON a few thousand at a time, only to be
    encoded, and a request read from bytes keeps its changes' part as a view of those bytes.
    `changes_data` is the changes' JSON form if the caller holds it already (it is then
    encoded instead of `to_dict`); `build` does not keep it once encoded.
    """

    id: str
    nonce: str
    gun: str
    created: str
    base: tuple[BaseFile, ...]
    changes: tuple[Change, ...]
    expect: tuple[Expectation, ...]
    changes_data: tuple[Mapping[str, Any], ...] = field(default=(), compare=False, repr=False)
    _encoded: dict[str, Any] = field(default_factory=dict, init=False, compare=False, repr=False)

    @staticmethod
    def content_id(content: Mapping[str, Any]) -> str:
        return sha256_hex(encode_canonical(content))[:32]

    @classmethod
    def build(
        cls,
        *,
        gun: str,
        created: GoTime,
        nonce: str,
        base: Iterable[BaseFile],
        changes: Iterable[Change],
        plan: Plan,
        changes_data: tuple[Mapping[str, Any], ...] = (),
    ) -> Request:
        """`changes_data`: the changes' JSON form if the caller made it already (to plan)."""
        draft = cls(
            "",
            nonce,
            gun,
            created.format(),
            tuple(base),
            tuple(changes),
            Expectation.from_plan(plan),
            changes_data,
        )
        content_id = draft._own_content_id()  # encodes the changes, from `changes_data` if given
        return draft._with(id=content_id, changes_data=())

    def _with(self, **changed: Any) -> Request:
        """`replace`, keeping the encoded parts that `changed` leaves as they are."""
        new = replace(self, **changed)
        keep = [k for k in ("changes", "head-thin", "head-full") if k in self._encoded]
        if "changes" in changed:  # `changes_data` is only ever the JSON of the same changes
            keep = [k for k in keep if k != "changes"]
        if "base" in changed:
            keep = [k for k in keep if not k.startswith("head")]
        new._encoded.update({k: self._encoded[k] for k in keep})
        return new

    def _changes_list(self) -> list[Mapping[str, Any]]:
        if self.changes_data and len(self.changes_data) == len(self.changes):
            return list(self.changes_data)
        return [c.to_dict() for c in self.changes]

    def _content(self, *, thin: bool = True) -> dict[str, Any]:
        """The document without its id, as one value (the parts' join encodes it)."""
        return {
            "base": [b.to_dict(thin=thin) for b in self.base],
            "changes": self._changes_list(),
            "created": self.created,
            "expect": [e.to_dict() for e in self.expect],
            "gun": self.gun,
            "media_type": REQUEST_MEDIA_TYPE,
            "nonce": self.nonce,
        }

    def to_dict(self, *, thin: bool = False) -> dict[str, Any]:
        d = self._content(thin=thin)
        d["id"] = self.id
        return d

    # -- the encoded parts ----------------------------------------------------

    def _head(self, thin: bool) -> bytes:
        key = "head-thin" if thin else "head-full"
        head: bytes | None = self._encoded.get(key)
        if head is None:
            base = encode_canonical({"base": [b.to_dict(thin=thin) for b in self.base]})
            head = self._encoded[key] = base[:-1] + b',"changes":'
        return head

    def _changes_json(self) -> tuple[bytes | memoryview, ...]:
        """The changes' encoding, as the pieces it was made in (never joined but to write)."""
        encoded: tuple[bytes | memoryview, ...] | None = self._encoded.get("changes")
        if encoded is None:
            encoded = self._encoded["changes"] = tuple(
                _changes_parts(self.changes, self.changes_data)
            )
        return encoded

    def _tail(self, *, with_id: bool) -> bytes:
        rest: dict[str, Any] = {
            "created": self.created,
            "expect": [e.to_dict() for e in self.expect],
            "gun": self.gun,
            "media_type": REQUEST_MEDIA_TYPE,
            "nonce": self.nonce,
        }
        if with_id:
            rest["id"] = self.id
        return b"," + encode_canonical(rest)[1:]

    def _parts(self, *, thin: bool, with_id: bool) -> tuple[bytes | memoryview, ...]:
        return self._head(thin), *self._changes_json(), self._tail(with_id=with_id)

    def _own_content_id(self) -> str:
        """`content_id` of `_content()`, hashed from the parts."""
        return _sha256_of_parts(self._parts(thin=True, with_id=False))[:32]

    def _is_encoding_of(self, data: bytes) -> bool:
        """Whether `data` is exactly this request's bytes (in its form); if so, the changes'
        part is kept as a view of `data` rather than encoded into bytes of its own.

        Compared a few thousand changes at a time, so the changes' bytes never exist twice."""
        head, tail = self._head(self.thin), self._tail(with_id=True)
        end = len(data) - len(tail)
        if end < len(head) or not data.startswith(head) or not data.endswith(tail):
            return False
        position = len(head)
        for part in _changes_parts(self.changes, self.changes_data):
            if not data.startswith(part, position):
                return False
            position += len(part)
        if position != end:
            return False
        self._encoded["changes"] = (memoryview(data)[len(head) : end],)
        return True

    def to_bytes(self, *, thin: bool = False) -> bytes:
        """The document's bytes, joined from its parts (each encoded once)."""
        thin = thin or self.thin  # a thin request has no full form: both are the same bytes
        return b"".join(self._parts(thin=thin, with_id=True))

    @property
    def digest(self) -> str:
        """SHA-256 of the thin form: the same for a full and a thin export of this request."""
        digest: str | None = self._encoded.get("digest")
        if digest is None:
            digest = self._encoded["digest"] = _sha256_of_parts(
                self._parts(thin=True, with_id=True)
            )
        return digest

    def thinned(self) -> Request:
        """The same request with base data dropped (for an offline machine that holds it)."""
        return self._with(
            base=tuple(b if b.always_carried else replace(b, data=None) for b in self.base),
        )

    @property
    def thin(self) -> bool:
        return any(b.data is None for b in self.base)

    def expectation(self, role: str) -> Expectation | None:
        return next((e for e in self.expect if e.role == role), None)

    @classmethod
    def from_bytes(cls, data: bytes) -> Request:
        """Read a request strictly: every field typed, the id its content's, the bytes canonical.

        The JSON is parsed once (`parse_json_unchecked`): the final comparison of the
        request's canonical encoding with `data` proves all that `parse_json` would. On any
        failure `parse_json` reads `data` again, so a repeated key or a float is named as
        before; otherwise the failure found is raised.
        """
        failure: CeremonyError | None = None
        try:
            return cls._read(data)
        except CeremonyError as exc:
            failure = _without_frames(exc)
        except CanonicalError:
            pass
        # Outside the handler, with no frame of the first reading kept alive: a 200 MB
        # input is then decoded once at a time, not twice at once.
        parse_json(data, what="signing request")
        if failure is not None:
            raise failure
        raise _not_canonical()

    @classmethod
    def _read(cls, data: bytes) -> Request:
        f = Fields(open_document(data, REQUEST_MEDIA_TYPE, checked=False), "The request")
        f.text("media_type")
        gun = check_gun(f.text("gun"), "the request")
        created = f.text("created")
        try:
            GoTime.parse(created)
        except ValueError as exc:
            raise MalformedInput("The request's creation time is malformed.") from exc
        request = cls(
            f.hex("id", 32),
            f.hex("nonce", 32),
            gun,
            created,
            tuple(BaseFile.from_dict(b) for b in f.array("base")),
            tuple(_request_change(c, n)[0] for n, c in enumerate(f.array("changes"), 1)),
            tuple(Expectation.from_dict(e) for e in f.array("expect")),
        )
        f.done()
        canonical = request._is_encoding_of(data)
        if request._own_content_id() != request.id:
            raise VerificationFailed(
                "The request's content does not match its id: it was altered after export; export it again."
            )
        if not canonical:
            raise _not_canonical()
        if not request.expect:
            raise MalformedInput("The request asks for no signatures.")
        return request


def _without_frames(error: CeremonyError) -> CeremonyError:
    """The error alone: its traceback and the errors it came from would keep what was read
    alive (a JSONDecodeError holds the whole text)."""
    error.__traceback__ = None
    error.__cause__ = error.__context__ = None
    error.__suppress_context__ = True
    return error


def _not_canonical() -> MalformedInput:
    return MalformedInput(
        "The request is not in canonical form: it was altered after export; export it again."
    )


@dataclass(frozen=True, slots=True)
class RoleSignatures:
    role: str
    digest: str  # sha256 hex of the signed bytes
    signatures: tuple[Signature, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "role": self.role,
            "signatures": [s.to_dict() for s in self.signatures],
        }


@dataclass(frozen=True, slots=True)
class SignaturesDocument:
    """Signatures made offline for one request."""

    request_id: str
    request_digest: str
    gun: str
    roles: tuple[RoleSignatures, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "gun": self.gun,
            "media_type": SIGNATURES_MEDIA_TYPE,
            "request_digest": self.request_digest,
            "request_id": self.request_id,
            "roles": [r.to_dict() for r in self.roles],
        }

    def to_bytes(self) -> bytes:
        return encode_canonical(self.to_dict())

    @property
    def digest(self) -> str:
        return sha256_hex(self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> SignaturesDocument:
        f = Fields(open_document(data, SIGNATURES_MEDIA_TYPE), "The signatures document")
        f.text("media_type")
        gun = check_gun(f.text("gun"), "the signatures document")
        roles = []
        for raw in f.array("roles"):
            r = Fields(raw, "The signatures document's role")
            sigs = tuple(
                Signature.from_dict(s, "The signatures document's signature")
                for s in r.array("signatures")
            )
            roles.append(RoleSignatures(_role(r.text("role"), r), r.hex("digest", 64), sigs))
            r.done()
        document = cls(f.hex("request_id", 32), f.hex("request_digest", 64), gun, tuple(roles))
        f.done()
        return document


def combine(
    request: Request, documents: Iterable[SignaturesDocument]
) -> dict[str, tuple[Signature, ...]]:
    """Merge signatures documents for `request` (idempotent, any order); refuse foreign ones."""
    merged: dict[str, dict[str, Signature]] = {}
    digest = request.digest  # a canonical encoding of the whole request: once, not per document
    for doc in documents:
        if doc.request_id != request.id or doc.request_digest != digest:
            raise VerificationFailed(
                f"A signatures document is for request {doc.request_id[:12]}, not {request.id[:12]}; "
                "pass the signatures made for this request."
            )
        for rs in doc.roles:
            exp = request.expectation(rs.role)
            if exp is None or exp.digest != rs.digest:
                raise VerificationFailed(
                    f"A signatures document signs {rs.role} bytes this request did not ask for."
                )
            slot = merged.setdefault(rs.role, {})
            for sig in rs.signatures:
                slot.setdefault(sig.keyid, sig)
    return {role: tuple(sigs[k] for k in sorted(sigs)) for role, sigs in merged.items()}


# ---------------------------------------------------------------------------
# the public keys document (offline -> online, once per key ceremony)

MAX_DOCUMENT_SIZE = 1 << 20
_ROLE = re.compile(r"^[A-Za-z0-9][-A-Za-z0-9_./]{0,254}$")
_WHAT = "public keys document"


def is_role_alias(role: str) -> bool:
    """A role name as key files and this document carry it (root, targets/releases, docker's signer names)."""
    return bool(_ROLE.match(role))


@dataclass(frozen=True, slots=True)
class PublicKeyEntry:
    """One key: the role it is meant for, its canonical id, and the metadata key."""

    role: str
    canonical_id: str
    key: Key

    def __post_init__(self) -> None:
        if not is_role_alias(self.role):
            raise MalformedInput(f"The {_WHAT} has a key entry with an invalid role.")
        if not re.fullmatch(r"[0-9a-f]{64}", self.canonical_id):
            raise MalformedInput(f"The {_WHAT} has a key entry with a malformed canonical id.")

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "canonical_id": self.canonical_id, "key": self.key.to_dict()}

    @classmethod
    def from_dict(cls, data: Any, gun: str, where: str) -> PublicKeyEntry:
        f = Fields(data, f"The {_WHAT}'s key entry")
        role, canonical_id = f.text("role"), f.text("canonical_id")
        entry = cls(role, canonical_id, Key.from_dict(f.raw("key"), where))
        f.done()
        key = entry.key
        try:
            key_id = canonical_key_id(key)
        except MalformedInput as exc:  # a certificate that does not parse: say whose it is
            why = exc.message.rstrip(".")
            raise MalformedInput(
                f"The {_WHAT}'s key {canonical_id[:12]} is unreadable: {why[:1].lower()}{why[1:]}."
            ) from exc
        if key_id != canonical_id:
            raise MalformedInput(
                f"The {_WHAT} lists key {canonical_id[:12]} with a key whose id differs."
            )
        if role == "root":
            problem = check_root_certificate(key, gun, None)
            if problem:
                raise MalformedInput(
                    f"The {_WHAT}'s root key {canonical_id[:12]} is unusable: {problem}."
                )
        return entry


@dataclass(frozen=True, slots=True)
class PublicKeysDocument:
    """Public keys for one GUN, in the order they were exported."""

    gun: str
    keys: tuple[PublicKeyEntry, ...]

    def __post_init__(self) -> None:
        ids = [e.canonical_id for e in self.keys]
        if len(set(ids)) != len(ids):
            raise MalformedInput(f"The {_WHAT} lists a key twice.")

    def for_role(self, role: str) -> tuple[PublicKeyEntry, ...]:
        return tuple(e for e in self.keys if e.role == role)

    def to_dict(self) -> dict[str, Any]:
        return {
            "media_type": PUBLIC_KEYS_MEDIA_TYPE,
            "gun": self.gun,
            "keys": [e.to_dict() for e in self.keys],
        }

    def to_bytes(self) -> bytes:
        """Indented JSON, so an operator can read what leaves the machine."""
        return (json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n").encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> PublicKeysDocument:
        """Parse strictly; MalformedInput with one sentence on any problem."""
        if len(data) > MAX_DOCUMENT_SIZE:
            raise MalformedInput(f"The {_WHAT} is too large to be one.")
        f = Fields(open_document(data, PUBLIC_KEYS_MEDIA_TYPE), f"The {_WHAT}")
        f.text("media_type")
        gun = check_gun(f.text("gun"), f"the {_WHAT}")
        entries = f.array("keys")
        f.done()
        return cls(
            gun,
            tuple(
                PublicKeyEntry.from_dict(e, gun, f"{_WHAT} key {i}") for i, e in enumerate(entries)
            ),
        )


# ---------------------------------------------------------------------------
# the liveness proof (offline -> online, before a ceremony)

MAX_LIVENESS_PROOFS = 64


@dataclass(frozen=True, slots=True)
class LivenessProof:
    """Signatures by offline keys over one liveness challenge (`ceremony.core.liveness`).

    Each signature's `keyid` is the key's canonical id (the id of its key file);
    the online half finds the key among those the published metadata lists.
    """

    when: str  # the offline clock, UTC, to the second
    nonce: str  # lowercase hex from the online side; "" for none
    signatures: tuple[Signature, ...]

    @property
    def challenge(self) -> bytes:
        return challenge(self.when, bytes.fromhex(self.nonce))

    def to_dict(self) -> dict[str, Any]:
        return {
            "media_type": LIVENESS_MEDIA_TYPE,
            "nonce": self.nonce,
            "signatures": [s.to_dict() for s in self.signatures],
            "when": self.when,
        }

    def to_bytes(self) -> bytes:
        return encode_canonical(self.to_dict())

    @classmethod
    def from_bytes(cls, data: bytes) -> LivenessProof:
        """Parse strictly; MalformedInput with one sentence on any problem."""
        if len(data) > MAX_DOCUMENT_SIZE:
            raise MalformedInput("The liveness proof is too large to be one.")
        f = Fields(open_document(data, LIVENESS_MEDIA_TYPE), "The liveness proof")
        f.text("media_type")
        when = check_time(f.text("when"), "The liveness proof")
        nonce = f.text("nonce")
        check_nonce(nonce, "The liveness proof's nonce")
        if nonce != nonce.lower():
            raise MalformedInput("The liveness proof's nonce must be lowercase hex.")
        raw = f.array("signatures")
        f.done()
        if not raw or len(raw) > MAX_LIVENESS_PROOFS:
            raise MalformedInput(
                f"The liveness proof must hold between 1 and {MAX_LIVENESS_PROOFS} signatures."
            )
        signatures = tuple(Signature.from_dict(s, "The liveness proof's signature") for s in raw)
        if len({s.keyid for s in signatures}) != len(signatures):
            raise MalformedInput("The liveness proof holds two signatures by one key.")
        return cls(when, nonce, signatures)
