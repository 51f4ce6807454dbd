"""Signatures, key ids and certificates in Notary's dialect (notary-formats.md §3)."""

from __future__ import annotations

import base64
import hashlib
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, SignatureAlgorithmOID
from hypothesis import given, settings
from hypothesis import strategies as st

from ceremony.core.errors import InputRejected, MalformedInput, VerificationFailed
from ceremony.core.keys import (
    canonical_key_id,
    check_root_certificate,
    describe_key,
    key_from_pem,
    verify_signature,
)
from ceremony.core.metadata import Key, Signature
from ceremony.signing.certificates import make_root_certificate
from ceremony.signing.private import PrivateKey, sign
from ceremony.signing.signer import KeySigner, Signer
from tests.keys.conftest import GUN, NOW

# RFC 8032 §7.1, test 1: an external known answer for Ed25519.
RFC8032_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC8032_SIG = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)
MESSAGE = b'{"_type":"Targets","version":2}'


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# ---------------------------------------------------------------------------
# known answers and ids


def test_ed25519_known_answer_and_key_id() -> None:
    private = PrivateKey(ed25519.Ed25519PrivateKey.from_private_bytes(RFC8032_SEED))
    key = private.public_key()
    assert key == Key("ed25519", b64(RFC8032_PUBLIC))
    assert private.sign_raw(b"") == ("eddsa", RFC8032_SIG)
    assert verify_signature(key, Signature(key.key_id, "eddsa", RFC8032_SIG), b"")
    canonical = (
        '{"keytype":"ed25519","keyval":{"private":null,"public":"' + b64(RFC8032_PUBLIC) + '"}}'
    )
    assert key.key_id == hashlib.sha256(canonical.encode()).hexdigest()
    assert private.canonical_id == key.key_id == canonical_key_id(key)


def test_public_keys_are_der_spki_for_ecdsa_and_rsa(
    ec_key: PrivateKey, rsa_key: PrivateKey
) -> None:
    for private, keytype in ((ec_key, "ecdsa"), (rsa_key, "rsa")):
        key = private.public_key()
        assert key.keytype == keytype
        spki = private.native.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert key.public_bytes == spki
        assert canonical_key_id(key) == key.key_id


def test_sign_then_verify_round_trip(any_key: PrivateKey) -> None:
    method, size = {"ecdsa": ("ecdsa", 64), "rsa": ("rsapss", 256), "ed25519": ("eddsa", 64)}[
        any_key.algorithm
    ]
    key = any_key.public_key()
    signature = sign(any_key, key, MESSAGE)
    assert (signature.keyid, signature.method, len(signature.sig)) == (key.key_id, method, size)
    assert verify_signature(key, signature, MESSAGE)
    assert not verify_signature(key, signature, MESSAGE + b" ")
    flipped = bytes([signature.sig[0] ^ 1]) + signature.sig[1:]
    assert not verify_signature(key, Signature(key.key_id, method, flipped), MESSAGE)


# ---------------------------------------------------------------------------
# ecdsa encoding


def test_ecdsa_is_raw_r_s_over_sha256_not_der(ec_key: PrivateKey) -> None:
    key = ec_key.public_key()
    method, raw = ec_key.sign_raw(MESSAGE)
    assert method == "ecdsa"
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    native = ec_key.native
    assert isinstance(native, ec.EllipticCurvePrivateKey)
    native.public_key().verify(utils.encode_dss_signature(r, s), MESSAGE, ec.ECDSA(hashes.SHA256()))
    der = native.sign(MESSAGE, ec.ECDSA(hashes.SHA256()))
    assert not verify_signature(key, Signature(key.key_id, "ecdsa", der), MESSAGE)
    for bad in (raw[:-1], raw + b"\0", b"\0" * 64):
        assert not verify_signature(key, Signature(key.key_id, "ecdsa", bad), MESSAGE)


def test_ecdsa_p384_pads_to_48_octets_and_still_uses_sha256() -> None:
    native = ec.generate_private_key(ec.SECP384R1())
    private = PrivateKey(native)
    key = private.public_key()
    signature = sign(private, key, MESSAGE)
    assert len(signature.sig) == 96
    r, s = int.from_bytes(signature.sig[:48], "big"), int.from_bytes(signature.sig[48:], "big")
    digest = hashlib.sha256(MESSAGE).digest()
    native.public_key().verify(
        utils.encode_dss_signature(r, s), digest, ec.ECDSA(utils.Prehashed(hashes.SHA256()))
    )


# ---------------------------------------------------------------------------
# rsa


def test_rsapss_needs_salt_length_32_exactly(rsa_key: PrivateKey) -> None:
    native = rsa_key.native
    assert isinstance(native, rsa.RSAPrivateKey)
    key = rsa_key.public_key()
    mgf = padding.MGF1(hashes.SHA256())
    salt32 = native.sign(MESSAGE, padding.PSS(mgf=mgf, salt_length=32), hashes.SHA256())
    salt_max = native.sign(
        MESSAGE, padding.PSS(mgf=mgf, salt_length=padding.PSS.MAX_LENGTH), hashes.SHA256()
    )
    assert verify_signature(key, Signature(key.key_id, "rsapss", salt32), MESSAGE)
    assert not verify_signature(key, Signature(key.key_id, "rsapss", salt_max), MESSAGE)


def test_rsapkcs1v15_verifies_but_only_under_its_method(rsa_key: PrivateKey) -> None:
    native = rsa_key.native
    assert isinstance(native, rsa.RSAPrivateKey)
    key = rsa_key.public_key()
    sig = native.sign(MESSAGE, padding.PKCS1v15(), hashes.SHA256())
    assert verify_signature(key, Signature(key.key_id, "rsapkcs1v15", sig), MESSAGE)
    assert not verify_signature(key, Signature(key.key_id, "rsapss", sig), MESSAGE)


def test_rsa_below_2048_bits_never_verifies_and_cannot_be_used() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (testing the refusal)
    spki = small.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key = Key("rsa", b64(spki))
    sig = small.sign(
        MESSAGE, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256()
    )
    assert not verify_signature(key, Signature(key.key_id, "rsapss", sig), MESSAGE)
    with pytest.raises(InputRejected, match="2048"):
        PrivateKey(small)


# ---------------------------------------------------------------------------
# mismatches and garbage


def test_method_must_match_key_type(ec_key: PrivateKey, ed_key: PrivateKey) -> None:
    ec_pub, ed_pub = ec_key.public_key(), ed_key.public_key()
    ec_sig = sign(ec_key, ec_pub, MESSAGE)
    ed_sig = sign(ed_key, ed_pub, MESSAGE)
    assert not verify_signature(ec_pub, Signature(ec_sig.keyid, "eddsa", ec_sig.sig), MESSAGE)
    assert not verify_signature(ed_pub, Signature(ed_sig.keyid, "ecdsa", ed_sig.sig), MESSAGE)
    assert not verify_signature(ec_pub, Signature(ec_sig.keyid, "ECDSA", ec_sig.sig), MESSAGE)
    assert not verify_signature(ed_pub, ec_sig, MESSAGE)


@pytest.mark.parametrize(
    "key",
    [
        Key("ecdsa", b64(b"not a key")),
        Key("rsa", b64(b"")),
        Key("ed25519", b64(b"short")),
        Key("ecdsa-x509", b64(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")),
        Key("rsa-x509", b64(b"garbage")),
        Key("ecdsa", "!!not base64!!"),
    ],
)
def test_garbage_keys_give_false(key: Key) -> None:
    assert verify_signature(key, Signature("0" * 64, "ecdsa", b"\0" * 64), MESSAGE) is False


@settings(max_examples=200, deadline=None)
@given(
    method=st.sampled_from(["ecdsa", "rsapss", "rsapkcs1v15", "eddsa", "", "x"]),
    sig=st.binary(max_size=600),
    message=st.binary(max_size=64),
)
def test_verify_never_raises(method: str, sig: bytes, message: bytes) -> None:
    for key in _FUZZ_KEYS:
        assert verify_signature(key, Signature("0" * 64, method, sig), message) is False


_FUZZ_KEYS = [
    PrivateKey(ec.derive_private_key(7, ec.SECP256R1())).public_key(),
    PrivateKey(ed25519.Ed25519PrivateKey.from_private_bytes(RFC8032_SEED)).public_key(),
]


# ---------------------------------------------------------------------------
# signing guards and the Signer protocol


def test_sign_refuses_a_key_that_is_not_the_public_half(ec_key: PrivateKey) -> None:
    other = PrivateKey.generate_ecdsa().public_key()
    with pytest.raises(VerificationFailed, match="not the public half"):
        sign(ec_key, other, MESSAGE)
    with pytest.raises(VerificationFailed):
        KeySigner(ec_key, other)
    with pytest.raises(VerificationFailed):
        sign(ec_key, Key("ecdsa-x509", b64(b"junk")), MESSAGE)


def test_sign_verifies_what_it_made(ec_key: PrivateKey, monkeypatch: pytest.MonkeyPatch) -> None:
    """A faulty signer (here: one that returns a corrupted signature) is caught at once."""

    def broken(self: PrivateKey, message: bytes) -> tuple[str, bytes]:
        return "ecdsa", b"\1" * 64

    monkeypatch.setattr(PrivateKey, "sign_raw", broken)
    with pytest.raises(VerificationFailed, match="does not verify"):
        sign(ec_key, ec_key.public_key(), MESSAGE)


def test_file_signer_uses_the_certificate_key_id(ec_key: PrivateKey) -> None:
    cert = make_root_certificate(ec_key, GUN, NOW)
    signer = KeySigner(ec_key, cert)
    assert isinstance(signer, Signer)
    signature = signer.sign(MESSAGE)
    assert signature.keyid == cert.key_id != ec_key.canonical_id
    assert verify_signature(cert, signature, MESSAGE)
    assert "PrivateKey(ecdsa" in repr(signer)


# ---------------------------------------------------------------------------
# root certificates


def test_root_certificate_matches_notary(ec_key: PrivateKey) -> None:
    key = make_root_certificate(ec_key, GUN, NOW.replace(microsecond=123456))
    assert key.keytype == "ecdsa-x509"
    pem = key.public_bytes
    cert = x509.load_pem_x509_certificate(pem)
    assert pem == cert.public_bytes(serialization.Encoding.PEM)
    lines = pem.decode().splitlines()
    assert lines[0] == "-----BEGIN CERTIFICATE-----" and lines[-1] == "-----END CERTIFICATE-----"
    assert all(len(line) == 64 for line in lines[1:-2]) and 0 < len(lines[-2]) <= 64
    assert cert.subject == cert.issuer
    assert cert.subject == x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, GUN)])
    assert 0 < cert.serial_number < 2**128
    assert cert.not_valid_before_utc == NOW
    assert cert.not_valid_after_utc == NOW + timedelta(days=3650)
    assert cert.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA256
    exts = {e.oid: e for e in cert.extensions}
    assert len(exts) == 3
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and usage.value.key_encipherment
    assert not usage.value.key_cert_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert not eku.critical and list(eku.value) == [ExtendedKeyUsageOID.CODE_SIGNING]
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca is False
    assert canonical_key_id(key) == ec_key.canonical_id
    assert key.key_id != ec_key.canonical_id
    assert check_root_certificate(key, GUN, NOW) is None


def test_rsa_root_certificate_and_rsa_x509_verification(rsa_key: PrivateKey) -> None:
    key = make_root_certificate(rsa_key, GUN, NOW)
    assert key.keytype == "rsa-x509"
    assert canonical_key_id(key) == rsa_key.canonical_id
    signature = sign(rsa_key, key, MESSAGE)
    assert (signature.keyid, signature.method) == (key.key_id, "rsapss")
    assert verify_signature(key, signature, MESSAGE)
    assert check_root_certificate(key, GUN, NOW) is None


def test_ed25519_cannot_be_a_root_key(ed_key: PrivateKey) -> None:
    with pytest.raises(InputRejected, match="Ed25519"):
        make_root_certificate(ed_key, GUN, NOW)


def _cert(
    private: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    cn: str,
    *,
    ca: bool | None = False,
    start_days: int = 0,
    days: int = 365,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(12345)
        .not_valid_before(NOW + timedelta(days=start_days))
        .not_valid_after(NOW + timedelta(days=start_days + days))
    )
    if ca is not None:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=ca, path_length=None), critical=True
        )
    return builder.sign(private, hashes.SHA256())


def _x509_key(*certs: x509.Certificate, keytype: str = "ecdsa-x509") -> Key:
    return Key(keytype, b64(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)))


def test_check_root_certificate_reasons(ec_key: PrivateKey) -> None:
    good = make_root_certificate(ec_key, GUN, NOW)
    native = ec_key.native
    assert isinstance(native, ec.EllipticCurvePrivateKey)
    assert check_root_certificate(good, "example.com/other", NOW) == (
        f"its certificate is for {GUN!r}, not 'example.com/other'"
    )
    assert check_root_certificate(good, GUN, NOW + timedelta(days=3651)) == (
        "its certificate expired on 2035-05-30"
    )
    assert check_root_certificate(good, GUN, NOW - timedelta(hours=23)) is None
    assert "not valid until" in (check_root_certificate(good, GUN, NOW - timedelta(days=2)) or "")
    assert "bare ecdsa key" in (check_root_certificate(ec_key.public_key(), GUN, None) or "")
    assert check_root_certificate(Key("ecdsa-x509", b64(b"junk")), GUN, None) == (
        "its certificate bundle does not parse"
    )
    wildcard = _x509_key(_cert(native, "example.com/*"))
    assert check_root_certificate(wildcard, GUN, None) is None
    assert check_root_certificate(wildcard, "example.org/x", None) is not None
    assert check_root_certificate(_x509_key(_cert(native, "*")), GUN, None) is not None
    ca_only = _x509_key(_cert(native, GUN, ca=True))
    assert "leaf" in (check_root_certificate(ca_only, GUN, None) or "")
    two_leaves = _x509_key(_cert(native, GUN), _cert(native, GUN))
    assert "leaf" in (check_root_certificate(two_leaves, GUN, None) or "")
    chain = _x509_key(_cert(native, GUN, ca=None), _cert(native, "intermediate", ca=True))
    assert check_root_certificate(chain, GUN, NOW) is None
    wrong_type = _x509_key(_cert(native, GUN), keytype="rsa-x509")
    assert "type" in (check_root_certificate(wrong_type, GUN, None) or "")


def test_check_root_certificate_refuses_sha1_and_short_rsa(tmp_path: Path) -> None:
    # cryptography refuses to sign with SHA-1, so let openssl make that certificate.
    pem = tmp_path / "sha1.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-sha1", "-subj", "/CN=sha1test", "-addext", "basicConstraints=critical,CA:FALSE",
         "-days", "30", "-keyout", str(tmp_path / "k"),
         "-out", str(pem)],
        check=True, capture_output=True,
    )  # fmt: skip
    sha1 = Key("ecdsa-x509", b64(pem.read_bytes()))
    assert "SHA-1" in (check_root_certificate(sha1, "sha1test", None) or "")
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (testing the refusal)
    short = _x509_key(_cert(small, GUN), keytype="rsa-x509")
    assert "1024 bits" in (check_root_certificate(short, GUN, None) or "")


# ---------------------------------------------------------------------------
# user-supplied PEM keys


def test_key_from_pem_certificate_and_public_keys(ec_key: PrivateKey, rsa_key: PrivateKey) -> None:
    cert_key = make_root_certificate(ec_key, "releases", NOW)
    messy = b"some text before\r\n" + cert_key.public_bytes.replace(b"\n", b"\r\n") + b"trailer\n"
    assert key_from_pem(messy) == cert_key
    assert key_from_pem(cert_key.public_bytes, now=NOW) == cert_key
    with pytest.raises(InputRejected, match="expired"):
        key_from_pem(cert_key.public_bytes, now=NOW + timedelta(days=4000))
    for private in (ec_key, rsa_key):
        pem = private.native.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert key_from_pem(pem) == private.public_key()
    rsa_cert = make_root_certificate(rsa_key, "releases", NOW)
    assert key_from_pem(rsa_cert.public_bytes).keytype == "rsa-x509"


def test_key_from_pem_refusals(ed_key: PrivateKey) -> None:
    ed_pem = ed_key.native.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    cases = {
        ed_pem: "Notary does not accept",
        b"nothing here": "no PEM block",
        b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n": "cannot be read",
        b"-----BEGIN PUBLIC KEY-----\n%%%%\n-----END PUBLIC KEY-----\n": "not valid base64",
        b"-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n": "truncated",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n": "CERTIFICATE or PUBLIC KEY",
    }
    for data, reason in cases.items():
        with pytest.raises(MalformedInput, match=reason) as info:
            key_from_pem(data)
        assert info.value.message.count(".") >= 1 and "\n" not in info.value.message


# ---------------------------------------------------------------------------
# descriptions shown to the operator


def test_describe_key(ec_key: PrivateKey) -> None:
    cert_key = make_root_certificate(ec_key, GUN, NOW)
    d = describe_key(cert_key)
    der = x509.load_pem_x509_certificate(cert_key.public_bytes).public_bytes(
        serialization.Encoding.DER
    )
    assert d.key_id == cert_key.key_id
    assert d.canonical_id == ec_key.canonical_id
    assert (d.keytype, d.common_name) == ("ecdsa-x509", GUN)
    assert d.not_after == NOW + timedelta(days=3650)
    spki = ec_key.native.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert d.certificate_sha256 == hashlib.sha256(der).hexdigest()
    assert d.fingerprint == hashlib.sha256(spki).hexdigest()  # of the key, not the certificate
    assert d.fingerprint in d.summary() and GUN in d.summary()
    assert d.certificate_sha256 in d.summary()
    plain = describe_key(ec_key.public_key())
    assert (plain.key_id, plain.canonical_id, plain.common_name, plain.certificate_sha256) == (
        ec_key.canonical_id,
        ec_key.canonical_id,
        None,
        None,
    )
    # one fingerprint for the bare key and for every certificate made for it, whatever its GUN
    other = describe_key(make_root_certificate(ec_key, "example.com/other", NOW))
    assert plain.fingerprint == d.fingerprint == other.fingerprint
    assert other.certificate_sha256 != d.certificate_sha256
    with pytest.raises(MalformedInput):
        describe_key(Key("ecdsa-x509", b64(b"junk")))
