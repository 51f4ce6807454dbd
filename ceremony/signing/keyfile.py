"""Notary's private key files, read and written byte-compatibly (notary-formats.md §4.2).

A file is one PEM block `ENCRYPTED PRIVATE KEY` with sorted headers (`gun:` only
for targets/snapshot/timestamp keys, `role:` always), holding PKCS#8 encrypted
with PBES2: PBKDF2-HMAC-SHA1 (no `prf` field; exactly an 8-byte salt and 2048
iterations) and AES-256-CBC. The inner PKCS#8 has Notary's quirks: EC keys carry
version 1, RSA's AlgorithmIdentifier has no NULL, Ed25519 uses OID
1.3.6.1.4.1.11591.15.1 with 96 raw bytes (public ‖ seed ‖ public).

`cryptography` refuses the version-1 EC form, so the structures are decoded with
asn1crypto and keys are rebuilt from their numbers. Also read: unencrypted
`PRIVATE KEY` (Notary's or standard PKCS#8), and the legacy `EC PRIVATE KEY`,
`RSA PRIVATE KEY` and `ED25519 PRIVATE KEY` blocks.

Pure: bytes in, bytes or keys out. Passphrases never appear in any message.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any, ClassVar

from asn1crypto import algos, core, keys
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from ceremony.core.errors import InputRejected, MalformedInput, UsageError
from ceremony.core.keys import PemBlock, pem_blocks, pem_encode
from ceremony.signing.private import PrivateKey

ENCRYPTED_TYPE = "ENCRYPTED PRIVATE KEY"
PLAIN_TYPE = "PRIVATE KEY"
LEGACY_TYPES = ("EC PRIVATE KEY", "RSA PRIVATE KEY", "ED25519 PRIVATE KEY")
GUN_ROLES = frozenset({"targets", "snapshot", "timestamp"})

PBKDF2_ITERATIONS = 2048
SALT_SIZE = 8
IV_SIZE = 16
MAX_ITERATIONS = 10_000_000  # a hostile file must not make us spin for hours

OID_EC = "1.2.840.10045.2.1"
OID_RSA = "1.2.840.113549.1.1.1"
OID_ED25519_NOTARY = "1.3.6.1.4.1.11591.15.1"
OID_ED25519 = "1.3.101.112"

_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "secp256r1": ec.SECP256R1,
    "secp384r1": ec.SECP384R1,
    "secp521r1": ec.SECP521R1,
}
_CURVE_NAMES = {cls().name: name for name, cls in _CURVES.items()}
_PRFS: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_AES_CBC_KEY_SIZES = {"aes128_cbc": 16, "aes192_cbc": 24, "aes256_cbc": 32}
_LABEL = re.compile(r"^[A-Za-z0-9_./-]{1,100}$")
_HEADER_VALUE = re.compile(r"^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$")
# What asn1crypto raises on bytes that do not have the expected structure.
_ASN1_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError)


class WrongPassphrase(InputRejected):
    """The passphrase does not open the key file."""


class _AlgorithmIdentifier(core.Sequence):  # type: ignore[misc]
    """AlgorithmIdentifier with optional parameters: Notary omits RSA's NULL."""

    _fields: ClassVar[list[tuple[Any, ...]]] = [
        ("algorithm", core.ObjectIdentifier),
        ("parameters", core.Any, {"optional": True}),
    ]


class _PrivateKeyInfo(core.Sequence):  # type: ignore[misc]
    """PKCS#8 / RFC 5958 OneAsymmetricKey, loose enough for Notary's quirks."""

    _fields: ClassVar[list[tuple[Any, ...]]] = [
        ("version", core.Integer),
        ("private_key_algorithm", _AlgorithmIdentifier),
        ("private_key", core.OctetString),
        ("attributes", core.Any, {"implicit": 0, "optional": True}),
        ("public_key", core.Any, {"implicit": 1, "optional": True}),
    ]


@dataclass(frozen=True, slots=True)
class KeyFileHeaders:
    """What a key file says about itself without its passphrase."""

    role: str | None
    gun: str | None
    encrypted: bool

    @property
    def label(self) -> str:
        """The role, safe to print, for messages ("private" if absent or odd)."""
        return _label(self.role)


def _label(role: str | None) -> str:
    return role if role and _LABEL.match(role) else "private"


# ---------------------------------------------------------------------------
# reading


def _single_block(data: bytes) -> PemBlock:
    blocks = pem_blocks(data, what="key file")
    if not blocks:
        raise MalformedInput("The key file is not a PEM private key file.")
    if len(blocks) > 1:
        raise MalformedInput(f"The key file holds {len(blocks)} PEM blocks; give one key per file.")
    block = blocks[0]
    if block.type not in (ENCRYPTED_TYPE, PLAIN_TYPE, *LEGACY_TYPES):
        raise MalformedInput(f"The key file holds a {block.type} block, not a private key.")
    return block


def read_key_file_headers(data: bytes) -> KeyFileHeaders:
    """Role, GUN and whether a passphrase is needed; no passphrase required."""
    block = _single_block(data)
    encrypted = block.type == ENCRYPTED_TYPE or (
        block.type in LEGACY_TYPES and block.header("DEK-Info") is not None
    )
    return KeyFileHeaders(block.header("role") or None, block.header("gun") or None, encrypted)


def decode_key_file(data: bytes, passphrase: str | None) -> PrivateKey:
    """The private key in a Notary (or legacy) key file.

    Raises WrongPassphrase if the passphrase does not open it, MalformedInput if
    the file is not a key file, InputRejected if the key cannot sign for Notary.
    """
    block = _single_block(data)
    label = _label(block.header("role"))
    if block.type == ENCRYPTED_TYPE:
        if not passphrase:
            raise WrongPassphrase(f"The {label} key file is encrypted; its passphrase is needed.")
        return _from_pkcs8(_decrypt_pbes2(block.body, passphrase, label), label, encrypted=True)
    if block.type == PLAIN_TYPE:
        return _from_pkcs8(block.body, label, encrypted=False)
    if block.header("DEK-Info") is not None:
        return _legacy_encrypted(block, passphrase, label)
    try:
        if block.type == "EC PRIVATE KEY":
            return PrivateKey(_ec_from_sec1(block.body, None))
        if block.type == "RSA PRIVATE KEY":
            return PrivateKey(_rsa_from_pkcs1(block.body))
        return PrivateKey(_ed25519_from_notary(block.body))
    except _ASN1_ERRORS:  # no chained cause: it could quote private key bytes
        raise MalformedInput(f"The {label} key file's {block.type} block cannot be read.") from None


def _wrong(label: str) -> WrongPassphrase:
    return WrongPassphrase(
        f"The passphrase for the {label} key is wrong; check it and try again "
        "(a damaged key file looks the same)."
    )


def _decrypt_pbes2(body: bytes, passphrase: str, label: str) -> bytes:
    """Decrypt EncryptedPrivateKeyInfo (PBES2, PBKDF2, AES-CBC) to PKCS#8 DER."""
    try:
        info = keys.EncryptedPrivateKeyInfo.load(body, strict=True)
        algorithm = info["encryption_algorithm"]
        if algorithm["algorithm"].native != "pbes2" or algorithm.kdf != "pbkdf2":
            raise MalformedInput(
                f"The {label} key file uses an encryption scheme Notary cannot read (only PBES2 with PBKDF2)."
            )
        params = algorithm["parameters"]
        kdf_params = params["key_derivation_func"]["parameters"]
        salt = algorithm.kdf_salt
        iterations = algorithm.kdf_iterations
        prf = algorithm.kdf_hmac
        requested_length = kdf_params["key_length"].native
        cipher_name = params["encryption_scheme"]["algorithm"].native
        iv = algorithm.encryption_iv
        encrypted = info["encrypted_data"].native
    except _ASN1_ERRORS as exc:
        raise MalformedInput(f"The {label} key file's encrypted key cannot be read.") from exc
    key_size = _AES_CBC_KEY_SIZES.get(cipher_name)
    if key_size is None or prf not in _PRFS:
        raise MalformedInput(
            f"The {label} key file uses a cipher or hash Notary cannot read (use AES-256-CBC)."
        )
    if requested_length not in (None, key_size):
        raise MalformedInput(
            f"The {label} key file asks for a key length that does not fit its cipher."
        )
    if not isinstance(iterations, int) or not 1 <= iterations <= MAX_ITERATIONS:
        raise MalformedInput(
            f"The {label} key file asks for an unreasonable PBKDF2 iteration count."
        )
    if not isinstance(iv, bytes) or len(iv) != IV_SIZE:
        raise MalformedInput(f"The {label} key file has an IV of the wrong size.")
    if not isinstance(encrypted, bytes) or not encrypted or len(encrypted) % 16:
        raise MalformedInput(f"The {label} key file's encrypted key has an impossible length.")
    kdf = PBKDF2HMAC(algorithm=_PRFS[prf](), length=key_size, salt=salt, iterations=iterations)
    decryptor = Cipher(
        algorithms.AES(kdf.derive(passphrase.encode("utf-8"))), modes.CBC(iv)
    ).decryptor()
    padded = decryptor.update(encrypted) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise _wrong(label) from None


def _from_pkcs8(der: bytes, label: str, *, encrypted: bool) -> PrivateKey:
    """A key from PKCS#8 as Notary writes it (or as the standard says)."""
    try:
        info = _PrivateKeyInfo.load(der, strict=True)
        version = info["version"].native
        algorithm = info["private_key_algorithm"]
        oid = algorithm["algorithm"].dotted
        params = algorithm["parameters"]
        raw = info["private_key"].native
    except _ASN1_ERRORS:
        if encrypted:  # garbage after decryption: almost surely the passphrase
            raise _wrong(label) from None
        raise MalformedInput(f"The {label} key file does not hold a PKCS#8 private key.") from None
    if version not in (0, 1):
        raise MalformedInput(f"The {label} key file's PKCS#8 version {version} is unknown.")
    try:
        if oid == OID_EC:
            curve = None
            if not isinstance(params, core.Void):
                domain = params.parse(keys.ECDomainParameters)
                if domain.name != "named":
                    raise MalformedInput(
                        f"The {label} key uses explicit curve parameters; Notary needs a named curve."
                    )
                curve = domain.chosen.native
            return PrivateKey(_ec_from_sec1(raw, curve))
        if oid == OID_RSA:
            return PrivateKey(_rsa_from_pkcs1(raw))
        if oid == OID_ED25519_NOTARY:
            return PrivateKey(_ed25519_from_notary(raw))
        if oid == OID_ED25519:
            seed = core.OctetString.load(raw, strict=True).native
            return PrivateKey(ed25519.Ed25519PrivateKey.from_private_bytes(seed))
    except _ASN1_ERRORS:  # no chained cause: it could quote private key bytes
        raise MalformedInput(f"The {label} key file's key cannot be read.") from None
    raise MalformedInput(f"The {label} key file holds a key type Notary does not use ({oid}).")


def _ec_from_sec1(der: bytes, curve: str | None) -> ec.EllipticCurvePrivateKey:
    sec1 = keys.ECPrivateKey.load(der, strict=True)
    if sec1["version"].native != "ecPrivkeyVer1":
        raise MalformedInput("The EC key has an unknown SEC1 version.")
    inner = sec1["parameters"]
    if not isinstance(inner, core.Void):
        if inner.name != "named":
            raise MalformedInput(
                "The EC key uses explicit curve parameters; Notary needs a named curve."
            )
        if curve is not None and inner.chosen.native != curve:
            raise MalformedInput("The EC key names two different curves.")
        curve = inner.chosen.native
    if curve is None:
        raise MalformedInput("The EC key does not say which curve it is on.")
    if curve not in _CURVES:
        raise InputRejected(f"The EC key is on curve {curve}, which Notary does not sign with.")
    native = ec.derive_private_key(sec1["private_key"].native, _CURVES[curve]())
    stated = sec1["public_key"]
    if not isinstance(stated, core.Void):
        point = native.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        compressed = native.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
        )
        if stated.native not in (point, compressed):
            raise MalformedInput("The EC key's public key does not match its private key.")
    return native


def _rsa_from_pkcs1(der: bytes) -> rsa.RSAPrivateKey:
    pkcs1 = keys.RSAPrivateKey.load(der, strict=True)
    if pkcs1["version"].native != "two-prime":
        raise MalformedInput("The RSA key is a multi-prime key, which Notary cannot use.")
    numbers = rsa.RSAPrivateNumbers(
        p=pkcs1["prime1"].native,
        q=pkcs1["prime2"].native,
        d=pkcs1["private_exponent"].native,
        dmp1=pkcs1["exponent1"].native,
        dmq1=pkcs1["exponent2"].native,
        iqmp=pkcs1["coefficient"].native,
        public_numbers=rsa.RSAPublicNumbers(
            e=pkcs1["public_exponent"].native, n=pkcs1["modulus"].native
        ),
    )
    return numbers.private_key()


def _ed25519_from_notary(raw: bytes) -> ed25519.Ed25519PrivateKey:
    """Notary's 96 bytes: public(32) ‖ Go private key (seed(32) ‖ public(32))."""
    if len(raw) != 96:
        raise MalformedInput("The Ed25519 key is not the 96 bytes Notary writes.")
    native = ed25519.Ed25519PrivateKey.from_private_bytes(raw[32:64])
    public = native.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    if raw[:32] != public or raw[64:] != public:
        raise MalformedInput("The Ed25519 key's public half does not match its seed.")
    return native


def _legacy_encrypted(block: PemBlock, passphrase: str | None, label: str) -> PrivateKey:
    """An old `Proc-Type: 4,ENCRYPTED` EC/RSA block (OpenSSL's legacy encryption)."""
    if block.type == "ED25519 PRIVATE KEY":
        raise MalformedInput(
            "Legacy-encrypted Ed25519 key files are not supported; export the key again."
        )
    if not passphrase:
        raise WrongPassphrase(f"The {label} key file is encrypted; its passphrase is needed.")
    headers = {"DEK-Info": block.header("DEK-Info") or "", "Proc-Type": "4,ENCRYPTED"}
    pem = pem_encode(block.type, block.body, headers)
    try:
        native = serialization.load_pem_private_key(pem, passphrase.encode("utf-8"))
    except UnsupportedAlgorithm:
        raise InputRejected(
            f"The {label} key file holds a key on a curve or of a type Notary does not sign with."
        ) from None
    except (ValueError, TypeError):
        raise _wrong(label) from None
    if not isinstance(native, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise MalformedInput(f"The {label} key file holds an unexpected key type.")
    return PrivateKey(native)


# ---------------------------------------------------------------------------
# writing


def private_key_info(private: PrivateKey) -> bytes:
    """Unencrypted PKCS#8 DER exactly as Notary's convertTUFKeyToPKCS8 writes it."""
    native = private.native
    algorithm: dict[str, object]
    if isinstance(native, ec.EllipticCurvePrivateKey):
        curve = _CURVE_NAMES[native.curve.name]
        public = native.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        sec1 = keys.ECPrivateKey(
            {
                "version": "ecPrivkeyVer1",
                "private_key": native.private_numbers().private_value,
                "parameters": keys.ECDomainParameters(name="named", value=curve),
                "public_key": public,
            }
        )
        version = 1
        algorithm = {"algorithm": OID_EC, "parameters": keys.NamedCurve(curve)}
        raw = sec1.dump()
    elif isinstance(native, rsa.RSAPrivateKey):
        numbers = native.private_numbers()
        pkcs1 = keys.RSAPrivateKey(
            {
                "version": "two-prime",
                "modulus": numbers.public_numbers.n,
                "public_exponent": numbers.public_numbers.e,
                "private_exponent": numbers.d,
                "prime1": numbers.p,
                "prime2": numbers.q,
                "exponent1": numbers.dmp1,
                "exponent2": numbers.dmq1,
                "coefficient": numbers.iqmp,
            }
        )
        version = 0
        algorithm = {"algorithm": OID_RSA}
        raw = pkcs1.dump()
    else:
        seed = native.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        public = native.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        version = 0
        algorithm = {"algorithm": OID_ED25519_NOTARY}
        raw = public + seed + public
    info = _PrivateKeyInfo(
        {"version": version, "private_key_algorithm": algorithm, "private_key": raw}
    )
    return bytes(info.dump())


def _encrypt_pbes2(der: bytes, passphrase: str) -> bytes:
    """EncryptedPrivateKeyInfo exactly as Notary's convertTUFKeyToPKCS8Encrypted writes it."""
    salt = secrets.token_bytes(SALT_SIZE)
    iv = secrets.token_bytes(IV_SIZE)
    kdf = PBKDF2HMAC(algorithm=hashes.SHA1(), length=32, salt=salt, iterations=PBKDF2_ITERATIONS)  # noqa: S303 (Notary's format)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(der) + padder.finalize()
    encryptor = Cipher(
        algorithms.AES(kdf.derive(passphrase.encode("utf-8"))), modes.CBC(iv)
    ).encryptor()
    encrypted = encryptor.update(padded) + encryptor.finalize()
    algorithm = algos.EncryptionAlgorithm(
        {
            "algorithm": "pbes2",
            "parameters": {
                "key_derivation_func": {
                    "algorithm": "pbkdf2",
                    "parameters": {
                        "salt": algos.Pbkdf2Salt(name="specified", value=salt),
                        "iteration_count": PBKDF2_ITERATIONS,
                    },
                },
                "encryption_scheme": {"algorithm": "aes256_cbc", "parameters": iv},
            },
        }
    )
    info = keys.EncryptedPrivateKeyInfo(
        {"encryption_algorithm": algorithm, "encrypted_data": encrypted}
    )
    return bytes(info.dump())


def key_file_headers(role: str, gun: str | None) -> dict[str, str]:
    """Notary's headers: `role` always, `gun` only for targets/snapshot/timestamp."""
    if not _HEADER_VALUE.match(role):
        raise UsageError("A key's role must be printable text without line breaks.")
    headers = {"role": role}
    if gun and role in GUN_ROLES:
        if not _HEADER_VALUE.match(gun):
            raise UsageError("A GUN must be printable text without line breaks.")
        headers["gun"] = gun
    return headers


def encode_key_file(
    private: PrivateKey, *, role: str, gun: str | None, passphrase: str | None
) -> bytes:
    """A key file Notary reads: encrypted with `passphrase`, or plain `PRIVATE KEY` if None."""
    headers = key_file_headers(role, gun)
    der = private_key_info(private)
    if passphrase is None:
        return pem_encode(PLAIN_TYPE, der, headers)
    if not passphrase:
        raise UsageError(
            "An empty passphrase would leave the key unprotected; choose a passphrase."
        )
    return pem_encode(ENCRYPTED_TYPE, _encrypt_pbes2(der, passphrase), headers)
