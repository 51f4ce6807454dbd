"""Both directions against the real Debian notary 0.7: its keys work here, ours work there."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from asn1crypto import keys
from cryptography.hazmat.primitives import serialization

from ceremony.core.keys import (
    canonical_key_id,
    check_root_certificate,
    describe_key,
    key_from_pem,
    verify_signature,
)
from ceremony.core.metadata import Root, Targets, parse_envelope
from ceremony.signing.certificates import make_root_certificate
from ceremony.signing.keyfile import (
    decode_key_file,
    encode_key_file,
    private_key_info,
    read_key_file_headers,
)
from ceremony.signing.keystore import KeyStore
from ceremony.signing.private import PrivateKey, sign
from tests.keys.conftest import clean_env, run_ceremony
from tests.keys.test_keyfile import _decrypt, _der
from tests.notary_env import PASSPHRASE, NotaryCli, NotaryServer

pytestmark = pytest.mark.notary


def _now() -> datetime:
    # notary checks certificates against the real clock, so these tests use it too.
    return datetime.now(UTC)


def _verify_by(
    envelope_bytes: bytes, body_type: type[Root] | type[Targets], key_id: str, key: object
) -> str:
    """Check the envelope's signature under `key_id` with our verifier; return its method."""
    env = parse_envelope(envelope_bytes, body_type)
    matching = [s for s in env.signatures if s.keyid == key_id]
    assert matching, f"no signature by {key_id[:12]}"
    from ceremony.core.metadata import Key

    assert isinstance(key, Key)
    assert verify_signature(key, matching[0], env.signed_map_bytes)
    return matching[0].method


def test_keys_notary_wrote_decode_sign_and_match_its_metadata(
    notary_cli: NotaryCli, new_gun
) -> None:
    gun = new_gun()
    notary_cli.run("init", gun)
    files = {
        read_key_file_headers(p.read_bytes()).role: p
        for p in (notary_cli.trust_dir / "private").glob("*.key")
    }
    assert {"root", "targets", "snapshot"} <= set(files)
    root_bytes = (notary_cli.metadata_dir(gun) / "root.json").read_bytes()
    root = parse_envelope(root_bytes, Root).body
    for role in ("root", "targets", "snapshot"):
        path = files[role]
        data = path.read_bytes()
        headers = read_key_file_headers(data)
        assert headers.encrypted and headers.gun == (None if role == "root" else gun)
        private = decode_key_file(data, PASSPHRASE)
        assert private.canonical_id == path.stem
        (kid,) = root.roles[role].keyids
        key = root.keys[kid]
        assert canonical_key_id(key) == path.stem
        assert verify_signature(key, sign(private, key, b"ceremony"), b"ceremony")
        # Byte parity: the inner PKCS#8 and the PBES2 parameters are exactly ours.
        theirs = keys.EncryptedPrivateKeyInfo.load(_der(data))
        assert _decrypt(_der(data), PASSPHRASE) == private_key_info(private)
        ours_file = encode_key_file(private, role=role, gun=gun, passphrase=PASSPHRASE)
        assert ours_file.split(b"\n\n")[0] == data.split(b"\n\n")[0]  # same BEGIN line and headers
        ours = keys.EncryptedPrivateKeyInfo.load(_der(ours_file))
        a, b = theirs["encryption_algorithm"], ours["encryption_algorithm"]
        assert (
            b.dump().replace(b.kdf_salt, a.kdf_salt).replace(b.encryption_iv, a.encryption_iv)
            == a.dump()
        )
    (root_kid,) = root.roles["root"].keyids
    cert = root.keys[root_kid]
    assert cert.keytype == "ecdsa-x509"
    assert check_root_certificate(cert, gun, _now()) is None
    assert describe_key(cert).common_name == gun
    assert _verify_by(root_bytes, Root, root_kid, cert) == "ecdsa"


def test_ceremony_cli_imports_a_notary_root_key(
    notary_cli: NotaryCli, new_gun, tmp_path: Path
) -> None:
    gun = new_gun()
    notary_cli.run("init", gun)
    (root_file,) = [
        p
        for p in (notary_cli.trust_dir / "private").glob("*.key")
        if read_key_file_headers(p.read_bytes()).role == "root"
    ]
    home = tmp_path / "home"
    env = clean_env(NOTARY_ROOT_PASSPHRASE=PASSPHRASE)
    imported = run_ceremony(home, "key", "import", str(root_file), "--gun", gun, env=env)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout == root_file.stem + "\n"
    listed = run_ceremony(home, "key", "list", env=env)
    assert listed.returncode == 0
    block = listed.stdout.split(f"id          {root_file.stem}")[1].split("lives in")[0]
    assert "root key" in listed.stdout and f"serves      {gun}" in block
    # The stored copy is a Notary key file named by the same canonical id.
    stored = home / "private" / root_file.name
    assert decode_key_file(stored.read_bytes(), PASSPHRASE).canonical_id == root_file.stem


def test_notary_publishes_with_our_root_key_and_certificate(
    notary_cli: NotaryCli, notary_server: NotaryServer, new_gun, tmp_path: Path
) -> None:
    gun = new_gun()
    private = PrivateKey.generate_ecdsa()
    cert = make_root_certificate(private, gun, _now())
    key_file, cert_file = tmp_path / "root.key", tmp_path / "root.crt"
    key_file.write_bytes(encode_key_file(private, role="root", gun=None, passphrase=PASSPHRASE))
    cert_file.write_bytes(cert.public_bytes)
    notary_cli.run("init", "-p", gun, "--rootkey", str(key_file), "--rootcert", str(cert_file))
    root_bytes = notary_server.fetch(gun, "root.json")
    root = parse_envelope(root_bytes, Root).body
    assert root.roles["root"].keyids == (cert.key_id,)
    assert root.keys[cert.key_id] == cert  # our certificate, byte for byte
    assert _verify_by(root_bytes, Root, cert.key_id, cert) == "ecdsa"
    copied = notary_cli.trust_dir / "private" / f"{private.canonical_id}.key"
    assert decode_key_file(copied.read_bytes(), PASSPHRASE).canonical_id == private.canonical_id


def test_our_store_is_a_notary_private_folder(
    notary_cli: NotaryCli, notary_server: NotaryServer, new_gun
) -> None:
    gun = new_gun()
    store = KeyStore(notary_cli.trust_dir)
    record = store.generate("root", gun, PASSPHRASE, _now())
    proc = notary_cli.run("init", "-p", gun)
    assert record.canonical_id in proc.stdout + proc.stderr  # "Root key found, using: <id>"
    root_bytes = notary_server.fetch(gun, "root.json")
    root = parse_envelope(root_bytes, Root).body
    (kid,) = root.roles["root"].keyids
    notary_cert = root.keys[kid]
    assert canonical_key_id(notary_cert) == record.canonical_id
    assert _verify_by(root_bytes, Root, kid, notary_cert) == "ecdsa"
    signer = store.signer_for(notary_cert, lambda alias: PASSPHRASE)
    assert signer is not None
    signature = signer.sign(b"root body")
    assert signature.keyid == kid and verify_signature(notary_cert, signature, b"root body")
    listed = notary_cli.run("key", "list").stdout
    assert record.canonical_id in listed


def test_notary_signs_delegations_with_our_rsa_and_ec_keys(
    notary_cli: NotaryCli, notary_server: NotaryServer, new_gun, tmp_path: Path, rsa_key: PrivateKey
) -> None:
    gun = new_gun()
    notary_cli.run("init", "-p", gun)
    private_dir = notary_cli.trust_dir / "private"
    # RSA delegation key given to notary as a PUBLIC KEY; EC key as our certificate.
    rsa_pub = tmp_path / "releases.pub"
    rsa_pub.write_bytes(
        rsa_key.native.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    ec_key = PrivateKey.generate_ecdsa()
    ec_cert = make_root_certificate(ec_key, "qa", _now())
    ec_crt = tmp_path / "qa.crt"
    ec_crt.write_bytes(ec_cert.public_bytes)
    for private, role in ((rsa_key, "targets/releases"), (ec_key, "targets/qa")):
        path = private_dir / f"{private.canonical_id}.key"
        path.write_bytes(encode_key_file(private, role=role, gun=gun, passphrase=PASSPHRASE))
        path.chmod(0o600)
    notary_cli.run("delegation", "add", gun, "targets/releases", str(rsa_pub), "--all-paths")
    notary_cli.run("delegation", "add", gun, "targets/qa", str(ec_crt), "--all-paths")
    notary_cli.run("publish", gun)
    payload = tmp_path / "hello.txt"
    payload.write_bytes(b"hello\n")
    notary_cli.run("add", "-p", gun, "rel", str(payload), "--roles", "targets/releases")
    notary_cli.run("add", "-p", gun, "qa", str(payload), "--roles", "targets/qa")

    rsa_meta_key = key_from_pem(rsa_pub.read_bytes())
    ec_meta_key = key_from_pem(ec_crt.read_bytes(), now=_now())
    assert ec_meta_key == ec_cert
    targets = parse_envelope(notary_server.fetch(gun, "targets.json"), Targets).body
    assert targets.delegations.keys[rsa_meta_key.key_id] == rsa_meta_key
    assert targets.delegations.keys[ec_meta_key.key_id] == ec_meta_key
    releases = notary_server.fetch(gun, "targets/releases.json")
    assert _verify_by(releases, Targets, rsa_meta_key.key_id, rsa_meta_key) == "rsapss"
    qa = notary_server.fetch(gun, "targets/qa.json")
    assert _verify_by(qa, Targets, ec_meta_key.key_id, ec_meta_key) == "ecdsa"
    listed = notary_cli.list_targets(gun, "targets/releases")
    assert re.fullmatch("[0-9a-f]{64}", listed["rel"])
