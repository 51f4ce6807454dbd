"""Private keys held on this machine, and Notary's signing methods over them.

Small safe recipes over `cryptography`'s primitives: `ecdsa` is raw r‖s over
SHA-256 (each half padded to the curve's octet length), `rsapss` is PSS with
SHA-256, MGF1-SHA-256 and a 32-byte salt, `eddsa` is plain Ed25519. `sign`
verifies every signature right after making it. Only the offline half imports
this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from ceremony.core.errors import InputRejected
from ceremony.core.keys import (
    MIN_RSA_BITS,
    PSS_SALT_LENGTH,
    SUPPORTED_CURVES,
)
from ceremony.core.metadata import Key, Signature, b64encode
from ceremony.signing.signer import sign_metadata

NativePrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def _spki(native: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> bytes:
    return native.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@dataclass(frozen=True, slots=True, eq=False)
class PrivateKey:
    """A private key Notary can use: EC (P-256, P-384, P-521), RSA ≥ 2048, or Ed25519."""

    native: NativePrivateKey = field(repr=False)

    def __post_init__(self) -> None:
        native = self.native
        if isinstance(native, ec.EllipticCurvePrivateKey):
            if not isinstance(native.curve, SUPPORTED_CURVES):
                raise InputRejected(
                    f"The EC curve {native.curve.name} is not one Notary signs with."
                )
        elif isinstance(native, rsa.RSAPrivateKey):
            if native.key_size < MIN_RSA_BITS:
                raise InputRejected(
                    f"The RSA key has {native.key_size} bits; Notary needs at least {MIN_RSA_BITS}."
                )
        elif not isinstance(native, ed25519.Ed25519PrivateKey):
            raise InputRejected("Only EC, RSA and Ed25519 private keys can sign for Notary.")

    @classmethod
    def generate_ecdsa(cls) -> PrivateKey:
        """A new P-256 key: the only kind Notary itself generates."""
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @property
    def algorithm(self) -> str:
        """The bare metadata key type: `ecdsa`, `rsa` or `ed25519`."""
        if isinstance(self.native, ec.EllipticCurvePrivateKey):
            return "ecdsa"
        if isinstance(self.native, rsa.RSAPrivateKey):
            return "rsa"
        return "ed25519"

    def public_key(self) -> Key:
        """The bare metadata key (`ecdsa`/`rsa` as DER SPKI, `ed25519` raw)."""
        native = self.native
        if isinstance(native, ed25519.Ed25519PrivateKey):
            raw = native.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
            return Key("ed25519", b64encode(raw))
        return Key(self.algorithm, b64encode(_spki(native.public_key())))

    @property
    def canonical_id(self) -> str:
        """The id the key file is named by (TUF id of the bare key)."""
        return self.public_key().key_id

    def sign_raw(self, message: bytes) -> tuple[str, bytes]:
        """(method, signature bytes) in Notary's encoding; nothing is checked here."""
        native = self.native
        if isinstance(native, ec.EllipticCurvePrivateKey):
            der = native.sign(message, ec.ECDSA(hashes.SHA256()))
            r, s = utils.decode_dss_signature(der)
            octets = (native.curve.key_size + 7) // 8
            return "ecdsa", r.to_bytes(octets, "big") + s.to_bytes(octets, "big")
        if isinstance(native, rsa.RSAPrivateKey):
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=PSS_SALT_LENGTH)
            return "rsapss", native.sign(message, pss, hashes.SHA256())
        return "eddsa", native.sign(message)

    def __repr__(self) -> str:
        return f"PrivateKey({self.algorithm}, {self.canonical_id[:12]})"


def sign(private: PrivateKey, key: Key, message: bytes) -> Signature:
    """A metadata signature by a key held in memory, verified as it is made."""
    return sign_metadata(private, key, message)
