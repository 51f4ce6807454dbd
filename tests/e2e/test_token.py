"""Keys on a PKCS#11 token (SoftHSM2): generated there, adopted from there, signing real ceremonies.

Each test makes its own token in its own SOFTHSM2_CONF (`tests/softhsm.py`). Every
signature is made by the `ceremony` CLI through the token and checked by the real
`notary` client; a refusal is one sentence with its exit code, and writes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ceremony.core.documents import PublicKeysDocument
from ceremony.core.keys import check_root_certificate, key_fingerprint, leaf_certificate
from tests.e2e.rig import Rig, full_ceremony, one_sentence, stage_text_target
from tests.notary_env import NotaryCli, NotaryServer
from tests.softhsm import CKO_CERTIFICATE, CKO_PRIVATE_KEY, MODULE, PIN, SoftHsm, make_softhsm

LABEL = "ceremony"
TOKEN = f"pkcs11:token={LABEL}"


def token_rig(server: NotaryServer, tmp: Path, gun: str) -> tuple[Rig, SoftHsm]:
    """A rig whose `ceremony` sees a fresh SoftHSM2 token labelled `ceremony`.

    The key passphrases are removed from its environment: a token key never needs one,
    so any attempt to make or open a key file fails.
    """
    hsm = make_softhsm(tmp / "hsm")
    hsm.init_token(LABEL)
    rig = Rig(server, tmp, gun)
    rig.env.update(hsm.env())
    for var in ("NOTARY_ROOT_PASSPHRASE", "NOTARY_TARGETS_PASSPHRASE"):
        rig.env.pop(var)
    return rig, hsm


def generate_on_token(rig: Rig, role: str, token: str = TOKEN) -> str:
    return rig.run(
        "ceremony", "key", "generate", role, "--gun", rig.gun, "--token", token
    ).stdout.strip()


def record(rig: Rig, key_id: str, home: Path | None = None) -> dict[str, object]:
    home = home or rig.tmp / "offline"
    loaded: dict[str, object] = json.loads((home / "keys" / f"{key_id}.json").read_text())
    return loaded


def files_of(home: Path) -> dict[str, bytes]:
    """Every file of a home but lock files (`sign` takes the trust store's lock first) and
    the transcript, which every command appends to (tests/test_transcript.py)."""
    return {
        str(p.relative_to(home)): p.read_bytes()
        for p in sorted(home.rglob("*"))
        if p.is_file() and p.name not in (".lock", ".transcript.lock", "transcript.jsonl")
    }


def public_der(rec: dict[str, object]) -> bytes:
    public = rec["public"]
    assert isinstance(public, dict)
    return base64.b64decode(public["keyval"]["public"])


def assert_no_private_key_file(home: Path) -> None:
    """No key file, and nothing that holds a private key, anywhere in the offline home."""
    assert not (home / "private").exists() or not list((home / "private").iterdir())
    for name, data in files_of(home).items():
        assert b"PRIVATE KEY" not in data, name
        assert not name.endswith(".key"), name


def init_request(rig: Rig) -> Path:
    """Root and targets keys on the token, a repository staged with one target, its request."""
    pub = rig.tmp / "public-keys.json"
    rig.run("ceremony", "key", "export-public", "--gun", rig.gun, "--out", str(pub))
    rig.run("ceremony-online", "init", rig.gun, "--public-keys", str(pub))
    stage_text_target(rig, "v1", "release 1\n")
    request = rig.tmp / "init.request.json"
    rig.run("ceremony-online", "export", rig.gun, "--out", str(request))
    return request


# -- (a) a root key generated on the token signs a whole ceremony -------------------


def test_root_generated_on_softhsm_signs_a_ceremony_the_notary_client_lists(
    notary_server: NotaryServer, notary_cli: NotaryCli, new_gun, tmp_path: Path
) -> None:
    rig, hsm = token_rig(notary_server, tmp_path, new_gun())
    root_id = generate_on_token(rig, "root")
    targets_id = generate_on_token(rig, "targets")
    home = tmp_path / "offline"

    # The records point at the token; no key file exists anywhere in the home.
    root = record(rig, root_id)
    assert str(root["uri"]).startswith(f"pkcs11:token={LABEL};serial=")
    assert f"module-path={MODULE}" in str(root["uri"])
    assert root["backup"] == "none" and record(rig, targets_id)["backup"] == "none"
    assert_no_private_key_file(home)
    listing = rig.run("ceremony", "key", "list").stdout
    serial = str(root["uri"]).split("serial=")[1].split(";")[0]
    assert listing.count(f"lives in token '{LABEL}' (serial {serial}),\n           key id ") == 2

    # On the token: both private keys non-extractable, sensitive, made there; the root
    # certificate stored with the root key's CKA_ID, identical to the record's.
    objects = hsm.objects(LABEL)
    privates = [o for o in objects if o["class"] == CKO_PRIVATE_KEY]
    assert len(privates) == 2
    for private in privates:
        assert private["sensitive"] is True and private["extractable"] is False
        assert private["never_extractable"] is True and private["local"] is True
    root_token_id = str(root["uri"]).split("id=")[1].split(";")[0].replace("%", "").lower()
    (cert_object,) = [o for o in objects if o["class"] == CKO_CERTIFICATE]
    assert cert_object["id"] == root_token_id
    certificates = root["guns"]
    assert isinstance(certificates, dict)
    pem = base64.b64decode(certificates[rig.gun]["keyval"]["public"])
    cert = x509.load_pem_x509_certificate(pem)
    assert cert.public_bytes(serialization.Encoding.DER).hex() == cert_object["value"]
    assert cert.subject.rfc4514_string() == f"CN={rig.gun}"
    cert.verify_directly_issued_by(cert)  # self-signed: signed by the token key

    # A whole ceremony: init and a first target, signed through the token, published.
    request = init_request(rig)
    rig.run("ceremony", "review", str(request))
    signatures = tmp_path / "init.sig"
    rig.run("ceremony", "sign", str(request), "--out", str(signatures), "--yes")
    rig.run("ceremony-online", "publish", str(signatures))
    assert notary_cli.list_targets(rig.gun) == {"v1": hashlib.sha256(b"release 1\n").hexdigest()}

    # A later change is signed by the targets key on the token alone.
    stage_text_target(rig, "v2", "release 2\n")
    full_ceremony(rig, "second")
    assert set(notary_cli.list_targets(rig.gun)) == {"v1", "v2"}

    # export-public for another repository certifies the root key for it through the token.
    other = f"{rig.gun}-other"
    pub = tmp_path / "other.json"
    rig.run("ceremony", "key", "export-public", "--gun", other, "--key", root_id, "--out", str(pub))
    (entry,) = PublicKeysDocument.from_bytes(pub.read_bytes()).keys
    assert key_fingerprint(entry.key) == key_fingerprint(
        PublicKeysDocument.from_bytes((tmp_path / "public-keys.json").read_bytes()).keys[0].key
    )
    assert check_root_certificate(entry.key, other, datetime.now(UTC)) is None
    leaf_certificate(entry.key).verify_directly_issued_by(leaf_certificate(entry.key))
    assert_no_private_key_file(home)


# -- (b) adopting keys that are already on a token -----------------------------------


_WRITE = """
import sys
from pathlib import Path
from cryptography.hazmat.primitives.asymmetric import ec
from ceremony.signing.keystore import KeyStore
from ceremony.signing.pkcs11uri import Pkcs11Uri
from ceremony.signing.private import PrivateKey
from ceremony.signing.tokenkeys import put_on_token
value, uri, pin, home, gun = sys.argv[1:]
private = PrivateKey(ec.derive_private_key(int(value, 16), ec.SECP256R1()))
record = put_on_token(
    KeyStore(Path(home)), private, "targets", {gun: None}, Pkcs11Uri.parse(uri), lambda alias: pin,
    backup="shares",
)
print(record.canonical_id)
"""


def test_import_token_adopts_keys_made_on_the_token(
    notary_server: NotaryServer, notary_cli: NotaryCli, new_gun, tmp_path: Path
) -> None:
    rig, hsm = token_rig(notary_server, tmp_path, new_gun())
    root_id = generate_on_token(rig, "root")
    targets_id = generate_on_token(rig, "targets")
    original_root = record(rig, root_id)
    bob_home = tmp_path / "bob"
    bob = rig.offline(bob_home)

    # The keys this tool made are adopted with their roles and GUN from their labels, and
    # the root key keeps the very certificate stored on the token.
    proc = rig.run_env(bob, "ceremony", "key", "import-token", "--token", TOKEN)
    assert sorted(proc.stdout.split()) == sorted([root_id, targets_id])
    adopted_root = record(rig, root_id, bob_home)
    assert adopted_root["guns"] == original_root["guns"]
    assert adopted_root["uri"] == original_root["uri"]
    assert adopted_root["role"] == "root" and adopted_root["backup"] == "none"
    adopted_targets = record(rig, targets_id, bob_home)
    assert adopted_targets["role"] == "targets" and adopted_targets["guns"] == {rig.gun: None}
    assert_no_private_key_file(bob_home)
    listing = rig.run_env(bob, "ceremony", "key", "list").stdout
    assert listing.count(f"lives in token '{LABEL}' (serial ") == 2

    # A key another tool put on the token carries no role: adopting everything is refused,
    # by name, before any record is written.
    other = ec.generate_private_key(ec.SECP256R1())
    pem = tmp_path / "other.pem"
    pem.write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    hsm.util(
        "--import",
        str(pem),
        "--token",
        LABEL,
        "--label",
        "release signer",
        "--id",
        "a1b2",
        "--pin",
        PIN,
    )
    before = files_of(bob_home)
    proc = rig.run_env(bob, "ceremony", "key", "import-token", "--token", TOKEN, code=2)
    assert "--role" in one_sentence(proc)
    assert files_of(bob_home) == before

    # That key, picked by its CKA_ID and given a role, is adopted with its real public key.
    proc = rig.run_env(
        bob,
        "ceremony",
        "key",
        "import-token",
        "--token",
        f"{TOKEN};id=%A1%B2",
        "--role",
        "delegation",
        "--gun",
        rig.gun,
    )
    (other_id,) = proc.stdout.split()
    adopted_other = record(rig, other_id, bob_home)
    other_spki = other.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert public_der(adopted_other) == other_spki
    assert adopted_other["role"] == "delegation" and adopted_other["guns"] == {rig.gun: None}

    # Bob's machine signs the whole first ceremony with the adopted keys.
    rig.env = bob
    request = init_request(rig)
    signatures = tmp_path / "bob.sig"
    rig.run("ceremony", "sign", str(request), "--out", str(signatures), "--yes")
    rig.run("ceremony-online", "publish", str(signatures))
    assert set(notary_cli.list_targets(rig.gun)) == {"v1"}


def test_a_key_written_to_the_token_keeps_its_id_and_signs(
    notary_server: NotaryServer, notary_cli: NotaryCli, new_gun, tmp_path: Path
) -> None:
    """`put_on_token` / `write_private_key` (the restore path, and generation with backup
    shares): an existing key goes onto the token as a non-extractable key, keeps its key
    id, is recorded with its backup state, is adopted elsewhere by its label, and signs."""
    rig, hsm = token_rig(notary_server, tmp_path, new_gun())
    root_id = generate_on_token(rig, "root")
    secret = ec.generate_private_key(ec.SECP256R1())
    value = format(secret.private_numbers().private_value, "x")
    home = tmp_path / "offline"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _WRITE,
            value,
            f"{TOKEN}?module-path={MODULE}",
            PIN,
            str(home),
            rig.gun,
        ],
        env={**rig.env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    key_id = proc.stdout.strip()
    spki = secret.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    written = record(rig, key_id)
    assert public_der(written) == spki
    assert written["backup"] == "shares" and written["role"] == "targets"
    assert str(written["uri"]).startswith(f"pkcs11:token={LABEL};serial=")
    assert_no_private_key_file(home)
    restored = [o for o in hsm.objects(LABEL) if o["label"] == f"notary targets {rig.gun}"]
    assert {o["class"] for o in restored} == {2, 3}
    (private,) = [o for o in restored if o["class"] == CKO_PRIVATE_KEY]
    assert private["sensitive"] is True and private["extractable"] is False
    assert private["local"] is False  # the token says honestly that it was made elsewhere

    # Another machine adopts both keys by their labels alone.
    carol = rig.offline(tmp_path / "carol")
    adopted = rig.run_env(carol, "ceremony", "key", "import-token", "--token", TOKEN).stdout
    assert sorted(adopted.split()) == sorted([root_id, key_id])
    assert record(rig, key_id, tmp_path / "carol")["role"] == "targets"

    request = init_request(rig)
    signatures = tmp_path / "init.sig"
    rig.run("ceremony", "sign", str(request), "--out", str(signatures), "--yes")
    rig.run("ceremony-online", "publish", str(signatures))
    assert set(notary_cli.list_targets(rig.gun)) == {"v1"}


# -- (c) refusals: one sentence, the right exit code, nothing written ----------------


def test_generate_refusals_write_nothing(
    notary_server: NotaryServer, new_gun, tmp_path: Path
) -> None:
    rig, hsm = token_rig(notary_server, tmp_path, new_gun())
    home = tmp_path / "offline"
    cmd = ("ceremony", "key", "generate", "root", "--gun", rig.gun, "--token")

    wrong = dict(rig.env, CEREMONY_PKCS11_PIN="000000")
    sentence = one_sentence(rig.run_env(wrong, *cmd, TOKEN, code=1))
    assert f"The PIN for token '{LABEL}'" in sentence and "is wrong" in sentence
    assert "few tries are left" in sentence  # SoftHSM2 raises CKF_USER_PIN_COUNT_LOW
    assert "000000" not in sentence

    sentence = one_sentence(rig.run(*cmd, "pkcs11:token=absent", code=3))
    assert "No token 'absent' is present" in sentence

    sentence = one_sentence(rig.run(*cmd, f"{TOKEN}?pin-value={PIN}", code=2))
    assert "must not carry the PIN" in sentence and PIN not in sentence

    no_module = {k: v for k, v in rig.env.items() if k != "CEREMONY_PKCS11_MODULE"}
    assert "--pkcs11-module" in one_sentence(rig.run_env(no_module, *cmd, TOKEN, code=2))
    sentence = one_sentence(
        rig.run(*cmd, TOKEN, "--pkcs11-module", str(tmp_path / "missing.so"), code=3)
    )
    assert "could not be loaded" in sentence

    no_pin = {k: v for k, v in rig.env.items() if k != "CEREMONY_PKCS11_PIN"}
    assert "CEREMONY_PKCS11_PIN" in one_sentence(rig.run_env(no_pin, *cmd, TOKEN, code=4))

    assert not (home / "keys").exists() or not list((home / "keys").iterdir())
    assert hsm.objects(LABEL) == []

    sentence = one_sentence(
        rig.run("ceremony", "key", "import-token", "--token", f"{TOKEN};id=%FF", code=3)
    )
    assert "holds no P-256 private key with id ff" in sentence


def test_wrong_pin_and_token_pulled_between_review_and_signing(
    notary_server: NotaryServer, notary_cli: NotaryCli, new_gun, tmp_path: Path
) -> None:
    rig, hsm = token_rig(notary_server, tmp_path, new_gun())
    generate_on_token(rig, "root")
    generate_on_token(rig, "targets")
    request = init_request(rig)
    rig.run("ceremony", "review", str(request))
    home = tmp_path / "offline"
    before = files_of(home)
    signatures = tmp_path / "init.sig"
    sign = ("ceremony", "sign", str(request), "--out", str(signatures), "--yes")

    # A wrong PIN: refused once, with what the token says about the tries left.
    sentence = one_sentence(rig.run_env(dict(rig.env, CEREMONY_PKCS11_PIN="999999"), *sign, code=1))
    assert "PIN" in sentence and "wrong" in sentence and "tries" in sentence
    assert not signatures.exists() and files_of(home) == before

    # The token pulled after the review: the module finds an empty token directory.
    empty = make_softhsm(tmp_path / "pulled")
    sentence = one_sentence(
        rig.run_env(dict(rig.env, SOFTHSM2_CONF=str(empty.conf)), *sign, code=3)
    )
    assert f"No token '{LABEL}' (serial " in sentence and "insert it" in sentence
    assert not signatures.exists() and files_of(home) == before

    # ... or its token directory taken away.
    hsm.tokens.rename(tmp_path / "away")
    hsm.tokens.mkdir()
    sentence = one_sentence(rig.run(*sign, code=3))
    assert f"No token '{LABEL}'" in sentence
    assert not signatures.exists() and files_of(home) == before

    # Put back, the same request signs (nothing was recorded) and publishes.
    hsm.tokens.rmdir()
    (tmp_path / "away").rename(hsm.tokens)
    rig.run(*sign)
    rig.run("ceremony-online", "publish", str(signatures))
    assert set(notary_cli.list_targets(rig.gun)) == {"v1"}


def test_key_not_on_the_token(notary_server: NotaryServer, new_gun, tmp_path: Path) -> None:
    rig, hsm = token_rig(notary_server, tmp_path, new_gun())
    generate_on_token(rig, "root")
    targets_id = generate_on_token(rig, "targets")
    request = init_request(rig)
    uri = str(record(rig, targets_id)["uri"])
    hsm.destroy(LABEL, uri.split("id=")[1].split(";")[0].replace("%", "").lower())
    home = tmp_path / "offline"
    before = files_of(home)
    signatures = tmp_path / "init.sig"
    proc = rig.run("ceremony", "sign", str(request), "--out", str(signatures), "--yes", code=3)
    sentence = one_sentence(proc)
    assert f"token '{LABEL}'" in sentence and "holds no EC private key with id" in sentence
    assert not signatures.exists() and files_of(home) == before
