"""The offline key store and the public keys document it exports."""

from __future__ import annotations

import json
import stat
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ceremony.core.documents import PUBLIC_KEYS_MEDIA_TYPE as MEDIA_TYPE
from ceremony.core.documents import PublicKeyEntry, PublicKeysDocument
from ceremony.core.errors import HomeDamaged, InputRejected, MalformedInput, UsageError
from ceremony.core.keys import (
    canonical_key_id,
    check_root_certificate,
    describe_key,
    verify_signature,
)
from ceremony.core.metadata import Key
from ceremony.signing.certificates import make_root_certificate
from ceremony.signing.keyfile import (
    KeyFileHeaders,
    WrongPassphrase,
    decode_key_file,
    encode_key_file,
    read_key_file_headers,
)
from ceremony.signing.keystore import KeyStore
from ceremony.signing.private import PrivateKey
from ceremony.signing.signer import KeySigner
from tests.keys.conftest import GUN, NOW

SECRET = "store-passphrase-1234"


class Passphrases:
    """A PassphraseSource stub that records which aliases were asked for."""

    def __init__(self, value: str = SECRET) -> None:
        self.value = value
        self.asked: list[str] = []

    def __call__(self, alias: str) -> str:
        self.asked.append(alias)
        return self.value


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---------------------------------------------------------------------------
# generate


def test_generate_root_layout_and_permissions(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "home")
    record = store.generate("root", GUN, SECRET, NOW)
    cid = record.canonical_id
    assert store.file_of(record) == tmp_path / "home" / "private" / f"{cid}.key"
    assert mode(store.file_of(record)) == 0o600
    index = tmp_path / "home" / "keys" / f"{cid}.json"
    assert mode(index) == 0o600
    for directory in (store.home, store.private_dir, store.index_dir):
        assert mode(directory) == 0o700
    data = store.file_of(record).read_bytes()
    assert read_key_file_headers(data) == KeyFileHeaders("root", None, True)
    private = decode_key_file(data, SECRET)
    assert private.canonical_id == cid == record.public.key_id
    assert record.certificate(GUN) is not None and record.metadata_key(GUN) == record.certificate(
        GUN
    )
    assert canonical_key_id(record.certificate(GUN)) == cid
    assert check_root_certificate(record.certificate(GUN), GUN, NOW) is None
    assert describe_key(record.certificate(GUN)).not_after == NOW + timedelta(days=3650)
    assert not list(store.private_dir.glob(".*.tmp"))
    assert store.records() == [record]


def test_generate_targets_and_delegation_headers(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    targets = store.generate("targets", GUN, SECRET, NOW)
    delegation = store.generate("delegation", GUN, SECRET, NOW)
    assert read_key_file_headers(store.file_of(targets).read_bytes()) == KeyFileHeaders(
        "targets", GUN, True
    )
    assert read_key_file_headers(store.file_of(delegation).read_bytes()) == KeyFileHeaders(
        "delegation", None, True
    )
    assert targets.certificate(GUN) is None and delegation.certificate(GUN) is None
    assert GUN in delegation.guns  # kept in the index, not in the Notary file
    assert {r.role for r in store.records()} == {"targets", "delegation"}


def test_generate_refusals(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    with pytest.raises(UsageError, match="timestamp"):
        store.generate("timestamp", GUN, SECRET, NOW)
    with pytest.raises(UsageError, match="--gun"):
        store.generate("root", None, SECRET, NOW)
    with pytest.raises(UsageError, match="empty passphrase"):
        store.generate("targets", GUN, "", NOW)
    assert store.records() == []


def test_loose_directory_permissions_are_tightened(tmp_path: Path) -> None:
    (tmp_path / "private").mkdir(mode=0o755)
    (tmp_path / "private").chmod(0o755)
    KeyStore(tmp_path).generate("targets", GUN, SECRET, NOW)
    assert mode(tmp_path / "private") == 0o700


# ---------------------------------------------------------------------------
# lookups


def test_get_and_resolve(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    root = store.generate("root", GUN, SECRET, NOW)
    targets = store.generate("targets", GUN, SECRET, NOW)
    assert store.get(root.canonical_id) == root
    assert store.get("0" * 64) is None and store.get("../etc") is None
    assert store.resolve(root.canonical_id[:10]) == root
    assert store.resolve(targets.canonical_id.upper()) == targets
    assert root.certificate(GUN) is not None
    assert store.resolve(root.certificate(GUN).key_id) == root
    with pytest.raises(UsageError, match="hex digits"):
        store.resolve("abc")
    with pytest.raises(UsageError):
        store.resolve("not-hex-at-all")
    unknown = "f" * 64 if not root.canonical_id.startswith("f") else "e" * 64
    with pytest.raises(InputRejected, match="No key"):
        store.resolve(unknown)


def test_damaged_index_is_reported(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    record = store.generate("targets", GUN, SECRET, NOW)
    index = store.index_dir / f"{record.canonical_id}.json"
    index.write_text("{not json")
    with pytest.raises(HomeDamaged, match="damaged"):  # exit 3, as for a damaged online home
        store.records()
    doc = record.to_index()
    doc["canonical_id"] = "0" * 64
    index.write_text(json.dumps(doc))
    with pytest.raises(HomeDamaged, match="does not match"):
        store.records()


# ---------------------------------------------------------------------------
# import


def test_import_encrypted_targets_file(tmp_path: Path, ec_key: PrivateKey) -> None:
    store = KeyStore(tmp_path)
    original = encode_key_file(ec_key, role="targets", gun=GUN, passphrase=SECRET)
    asked = Passphrases()
    record = store.import_key_file(original, asked)
    assert asked.asked == ["targets"]
    assert (record.canonical_id, record.role, list(record.guns)) == (
        ec_key.canonical_id,
        "targets",
        [GUN],
    )
    stored = store.file_of(record).read_bytes()
    assert stored != original  # re-encrypted (fresh salt and IV) ...
    assert (
        decode_key_file(stored, SECRET).canonical_id == ec_key.canonical_id
    )  # ... same passphrase
    assert mode(store.file_of(record)) == 0o600
    again = store.import_key_file(original, Passphrases())
    assert again == record and len(store.records()) == 1


def test_import_plain_root_key_gets_a_certificate(tmp_path: Path, rsa_key: PrivateKey) -> None:
    store = KeyStore(tmp_path)
    plain = encode_key_file(rsa_key, role="root", gun=None, passphrase=None)
    record = store.import_key_file(plain, Passphrases(), gun=GUN, now=NOW)
    assert record.certificate(GUN) is not None and record.certificate(GUN).keytype == "rsa-x509"
    assert read_key_file_headers(store.file_of(record).read_bytes()).encrypted
    assert (
        decode_key_file(store.file_of(record).read_bytes(), SECRET).canonical_id
        == rsa_key.canonical_id
    )


def test_import_needs_a_role_and_the_right_passphrase(tmp_path: Path, ed_key: PrivateKey) -> None:
    store = KeyStore(tmp_path)
    from ceremony.core.keys import pem_encode
    from ceremony.signing.keyfile import private_key_info

    no_role = pem_encode("PRIVATE KEY", private_key_info(ed_key))
    with pytest.raises(UsageError, match="--role"):
        store.import_key_file(no_role, Passphrases())
    record = store.import_key_file(no_role, Passphrases(), role="targets/releases")
    assert record.role == "targets/releases" and record.public.keytype == "ed25519"

    other = KeyStore(tmp_path / "other")
    encrypted = encode_key_file(ed_key, role="delegation", gun=None, passphrase=SECRET)
    with pytest.raises(WrongPassphrase):
        other.import_key_file(encrypted, Passphrases("wrong passphrase"))
    assert not other.private_dir.exists() or not any(other.private_dir.iterdir())
    with pytest.raises(UsageError, match="empty passphrase"):
        other.import_key_file(encrypted, Passphrases(""))


# ---------------------------------------------------------------------------
# signing


def test_signer_for_root_certificate_key(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    record = store.generate("root", GUN, SECRET, NOW)
    assert record.certificate(GUN) is not None
    asked = Passphrases()
    signer = store.signer_for(record.certificate(GUN), asked)
    assert isinstance(signer, KeySigner) and asked.asked == ["root"]
    signature = signer.sign(b"payload")
    assert signature.keyid == record.certificate(GUN).key_id
    assert verify_signature(record.certificate(GUN), signature, b"payload")
    # A certificate made elsewhere for the same key (e.g. by notary) also finds it.
    private = decode_key_file(store.file_of(record).read_bytes(), SECRET)
    foreign_cert = make_root_certificate(private, GUN, NOW - timedelta(days=1))
    other_signer = store.signer_for(foreign_cert, Passphrases())
    assert other_signer is not None and other_signer.key == foreign_cert
    assert store.signer_for(PrivateKey.generate_ecdsa().public_key(), Passphrases()) is None
    assert store.signer_for(Key("ecdsa-x509", "AAAA"), Passphrases()) is None
    with pytest.raises(WrongPassphrase):
        store.signer_for(record.certificate(GUN), Passphrases("nope-nope"))


def test_signer_for_a_bare_notary_key_file(tmp_path: Path, ec_key: PrivateKey) -> None:
    """A notary private/ folder copied in (no index) still signs."""
    store = KeyStore(tmp_path)
    store.private_dir.mkdir(parents=True)
    path = store.key_path(ec_key.canonical_id)
    path.write_bytes(encode_key_file(ec_key, role="targets", gun=GUN, passphrase=SECRET))
    asked = Passphrases()
    signer = store.signer_for(ec_key.public_key(), asked)
    assert signer is not None and asked.asked == ["targets"]
    assert verify_signature(signer.key, signer.sign(b"x"), b"x")


# ---------------------------------------------------------------------------
# export


def _walk(value: Any) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            out.append((k, v))
            out.extend(_walk(v))
    elif isinstance(value, list):
        for v in value:
            out.extend(_walk(v))
    return out


def test_public_keys_document(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    root = store.generate("root", GUN, SECRET, NOW)
    targets = store.generate("targets", GUN, SECRET, NOW)
    store.generate("targets", "example.com/other", SECRET, NOW)
    asked = Passphrases()
    document = store.public_keys(GUN, passphrase_for=asked, now=NOW)
    assert asked.asked == []  # the root certificate already exists
    assert [(e.role, e.canonical_id) for e in document.keys] == [
        ("root", root.canonical_id),
        ("targets", targets.canonical_id),
    ]
    assert document.for_role("root")[0].key == root.certificate(GUN)
    data = document.to_bytes()
    assert PublicKeysDocument.from_bytes(data) == document
    parsed = json.loads(data)
    assert parsed["media_type"] == MEDIA_TYPE
    assert all(v is None for k, v in _walk(parsed) if k == "private")
    assert b"PRIVATE" not in data and SECRET.encode() not in data
    only = store.public_keys(GUN, [targets.canonical_id[:8]], passphrase_for=asked, now=NOW)
    assert [e.canonical_id for e in only.keys] == [targets.canonical_id]
    with pytest.raises(InputRejected, match="No keys"):
        store.public_keys("example.com/none", passphrase_for=asked, now=NOW)
    with pytest.raises(InputRejected, match="expired"):
        store.public_keys(GUN, passphrase_for=asked, now=NOW + timedelta(days=4000))
    # One root key serves many repositories: named for another GUN, it is certified for it too.
    other = store.public_keys(
        "example.com/other", [root.canonical_id], passphrase_for=asked, now=NOW
    )
    (entry,) = other.keys
    assert describe_key(entry.key).common_name == "example.com/other"
    both = store.get(root.canonical_id)
    assert both is not None and set(both.guns) == {GUN, "example.com/other"}
    assert describe_key(entry.key).fingerprint == describe_key(root.certificate(GUN)).fingerprint


def test_export_makes_the_missing_root_certificate(tmp_path: Path, ec_key: PrivateKey) -> None:
    store = KeyStore(tmp_path)
    record = store.import_key_file(
        encode_key_file(ec_key, role="root", gun=None, passphrase=SECRET), Passphrases()
    )
    assert record.certificate(GUN) is None and record.guns == {}
    asked = Passphrases()
    document = store.public_keys(GUN, [record.canonical_id], passphrase_for=asked, now=NOW)
    assert asked.asked == ["root"]
    (entry,) = document.keys
    assert entry.key.keytype == "ecdsa-x509" and describe_key(entry.key).common_name == GUN
    stored = store.get(record.canonical_id)
    assert (
        stored is not None and stored.certificate(GUN) == entry.key and list(stored.guns) == [GUN]
    )
    with pytest.raises(WrongPassphrase):
        other = KeyStore(tmp_path / "b")
        rec = other.import_key_file(
            encode_key_file(ec_key, role="root", gun=None, passphrase=SECRET), Passphrases()
        )
        other.public_keys(
            GUN, [rec.canonical_id], passphrase_for=Passphrases("bad-bad-bad"), now=NOW
        )


# ---------------------------------------------------------------------------
# the document's strict parser


def _doc(ec_key: PrivateKey) -> dict[str, Any]:
    cert = make_root_certificate(ec_key, GUN, NOW)
    return PublicKeysDocument(GUN, (PublicKeyEntry("root", ec_key.canonical_id, cert),)).to_dict()


def _bad(doc: dict[str, Any]) -> None:
    with pytest.raises(MalformedInput) as info:
        PublicKeysDocument.from_bytes(json.dumps(doc).encode())
    assert "\n" not in info.value.message


def test_public_keys_document_is_strict(ec_key: PrivateKey) -> None:
    good = _doc(ec_key)
    assert PublicKeysDocument.from_bytes(json.dumps(good).encode()).gun == GUN
    _bad({**good, "extra": 1})
    _bad({**good, "media_type": "application/json"})
    _bad({**good, "gun": ""})
    _bad({**good, "gun": "example.com/other"})  # root certificate CN no longer matches
    _bad({**good, "keys": {}})
    entry = good["keys"][0]
    _bad({**good, "keys": [{**entry, "extra": True}]})
    _bad({**good, "keys": [{**entry, "canonical_id": "0" * 64}]})
    _bad({**good, "keys": [{**entry, "canonical_id": 5}]})
    _bad({**good, "keys": [{**entry, "role": "Bad Role!"}]})
    _bad({**good, "keys": [entry, entry]})
    with_private = {
        **entry,
        "key": {**entry["key"], "keyval": {**entry["key"]["keyval"], "private": "AAAA"}},
    }
    _bad({**good, "keys": [with_private]})
    bare_root = {**entry, "key": ec_key.public_key().to_dict()}
    _bad({**good, "keys": [bare_root]})
    for raw in (b"", b"[]", b"{", b"\xff"):
        with pytest.raises(MalformedInput):
            PublicKeysDocument.from_bytes(raw)
