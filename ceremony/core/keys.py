"""Keys, key ids and signatures exactly as Notary 0.7 makes and checks them.

Methods (notary-formats.md §3.3): `ecdsa` is raw r‖s over SHA-256 (each half
padded to the curve's octet length), `rsapss` is PSS/SHA-256/MGF1-SHA-256 with a
32-byte salt, `rsapkcs1v15` is verify-only, `eddsa` is plain Ed25519. For
`*-x509` keys the leaf certificate's public key is the one that signs.

Two ids per x509 key (§3.2): metadata and signatures use the TUF id of the
certificate key; private key files use the *canonical* id, the TUF id of the
equivalent bare key.

This module does no I/O and never reads the clock: `now` is an argument.
Primitives come from `cryptography`; nothing here parses DER by hand.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils
from cryptography.x509.oid import NameOID

from ceremony.core.errors import InputRejected, MalformedInput, printable
from ceremony.core.metadata import Key, Signature, b64encode

MIN_RSA_BITS = 2048
PSS_SALT_LENGTH = 32
ED25519_KEY_SIZE = 32
ED25519_SIG_SIZE = 64
ROOT_CERT_YEARS = 10
SUPPORTED_CURVES: tuple[type[ec.EllipticCurve], ...] = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)

NativePrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
NativePublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey

# Errors a malformed key, certificate or signature can raise while we look at it.
_BAD_INPUT = (
    ValueError,
    TypeError,
    OverflowError,
    InvalidSignature,
    UnsupportedAlgorithm,
    MalformedInput,
)


# ---------------------------------------------------------------------------
# PEM (text framing only; the DER inside goes to cryptography / asn1crypto)

_BEGIN = b"-----BEGIN "
_PEM_BODY = re.compile(r"[A-Za-z0-9+/= \t\r]*")
_TYPE_LINE = re.compile(rb"-----BEGIN ([^\r\n]*)-----[ \t\r]*\n")


@dataclass(frozen=True, slots=True)
class PemBlock:
    """One PEM block: type, headers (in file order) and the decoded body."""

    type: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        """The last value of a header, as Go's map keeps it."""
        found = [v for k, v in self.headers if k == name]
        return found[-1] if found else None


def pem_blocks(data: bytes, *, what: str = "file") -> list[PemBlock]:
    """Every PEM block in `data`, found exactly where Go's `pem.Decode` finds them.

    Go accepts a BEGIN line only at the start of the data or of a line, and
    skips a block it cannot read. Anything on which a lenient reader and Go
    could disagree is refused instead: a BEGIN that does not start a line, a
    block without its END line (at the start of a line, followed only by
    spaces), a body that is not base64. Text between blocks is ignored, as Go
    ignores it.
    """
    for start in _occurrences(data, b"-----BEGIN"):
        if start and data[start - 1 : start] != b"\n":
            raise MalformedInput(
                f"The {what} has a PEM BEGIN line that does not start a line; refusing it."
            )
    blocks: list[PemBlock] = []
    pos = 0
    while (start := data.find(_BEGIN, pos)) >= 0:
        line = _TYPE_LINE.match(data, start)
        if line is None:
            raise MalformedInput(f"The {what} has a malformed PEM BEGIN line.")
        kind_bytes = line.group(1)
        end_marker = b"\n-----END " + kind_bytes + b"-----"
        end = data.find(end_marker, line.end() - 1)
        if end < 0:
            raise MalformedInput(
                f"The {what} is truncated: its {kind_bytes[:40]!r} block has no END line."
            )
        after = data.find(b"\n", end + len(end_marker))
        tail = data[end + len(end_marker) : after if after >= 0 else len(data)]
        if tail.strip(b" \t\r"):
            raise MalformedInput(f"The {what} has text after a PEM END line; refusing it.")
        try:
            kind = kind_bytes.decode("ascii")
            text = data[line.end() : end + 1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise MalformedInput(f"The {what} holds non-ASCII bytes in a PEM block.") from exc
        # Lines end at "\n" only, trimmed as Go's getLine trims them; the body may hold only
        # base64, spaces, tabs and carriage returns, which is all Go skips.
        lines = [line.rstrip(" \t\r") for line in text.split("\n")]
        headers: list[tuple[str, str]] = []
        while lines and ":" in lines[0]:
            name, _, value = lines.pop(0).partition(":")
            headers.append((name.strip(" \t"), value.strip(" \t")))
        joined = "".join(lines)
        if _PEM_BODY.fullmatch(joined) is None:
            raise MalformedInput(
                f"The {what} has a {kind} block that is not valid base64 as Go reads it "
                "(only base64, spaces and tabs may stand between its lines)."
            )
        compact = joined.replace(" ", "").replace("\t", "").replace("\r", "")
        try:
            body = base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MalformedInput(
                f"The {what} has a {kind} block that is not valid base64."
            ) from exc
        blocks.append(PemBlock(kind, tuple(headers), body))
        pos = end + len(end_marker)
    return blocks


def _occurrences(data: bytes, needle: bytes) -> list[int]:
    found, pos = [], 0
    while (at := data.find(needle, pos)) >= 0:
        found.append(at)
        pos = at + 1
    return found


def pem_encode(kind: str, body: bytes, headers: Mapping[str, str] | None = None) -> bytes:
    """A PEM block byte-identical to Go's `pem.EncodeToMemory` (Proc-Type first, then sorted)."""
    out = [f"-----BEGIN {kind}-----\n"]
    if headers:
        order = sorted(headers, key=lambda name: (name != "Proc-Type", name))
        out.extend(f"{name}: {headers[name]}\n" for name in order)
        out.append("\n")
    text = base64.b64encode(body).decode("ascii")
    out.extend(text[i : i + 64] + "\n" for i in range(0, len(text), 64))
    out.append(f"-----END {kind}-----\n")
    return "".join(out).encode("ascii")


# ---------------------------------------------------------------------------
# public keys and certificates


def _certificates(pem: bytes) -> list[x509.Certificate]:
    """A certificate bundle as Notary's LoadCertBundleFromPEM reads it."""
    blocks = pem_blocks(pem, what="certificate bundle")
    if not blocks:
        raise MalformedInput("The certificate bundle holds no PEM block.")
    certs: list[x509.Certificate] = []
    for block in blocks:
        if block.type != "CERTIFICATE":
            raise MalformedInput(f"The certificate bundle holds a {block.type} block.")
        try:
            cert = x509.load_der_x509_certificate(block.body)
            # Parsed lazily: a malformed field fails here, not later in a caller. Go and
            # Notary allow a CN longer than X.509's 64 (a long GUN): no warning for it.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                _ = (cert.extensions, cert.subject, cert.issuer)
                _ = (cert.not_valid_before_utc, cert.not_valid_after_utc)
            certs.append(cert)
        except (ValueError, TypeError, x509.DuplicateExtension, x509.InvalidVersion) as exc:
            raise MalformedInput("The certificate bundle holds an unreadable certificate.") from exc
    return certs


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _leaf(key: Key) -> x509.Certificate:
    """The first certificate of an x509 key, which is the one Notary uses."""
    return _certificates(key.public_bytes)[0]


def public_key_of(key: Key) -> NativePublicKey:
    """The `cryptography` public key behind a metadata key (the leaf's, for x509).

    Raises MalformedInput if the key does not hold what its type says.
    """
    try:
        if key.keytype == "ed25519":
            raw = key.public_bytes
            if len(raw) != ED25519_KEY_SIZE:
                raise MalformedInput("An ed25519 key must be 32 bytes.")
            return ed25519.Ed25519PublicKey.from_public_bytes(raw)
        native = (
            _leaf(key).public_key()
            if key.is_x509
            else serialization.load_der_public_key(key.public_bytes)
        )
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise MalformedInput(f"The {key.keytype} key does not hold a readable public key.") from exc
    family = key.keytype.removesuffix("-x509")
    if family == "ecdsa" and isinstance(native, ec.EllipticCurvePublicKey):
        return native
    if family == "rsa" and isinstance(native, rsa.RSAPublicKey):
        return native
    raise MalformedInput(f"The {key.keytype} key holds a different kind of public key.")


def _spki(native: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> bytes:
    return native.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def bare_key(key: Key) -> Key:
    """The plain `ecdsa`/`rsa` key equivalent to an x509 key (itself otherwise)."""
    if not key.is_x509:
        return key
    native = public_key_of(key)
    if isinstance(native, ed25519.Ed25519PublicKey):  # public_key_of already refuses this
        raise MalformedInput(f"The {key.keytype} key holds an Ed25519 key.")
    return Key(key.keytype.removesuffix("-x509"), b64encode(_spki(native)))


def canonical_key_id(key: Key) -> str:
    """Notary's `CanonicalKeyID`: the id private key files are named by."""
    return bare_key(key).key_id


# ---------------------------------------------------------------------------
# signature verification


def verify_signature(key: Key, signature: Signature, message: bytes) -> bool:
    """True only if `signature` is a valid Notary signature by `key` over `message`.

    The caller chooses `key` by `signature.keyid`; like Notary's verifiers, this
    checks the method, the key and the bytes. Anything odd is simply False.
    """
    try:
        native = public_key_of(key)
        return _verify(native, signature.method, signature.sig, message)
    except _BAD_INPUT:
        return False


def _verify(native: NativePublicKey, method: str, sig: bytes, message: bytes) -> bool:
    if method == "ecdsa" and isinstance(native, ec.EllipticCurvePublicKey):
        octets = (native.curve.key_size + 7) // 8
        if len(sig) != 2 * octets:
            return False
        r = int.from_bytes(sig[:octets], "big")
        s = int.from_bytes(sig[octets:], "big")
        digest = hashlib.sha256(message).digest()
        native.verify(
            utils.encode_dss_signature(r, s), digest, ec.ECDSA(utils.Prehashed(hashes.SHA256()))
        )
        return True
    if method in ("rsapss", "rsapkcs1v15") and isinstance(native, rsa.RSAPublicKey):
        if native.key_size < MIN_RSA_BITS or len(sig) < MIN_RSA_BITS // 8:
            return False
        pad: padding.AsymmetricPadding = (
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=PSS_SALT_LENGTH)
            if method == "rsapss"
            else padding.PKCS1v15()
        )
        native.verify(sig, message, pad, hashes.SHA256())
        return True
    if method == "eddsa" and isinstance(native, ed25519.Ed25519PublicKey):
        if len(sig) != ED25519_SIG_SIZE:
            return False
        native.verify(sig, message)
        return True
    return False


# ---------------------------------------------------------------------------
# root certificates (checks; making them is `ceremony.signing.certificates`)


def utc_seconds(now: datetime) -> datetime:
    """`now` in UTC with whole seconds, as certificates hold it; it must carry a zone."""
    if now.tzinfo is None:
        raise ValueError("`now` must be timezone-aware")
    return now.astimezone(UTC).replace(microsecond=0)


def leaf_certificate(key: Key) -> x509.Certificate:
    """The first certificate of an x509 key, which is the one Notary uses."""
    return _leaf(key)


def _common_name(cert: x509.Certificate) -> str:
    """The subject CN; with several, the last one wins (as in Go's pkix.Name)."""
    with warnings.catch_warnings():  # Go and Notary allow a CN longer than X.509's 64
        warnings.simplefilter("ignore", UserWarning)
        values = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not values:
        return ""
    value = values[-1].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def cn_matches_gun(common_name: str, gun: str) -> bool:
    """Notary's MatchCNToGun: equal, or `prefix*` with a non-empty prefix of the GUN."""
    if common_name.endswith("*"):
        prefix = common_name.rstrip("*")
        return bool(prefix) and gun.startswith(prefix)
    return common_name == gun


def _certificate_problem(cert: x509.Certificate, now: datetime | None) -> str | None:
    """Notary's ValidateCertificate, as a reason phrase."""
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if start > end:
        return "its certificate's validity period ends before it begins"
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        algorithm = None
    if isinstance(algorithm, hashes.SHA1):
        return "its certificate is signed with SHA-1, which Notary refuses"
    try:
        native = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return "its certificate holds a public key Notary cannot use"
    if isinstance(native, rsa.RSAPublicKey) and native.key_size < MIN_RSA_BITS:
        return f"its certificate holds an RSA key of {native.key_size} bits (Notary needs {MIN_RSA_BITS})"
    if now is not None:
        when = utc_seconds(now)
        if end < when:
            return f"its certificate expired on {end.date().isoformat()}"
        if start > when + timedelta(days=1):
            return f"its certificate is not valid until {start.date().isoformat()}"
    return None


def check_root_certificate(key: Key, gun: str, now: datetime | None) -> str | None:
    """Notary's ValidateRoot rules for one root-role key: None if fine, else why not.

    Certificate signatures are not checked, as Notary does not check them either;
    with `now`, expiry is checked as for a newly downloaded root.
    """
    if not key.is_x509:
        return f"it is a bare {key.keytype} key, and Notary only accepts certificates for root"
    try:
        certs = _certificates(key.public_bytes)
    except MalformedInput:
        return "its certificate bundle does not parse"
    leaves = [c for c in certs if not _is_ca(c)]
    if len(leaves) != 1 or _is_ca(certs[0]):
        return "its certificate bundle must start with its one and only leaf certificate"
    leaf = certs[0]
    try:
        public_key_of(key)
    except MalformedInput:
        return f"its certificate does not hold the kind of key its type ({key.keytype}) says"
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        if not usage.digital_signature:
            return "its certificate's key usage does not allow signing"
    except x509.ExtensionNotFound:
        pass
    common_name = _common_name(leaf)
    if not cn_matches_gun(common_name, gun):
        return f"its certificate is for {common_name!r}, not {gun!r}"
    problem = _certificate_problem(leaf, now)
    if problem:
        return problem
    for intermediate in certs[1:]:
        # Notary drops failing intermediates and re-derives the key id, so the
        # signatures made for this key id would no longer match.
        if _certificate_problem(intermediate, now):
            return "its certificate bundle holds an intermediate Notary would drop"
    return None


# ---------------------------------------------------------------------------
# keys given by a user, and describing keys to the operator


def key_from_pem(data: bytes, now: datetime | None = None) -> Key:
    """A delegation key from a PEM file, as Notary's ParsePEMPublicKey reads it.

    The first PEM block counts. A CERTIFICATE becomes `ecdsa-x509`/`rsa-x509`
    (re-encoded, checked like Notary does, and for expiry when `now` is given);
    a PUBLIC KEY becomes `ecdsa`/`rsa`.
    """
    blocks = pem_blocks(data, what="public key file")
    if not blocks:
        raise MalformedInput(
            "The public key file holds no PEM block; give a certificate or public key."
        )
    block = blocks[0]
    if block.type == "CERTIFICATE":
        try:
            cert = x509.load_der_x509_certificate(block.body)
            native = cert.public_key()
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise MalformedInput("The certificate in the file cannot be read.") from exc
        if isinstance(native, ec.EllipticCurvePublicKey):
            keytype = "ecdsa-x509"
        elif isinstance(native, rsa.RSAPublicKey):
            keytype = "rsa-x509"
        else:
            raise MalformedInput(
                "The certificate holds a key type Notary cannot use; use ECDSA or RSA."
            )
        problem = _certificate_problem(cert, now)
        if problem:
            raise InputRejected(f"The certificate cannot be used: {problem}.")
        return Key(keytype, b64encode(cert.public_bytes(serialization.Encoding.PEM)))
    if block.type == "PUBLIC KEY":
        try:
            public = serialization.load_der_public_key(block.body)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise MalformedInput("The public key in the file cannot be read.") from exc
        if isinstance(public, ec.EllipticCurvePublicKey):
            return Key("ecdsa", b64encode(_spki(public)))
        if isinstance(public, rsa.RSAPublicKey):
            if public.key_size < MIN_RSA_BITS:
                raise InputRejected(
                    f"The RSA key is shorter than {MIN_RSA_BITS} bits; Notary refuses it."
                )
            return Key("rsa", b64encode(_spki(public)))
        raise MalformedInput(
            "Notary does not accept this public key type as a delegation key; use ECDSA or RSA."
        )
    raise MalformedInput(f"The file holds a {block.type} block; give a CERTIFICATE or PUBLIC KEY.")


def key_fingerprint(key: Key) -> str:
    """SHA-256 of the key's SubjectPublicKeyInfo (a certificate's leaf key), lowercase hex.

    A bare key and every certificate made for it share it, so one confirmation
    covers a root key that serves many repositories. MalformedInput if the key
    cannot be read.
    """
    native = public_key_of(key)
    spki = native.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()


@dataclass(frozen=True, slots=True)
class KeyDescription:
    """What an operator compares when a key is shown: its fingerprint, ids and certificate."""

    key_id: str
    canonical_id: str
    keytype: str
    fingerprint: str  # SHA-256 of the public key (SPKI), the same for every certificate of it
    common_name: str | None = None
    not_after: datetime | None = None
    certificate_sha256: str | None = None  # SHA-256 of the leaf certificate DER

    @property
    def wildcard_prefix(self) -> str | None:
        """The GUN prefix a wildcard certificate (`CN=prefix*`) covers, else None."""
        if self.common_name is not None and self.common_name.endswith("*"):
            return self.common_name.rstrip("*")
        return None

    def summary(self) -> str:
        """One line for review screens: the fingerprint first, then the key's one id (Notary's
        canonical key id, as `ceremony key list` and `notary key list` show it) and certificate."""
        text = f"{self.fingerprint} ({self.keytype}, id {self.canonical_id}"
        if self.common_name is not None and self.not_after is not None:
            text += (
                f", certificate CN={printable(self.common_name)!r}, expires "
                f"{self.not_after.date().isoformat()}, certificate SHA-256 {self.certificate_sha256}"
            )
        return text + ")"


def describe_key(key: Key) -> KeyDescription:
    """Fingerprint, ids and certificate details of a metadata key; MalformedInput if unreadable."""
    canonical = canonical_key_id(key)
    fingerprint = key_fingerprint(key)
    if not key.is_x509:
        return KeyDescription(key.key_id, canonical, key.keytype, fingerprint)
    leaf = _leaf(key)
    return KeyDescription(
        key.key_id,
        canonical,
        key.keytype,
        fingerprint,
        common_name=_common_name(leaf),
        not_after=leaf.not_valid_after_utc,
        certificate_sha256=leaf.fingerprint(hashes.SHA256()).hex(),
    )
