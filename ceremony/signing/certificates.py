"""Root certificates made as Notary makes them, signed by a key file or a token."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from asn1crypto import algos as asn1_algos
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import utils

from ceremony.core.errors import InputRejected, VerificationFailed
from ceremony.core.keys import (
    PSS_SALT_LENGTH,
    ROOT_CERT_YEARS,
    canonical_key_id,
    leaf_certificate,
    pem_encode,
    utc_seconds,
)
from ceremony.core.metadata import Key, b64encode
from ceremony.signing.private import PrivateKey
from ceremony.signing.signer import RawSign


def make_root_certificate(
    private: PrivateKey, gun: str, now: datetime, years: int = ROOT_CERT_YEARS
) -> Key:
    """A self-signed root certificate as Notary makes it (§3.4), as an x509 metadata key."""
    return certify(private.public_key(), private.sign_raw, gun, now, years)


def _asn1_time(when: datetime) -> asn1_x509.Time:
    # RFC 5280: UTCTime through 2049, GeneralizedTime from 2050 on.
    kind = "utc_time" if when.year < 2050 else "general_time"
    return asn1_x509.Time({kind: when})


def certify(
    public: Key, sign_raw: RawSign, gun: str, now: datetime, years: int = ROOT_CERT_YEARS
) -> Key:
    """A self-signed certificate (CN = `gun`) for the bare key `public`, signed through `sign_raw`.

    Built as Notary's `GenerateCertificate` builds it: serial of 128 random
    bits, valid from `now` for `years` 365-day years, key usage digital
    signature and key encipherment (critical), extended key usage code signing,
    not a CA. The signature comes from `sign_raw`, so a key file or a token
    signs the same way. Like Go, any GUN length is accepted as the common name.
    The result is checked against `public` before it is returned.
    """
    if public.keytype == "ed25519":
        raise InputRejected("An Ed25519 key cannot be a Notary root key; use an ECDSA key.")
    if public.keytype not in ("ecdsa", "rsa"):
        raise InputRejected("Only an ECDSA or RSA key can be a Notary root key; use an ECDSA key.")
    if not gun:
        raise InputRejected("A root certificate needs a GUN for its common name.")
    start = utc_seconds(now)
    serial = 0
    while serial == 0:
        serial = secrets.randbits(128)
    if public.keytype == "ecdsa":
        algorithm = asn1_algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"})
    else:
        algorithm = asn1_algos.SignedDigestAlgorithm(
            {
                "algorithm": "rsassa_pss",
                "parameters": {
                    "hash_algorithm": {"algorithm": "sha256"},
                    "mask_gen_algorithm": {
                        "algorithm": "mgf1",
                        "parameters": {"algorithm": "sha256"},
                    },
                    "salt_length": PSS_SALT_LENGTH,
                },
            }
        )
    name = asn1_x509.Name.build({"common_name": gun})
    tbs = asn1_x509.TbsCertificate(
        {
            "version": "v3",
            "serial_number": serial,
            "signature": algorithm,
            "issuer": name,
            "validity": {
                "not_before": _asn1_time(start),
                "not_after": _asn1_time(start + timedelta(days=365 * years)),
            },
            "subject": name,
            "subject_public_key_info": asn1_keys.PublicKeyInfo.load(public.public_bytes),
            "extensions": [
                {
                    "extn_id": "key_usage",
                    "critical": True,
                    "extn_value": {"digital_signature", "key_encipherment"},
                },
                {
                    "extn_id": "extended_key_usage",
                    "critical": False,
                    "extn_value": ["code_signing"],
                },
                {"extn_id": "basic_constraints", "critical": True, "extn_value": {"ca": False}},
            ],
        }
    )
    method, raw = sign_raw(tbs.dump())
    if method == "ecdsa":
        half = len(raw) // 2
        raw = utils.encode_dss_signature(
            int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
        )
    elif method != "rsapss":
        raise InputRejected(f"A {method} signature cannot sign a root certificate.")
    der = asn1_x509.Certificate(
        {"tbs_certificate": tbs, "signature_algorithm": algorithm, "signature_value": raw}
    ).dump()
    key = Key(f"{public.keytype}-x509", b64encode(pem_encode("CERTIFICATE", der)))
    if canonical_key_id(key) != public.key_id or not _self_signed(leaf_certificate(key)):
        raise VerificationFailed(
            "The certificate just made does not verify with its own key; "
            "do not use this key until the cause is found."
        )
    return key


def _self_signed(cert: x509.Certificate) -> bool:
    """Whether a certificate's signature verifies with its own public key."""
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True
