"""Notary's private key files: round trips, the exact byte layout, and hostile input (§4.2)."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest
from asn1crypto import algos, core, keys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.padding import PKCS7

from ceremony.core.errors import CeremonyError, InputRejected, MalformedInput, UsageError
from ceremony.core.keys import pem_blocks, pem_encode
from ceremony.signing.keyfile import (
    KeyFileHeaders,
    WrongPassphrase,
    decode_key_file,
    encode_key_file,
    private_key_info,
    read_key_file_headers,
)
from ceremony.signing.private import PrivateKey
from tests.keys.conftest import GUN

SECRET = "s3cret-Passphrase-never-shown"
OID_PBES2 = "1.2.840.113549.1.5.13"
OID_PBKDF2 = "1.2.840.113549.1.5.12"
OID_AES256_CBC = "2.16.840.1.101.3.4.1.42"
needs_openssl = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="openssl is not installed"
)


class _Parts(core.SequenceOf):  # type: ignore[misc]
    """Any SEQUENCE, element by element (to look at raw DER without a schema)."""

    _child_spec = core.Any


def _der(pem: bytes) -> bytes:
    (block,) = pem_blocks(pem)
    return block.body


def _decrypt(der: bytes, passphrase: str) -> bytes:
    """Independent PBES2 decryption, straight from the parsed parameters."""
    info = keys.EncryptedPrivateKeyInfo.load(der)
    algorithm = info["encryption_algorithm"]
    kdf = PBKDF2HMAC(
        algorithm=hashes.SHA1(),  # noqa: S303 (Notary's format)
        length=32,
        salt=algorithm.kdf_salt,
        iterations=algorithm.kdf_iterations,
    )
    cipher = Cipher(
        algorithms.AES(kdf.derive(passphrase.encode())), modes.CBC(algorithm.encryption_iv)
    )
    decryptor = cipher.decryptor()
    padded = decryptor.update(info["encrypted_data"].native) + decryptor.finalize()
    unpadder = PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


def _one_sentence(error: CeremonyError) -> None:
    text = error.message
    assert text.endswith((".", ")")) and "\n" not in text, text
    chain: BaseException | None = error
    while chain is not None:
        assert SECRET not in str(chain) and SECRET not in repr(chain.args)
        chain = chain.__cause__ or chain.__context__


# ---------------------------------------------------------------------------
# round trips


@pytest.mark.parametrize("passphrase", [SECRET, None], ids=["encrypted", "plain"])
def test_round_trip_all_key_types(any_key: PrivateKey, passphrase: str | None) -> None:
    data = encode_key_file(any_key, role="targets", gun=GUN, passphrase=passphrase)
    headers = read_key_file_headers(data)
    assert headers == KeyFileHeaders("targets", GUN, passphrase is not None)
    back = decode_key_file(data, passphrase)
    assert back.canonical_id == any_key.canonical_id
    assert back.algorithm == any_key.algorithm
    method, sig = back.sign_raw(b"message")
    from ceremony.core.keys import verify_signature
    from ceremony.core.metadata import Signature

    key = any_key.public_key()
    assert verify_signature(key, Signature(key.key_id, method, sig), b"message")


def test_p384_and_p521_round_trip() -> None:
    for curve in (ec.SECP384R1(), ec.SECP521R1()):
        private = PrivateKey(ec.generate_private_key(curve))
        data = encode_key_file(private, role="delegation", gun=None, passphrase=SECRET)
        assert decode_key_file(data, SECRET).canonical_id == private.canonical_id


# ---------------------------------------------------------------------------
# byte layout


def test_pem_text_layout(ec_key: PrivateKey) -> None:
    text = encode_key_file(ec_key, role="targets", gun=GUN, passphrase=SECRET).decode()
    lines = text.split("\n")
    assert lines[:4] == [
        "-----BEGIN ENCRYPTED PRIVATE KEY-----",
        f"gun: {GUN}",
        "role: targets",
        "",
    ]
    assert text.endswith("-----END ENCRYPTED PRIVATE KEY-----\n")
    body = lines[4:-2]
    assert all(len(line) == 64 for line in body[:-1]) and 0 < len(body[-1]) <= 64
    root = encode_key_file(ec_key, role="root", gun=GUN, passphrase=SECRET).decode()
    assert root.split("\n")[1:3] == ["role: root", ""]
    delegation = encode_key_file(ec_key, role="targets/releases", gun=GUN, passphrase=SECRET)
    assert b"gun:" not in delegation and b"role: targets/releases\n\n" in delegation
    plain = encode_key_file(ec_key, role="root", gun=None, passphrase=None)
    assert plain.startswith(b"-----BEGIN PRIVATE KEY-----\nrole: root\n\n")


def test_pbes2_parameters_are_notarys(ec_key: PrivateKey) -> None:
    der = _der(encode_key_file(ec_key, role="root", gun=None, passphrase=SECRET))
    info = keys.EncryptedPrivateKeyInfo.load(der, strict=True)
    algorithm = info["encryption_algorithm"]
    assert algorithm["algorithm"].dotted == OID_PBES2
    kdf = algorithm["parameters"]["key_derivation_func"]
    assert kdf["algorithm"].dotted == OID_PBKDF2
    salt = algorithm.kdf_salt
    assert len(salt) == 8 and algorithm.kdf_iterations == 2048
    # Exactly SEQUENCE { OCTET STRING salt, INTEGER 2048 }: no keyLength, no prf.
    assert kdf["parameters"].dump() == b"\x30\x0e\x04\x08" + salt + b"\x02\x02\x08\x00"
    scheme = algorithm["parameters"]["encryption_scheme"]
    assert scheme["algorithm"].dotted == OID_AES256_CBC
    assert len(scheme["parameters"].native) == 16
    assert len(info["encrypted_data"].native) % 16 == 0
    # Fresh salt and IV every time.
    again = keys.EncryptedPrivateKeyInfo.load(
        _der(encode_key_file(ec_key, role="root", gun=None, passphrase=SECRET))
    )
    assert again["encryption_algorithm"].kdf_salt != salt


def test_inner_pkcs8_ec_has_version_1_and_sec1(ec_key: PrivateKey) -> None:
    der = _der(encode_key_file(ec_key, role="root", gun=None, passphrase=SECRET))
    inner = _decrypt(der, SECRET)
    assert inner == private_key_info(ec_key)
    seq = _Parts.load(inner)
    assert core.Integer.load(seq[0].dump()).native == 1
    assert seq[1].dump() == bytes.fromhex(
        "301306072a8648ce3d020106082a8648ce3d030107"  # {ecPublicKey, prime256v1}
    )
    sec1 = keys.ECPrivateKey.load(core.OctetString.load(seq[2].dump()).native)
    native = ec_key.native
    assert isinstance(native, ec.EllipticCurvePrivateKey)
    assert sec1["version"].native == "ecPrivkeyVer1"
    assert sec1["private_key"].native == native.private_numbers().private_value
    assert len(sec1["private_key"].contents) == 32
    assert sec1["parameters"].chosen.native == "secp256r1"
    assert sec1["public_key"].native == native.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    # The SEC1 bytes are what Go's x509.MarshalECPrivateKey (= OpenSSL's) writes.
    assert sec1.dump() == native.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def test_inner_pkcs8_rsa_has_no_null_parameter(rsa_key: PrivateKey) -> None:
    inner = private_key_info(rsa_key)
    seq = _Parts.load(inner)
    assert core.Integer.load(seq[0].dump()).native == 0
    assert seq[1].dump() == bytes.fromhex("300b06092a864886f70d010101")
    pkcs1 = core.OctetString.load(seq[2].dump()).native
    assert pkcs1 == rsa_key.native.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def test_inner_pkcs8_ed25519_is_notarys_96_bytes(ed_key: PrivateKey) -> None:
    inner = private_key_info(ed_key)
    seq = _Parts.load(inner)
    assert seq[1].dump() == bytes.fromhex("300b06092b06010401da470f01")  # 1.3.6.1.4.1.11591.15.1
    raw = core.OctetString.load(seq[2].dump()).native
    native = ed_key.native
    assert isinstance(native, ed25519.Ed25519PrivateKey)
    seed = native.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = native.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert raw == public + seed + public


# ---------------------------------------------------------------------------
# other tools' files


@needs_openssl
def test_openssl_reads_ours_and_we_read_openssls(tmp_path: Path, ec_key: PrivateKey) -> None:
    # OpenSSL cannot read PEM headers on PKCS#8, so hand it the DER.
    ours = tmp_path / "ours.der"
    ours.write_bytes(_der(encode_key_file(ec_key, role="root", gun=None, passphrase=SECRET)))
    out = subprocess.run(
        ["openssl", "pkcs8", "-inform", "DER", "-in", str(ours), "-passin", "env:PW", "-outform", "DER"],
        capture_output=True, check=True, env={"PW": SECRET},
    ).stdout  # fmt: skip
    loaded = serialization.load_der_private_key(out, None)
    assert isinstance(loaded, ec.EllipticCurvePrivateKey)
    native = ec_key.native
    assert isinstance(native, ec.EllipticCurvePrivateKey)
    assert loaded.private_numbers() == native.private_numbers()

    plain = tmp_path / "plain.der"
    plain.write_bytes(
        native.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    for prf in ("hmacWithSHA1", "hmacWithSHA256"):
        theirs = subprocess.run(
            ["openssl", "pkcs8", "-topk8", "-inform", "DER", "-in", str(plain), "-v2", "aes-256-cbc",
             "-v2prf", prf, "-iter", "2048", "-passout", "env:PW"],
            capture_output=True, check=True, env={"PW": SECRET},
        ).stdout  # fmt: skip
        assert decode_key_file(theirs, SECRET).canonical_id == ec_key.canonical_id
        with pytest.raises(WrongPassphrase):
            decode_key_file(theirs, "not-the-passphrase")


def test_standard_unencrypted_pkcs8_of_every_type(any_key: PrivateKey) -> None:
    der = any_key.native.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pem = pem_encode("PRIVATE KEY", der, {"role": "targets"})
    assert not read_key_file_headers(pem).encrypted
    assert decode_key_file(pem, None).canonical_id == any_key.canonical_id


def test_legacy_blocks(ec_key: PrivateKey, rsa_key: PrivateKey, ed_key: PrivateKey) -> None:
    for private, kind in ((ec_key, "EC PRIVATE KEY"), (rsa_key, "RSA PRIVATE KEY")):
        der = private.native.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        pem = pem_encode(kind, der, {"role": "root"})
        assert read_key_file_headers(pem) == KeyFileHeaders("root", None, False)
        assert decode_key_file(pem, None).canonical_id == private.canonical_id
        encrypted = private.native.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.BestAvailableEncryption(SECRET.encode()),
        )
        assert b"DEK-Info" in encrypted and read_key_file_headers(encrypted).encrypted
        assert decode_key_file(encrypted, SECRET).canonical_id == private.canonical_id
        with pytest.raises(WrongPassphrase) as info:
            decode_key_file(encrypted, "not-the-passphrase")
        _one_sentence(info.value)
    seq = _Parts.load(private_key_info(ed_key))
    raw96 = core.OctetString.load(seq[2].dump()).native
    legacy_ed = pem_encode("ED25519 PRIVATE KEY", raw96, {"role": "targets/releases"})
    assert decode_key_file(legacy_ed, None).canonical_id == ed_key.canonical_id


# ---------------------------------------------------------------------------
# wrong passphrases, tampering and garbage


def test_wrong_passphrase_is_input_rejected_without_the_secret(ec_key: PrivateKey) -> None:
    data = encode_key_file(ec_key, role="root", gun=None, passphrase=SECRET)
    with pytest.raises(WrongPassphrase) as info:
        decode_key_file(data, SECRET + "x")
    error = info.value
    assert isinstance(error, InputRejected) and not isinstance(error, MalformedInput)
    assert error.exit_code == 1
    assert error.message.startswith("The passphrase for the root key is wrong; ")
    _one_sentence(error)
    with pytest.raises(WrongPassphrase, match="passphrase is needed"):
        decode_key_file(data, None)


def test_a_different_passphrase_never_opens_a_key(ec_key: PrivateKey) -> None:
    data = encode_key_file(ec_key, role="targets", gun=GUN, passphrase=SECRET)
    for attempt in ("", " ", SECRET.upper(), SECRET[:-1], "a" * 100, "päss wörd"):
        with pytest.raises(WrongPassphrase):
            decode_key_file(data, attempt)


def _tampered(ec_key: PrivateKey) -> dict[str, tuple[bytes, type[CeremonyError], str]]:
    good = encode_key_file(ec_key, role="root", gun=None, passphrase=SECRET)
    text = good.decode()
    lines = text.split("\n")
    body = base64.b64decode("".join(lines[3:-2]))
    flipped = body[:-20] + bytes([body[-20] ^ 0xFF]) + body[-19:]
    info = keys.EncryptedPrivateKeyInfo.load(body)
    params = info["encryption_algorithm"]["parameters"]
    kdf = params["key_derivation_func"]["parameters"]
    greedy = keys.EncryptedPrivateKeyInfo(
        {
            "encryption_algorithm": algos.EncryptionAlgorithm(
                {
                    "algorithm": "pbes2",
                    "parameters": {
                        "key_derivation_func": {
                            "algorithm": "pbkdf2",
                            "parameters": {"salt": kdf["salt"], "iteration_count": 2**31 - 1},
                        },
                        "encryption_scheme": params["encryption_scheme"],
                    },
                }
            ),
            "encrypted_data": info["encrypted_data"].native,
        }
    ).dump()
    other_pub = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    sec1 = keys.ECPrivateKey.load(
        ec_key.native.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    lying = keys.ECPrivateKey(
        {
            "version": "ecPrivkeyVer1",
            "private_key": sec1["private_key"].native,
            "parameters": keys.ECDomainParameters(name="named", value="secp256r1"),
            "public_key": other_pub,
        }
    ).dump()
    return {
        "truncated": (good[: len(good) // 2], MalformedInput, "truncated"),
        "no END line": (good.replace(b"-----END ENCRYPTED PRIVATE KEY-----\n", b""), MalformedInput, "truncated"),
        "garbage base64": (good.replace(lines[4][:8].encode(), b"!@#$%^&*"), MalformedInput, "base64"),
        "not PEM": (b"hello, I am not a key\n", MalformedInput, "not a PEM"),
        "empty": (b"", MalformedInput, "not a PEM"),
        "binary": (bytes(range(256)), MalformedInput, ""),
        "certificate": (pem_encode("CERTIFICATE", b"\x30\x00"), MalformedInput, "not a private key"),
        "two keys": (good + good, MalformedInput, "one key per file"),
        "not DER": (pem_encode("ENCRYPTED PRIVATE KEY", b"hello world"), MalformedInput, "cannot be read"),
        "plain garbage": (pem_encode("PRIVATE KEY", b"\x30\x03\x02\x01\x00"), MalformedInput, "PKCS#8"),
        "flipped ciphertext": (pem_encode("ENCRYPTED PRIVATE KEY", flipped, {"role": "root"}), WrongPassphrase, "wrong"),
        "huge iteration count": (pem_encode("ENCRYPTED PRIVATE KEY", greedy), MalformedInput, "iteration"),
        "lying public key": (pem_encode("EC PRIVATE KEY", lying), MalformedInput, "does not match"),
    }  # fmt: skip


def test_tampered_and_garbage_files(ec_key: PrivateKey) -> None:
    for name, (data, kind, reason) in _tampered(ec_key).items():
        with pytest.raises(CeremonyError) as info:
            decode_key_file(data, SECRET)
        assert type(info.value) is kind, name
        assert reason in info.value.message, (name, info.value.message)
        _one_sentence(info.value)


def test_headers_without_passphrase(ec_key: PrivateKey) -> None:
    encrypted = encode_key_file(ec_key, role="targets", gun=GUN, passphrase=SECRET)
    plain = encode_key_file(ec_key, role="root", gun=None, passphrase=None)
    assert read_key_file_headers(encrypted) == KeyFileHeaders("targets", GUN, True)
    assert read_key_file_headers(plain) == KeyFileHeaders("root", None, False)
    assert KeyFileHeaders("\x1b[2Jevil", None, True).label == "private"
    with pytest.raises(MalformedInput):
        read_key_file_headers(b"junk")


def test_encode_refuses_empty_passphrase_and_header_injection(ec_key: PrivateKey) -> None:
    with pytest.raises(UsageError, match="empty passphrase"):
        encode_key_file(ec_key, role="root", gun=None, passphrase="")
    with pytest.raises(UsageError):
        encode_key_file(ec_key, role="root\ngun: evil", gun=None, passphrase=SECRET)
    with pytest.raises(UsageError):
        encode_key_file(ec_key, role="targets", gun="a\nb", passphrase=SECRET)


def test_unsupported_keys_are_refused(tmp_path: Path) -> None:
    k1 = ec.generate_private_key(ec.SECP256K1())
    der = k1.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(InputRejected, match="secp256k1"):
        decode_key_file(pem_encode("PRIVATE KEY", der), None)
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (testing the refusal)
    der = small.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(InputRejected, match="2048"):
        decode_key_file(pem_encode("PRIVATE KEY", der), None)
