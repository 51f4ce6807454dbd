"""Where tokens and backups meet: keys restored onto a token, token keys generated with share
sheets, token keys retired, and the backup state `key list` shows.

Each test makes its own SoftHSM2 token in its own SOFTHSM2_CONF (`tests/softhsm.py`) and
drives the real `ceremony` CLI as a subprocess; token contents are read back with
python-pkcs11 in a subprocess. A refusal is one sentence with its exit code and changes
nothing, neither in the home nor on the token.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ceremony.core.keys import verify_signature
from ceremony.core.liveness import challenge
from ceremony.core.metadata import Signature
from ceremony.signing.keystore import KeyStore
from tests.custody.helpers import GUN, ceremony, env, key_files, sheet_words, sheets
from tests.e2e.rig import full_ceremony, one_sentence, stage_text_target
from tests.e2e.test_ceremony_cli import publish_new
from tests.notary_env import NotaryCli, NotaryServer
from tests.softhsm import (
    CKO_CERTIFICATE,
    CKO_PRIVATE_KEY,
    CKO_PUBLIC_KEY,
    SoftHsm,
    make_softhsm,
)

LABEL = "custody"
TOKEN = f"pkcs11:token={LABEL}"


def token(tmp: Path) -> SoftHsm:
    hsm = make_softhsm(tmp / "hsm")
    hsm.init_token(LABEL)
    return hsm


def files_of(home: Path) -> dict[str, bytes]:
    """Every file of a home but lock files and the transcript, which every command appends
    to (tests/test_transcript.py)."""
    if not home.exists():
        return {}
    return {
        str(p.relative_to(home)): p.read_bytes()
        for p in sorted(home.rglob("*"))
        if p.is_file() and p.name not in (".lock", ".transcript.lock", "transcript.jsonl")
    }


def record(home: Path, key_id: str) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((home / "keys" / f"{key_id}.json").read_text())
    return loaded


def block_of(listing: str, key_id: str) -> str:
    """The `key list` block of one key."""
    (block,) = [b for b in listing.split("\n\n") if f"id          {key_id}" in b]
    return block


def token_id(home: Path, key_id: str) -> str:
    """The CKA_ID (hex) the key's record names."""
    uri = str(record(home, key_id)["uri"])
    return uri.split(";id=")[1].split(";")[0].split("?")[0].replace("%", "").lower()


def lose(home: Path, key_id: str) -> None:
    (home / "private" / f"{key_id}.key").unlink()
    (home / "keys" / f"{key_id}.json").unlink()


def certificate_der(rec: dict[str, object], gun: str) -> bytes:
    guns = rec["guns"]
    assert isinstance(guns, dict)
    pem = base64.b64decode(guns[gun]["keyval"]["public"])
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


# -- 1. restore onto a token --------------------------------------------------------


@pytest.mark.notary
def test_keys_restored_onto_the_token_sign_a_release_with_the_same_key_ids(
    notary_server: NotaryServer, notary_cli: NotaryCli, new_gun, tmp_path: Path
) -> None:
    rig = publish_new(notary_server, tmp_path, new_gun())
    home = tmp_path / "offline"
    store = KeyStore(home)
    ids = {r.role: r.canonical_id for r in store.records()}
    before = {role: record(home, cid) for role, cid in ids.items()}
    root_certificate = store.resolve(ids["root"]).metadata_key(rig.gun).key_id
    targets_key = store.resolve(ids["targets"]).metadata_key(rig.gun).key_id
    for role, cid in ids.items():
        rig.run(
            "ceremony", "key", "backup", cid, "--shares", "5", "--threshold", "3",
            "--out", str(tmp_path / f"sheets-{role}"),
        )  # fmt: skip
        lose(home, cid)  # the disk dies: the sheets are all that is left

    hsm = token(tmp_path)
    rig.env.update(hsm.env())
    for role, cid in ids.items():
        files = sheets(tmp_path / f"sheets-{role}")
        proc = rig.run(
            "ceremony", "key", "restore", "--token", TOKEN,
            "--share-file", str(files[0]), "--share-file", str(files[2]),
            "--share-file", str(files[4]),
        )  # fmt: skip
        assert proc.stdout.strip() == cid
        assert "sensitive and not extractable" in proc.stderr
        restored = record(home, cid)
        assert restored["backup"] == "shares" and restored["role"] == role
        assert str(restored["uri"]).startswith(f"pkcs11:token={LABEL};serial=")
        assert restored["public"] == before[role]["public"]
        assert restored["guns"] == before[role]["guns"]  # the same certificates
    assert key_files(home) == set()  # no key file: both keys live on the token only

    objects = hsm.objects(LABEL)
    privates = [o for o in objects if o["class"] == CKO_PRIVATE_KEY]
    assert {o["label"] for o in privates} == {f"notary root {rig.gun}", f"notary targets {rig.gun}"}
    for private in privates:
        assert private["sensitive"] is True and private["extractable"] is False
        assert private["value"] is None  # the token does not give the secret out
    (cert,) = [o for o in objects if o["class"] == CKO_CERTIFICATE]
    assert cert["id"] == token_id(home, ids["root"])
    assert bytes.fromhex(str(cert["value"])) == certificate_der(record(home, ids["root"]), rig.gun)
    assert store.resolve(ids["root"]).metadata_key(rig.gun).key_id == root_certificate

    listing = rig.run("ceremony", "key", "list").stdout
    for cid in ids.values():
        assert "  backup      shares: SLIP-39 share sheets" in block_of(listing, cid)

    # Signing needs no key passphrase now: only the token's PIN.
    for var in ("NOTARY_ROOT_PASSPHRASE", "NOTARY_TARGETS_PASSPHRASE"):
        rig.env.pop(var)
    rig.run("ceremony-online", "refresh", rig.gun, "--role", "root")
    request, signatures = tmp_path / "root.request.json", tmp_path / "root.sig"
    rig.run("ceremony-online", "export", rig.gun, "--out", str(request))
    rig.run("ceremony", "sign", str(request), "--out", str(signatures), "--yes")
    rig.run("ceremony-online", "publish", str(signatures))
    stage_text_target(rig, "b", "b\n")
    full_ceremony(rig, "b")
    # The served metadata carry signatures under the keys' old key ids.
    for role, key_id in (("root", root_certificate), ("targets", targets_key)):
        served = json.loads(notary_server.fetch(rig.gun, f"{role}.json"))
        assert key_id in {s["keyid"] for s in served["signatures"]}, role
    assert "b" in notary_cli.list_targets(rig.gun)  # the client accepted root v2 and the release


def test_a_restore_onto_the_token_that_cannot_be_done_writes_nothing(tmp_path: Path) -> None:
    hsm = token(tmp_path)
    home, out = tmp_path / "home", tmp_path / "sheets"
    environ = env(**hsm.env())
    cid = ceremony(home, "key", "generate", "targets", "--gun", GUN, environ=environ).stdout.strip()
    ceremony(
        home, "key", "backup", cid, "--shares", "3", "--threshold", "2", "--out", str(out),
        environ=environ,
    )  # fmt: skip
    files = sheets(out)
    restore = ("key", "restore", "--share-file", str(files[0]), "--share-file", str(files[1]))

    # The key is still here: refused before the token is touched.
    sentence = one_sentence(ceremony(home, *restore, "--token", TOKEN, code=1, environ=environ))
    assert "already in this home" in sentence
    lose(home, cid)
    before = files_of(home)

    # A wrong PIN: one sentence, nothing in the home, nothing on the token.
    wrong = env(**{**hsm.env(), "CEREMONY_PKCS11_PIN": "000000"})
    sentence = one_sentence(ceremony(home, *restore, "--token", TOKEN, code=1, environ=wrong))
    assert f"The PIN for token '{LABEL}'" in sentence and "is wrong" in sentence
    assert "000000" not in sentence
    assert files_of(home) == before and hsm.objects(LABEL) == []

    # No such token, or no module: one sentence each, exit 3 and 2.
    sentence = one_sentence(
        ceremony(home, *restore, "--token", "pkcs11:token=absent", code=3, environ=environ)
    )
    assert "No token 'absent' is present" in sentence
    no_module = {k: v for k, v in environ.items() if k != "CEREMONY_PKCS11_MODULE"}
    sentence = one_sentence(ceremony(home, *restore, "--token", TOKEN, code=2, environ=no_module))
    assert "--pkcs11-module" in sentence
    assert files_of(home) == before and hsm.objects(LABEL) == []

    # Typed shares checked against the key id given before anything is written: a wrong
    # key id (as when the share passphrase is wrong, or the shares are of another key).
    stdin = "".join(" ".join(sheet_words(f)) + "\n" for f in files[:2])
    sentence = one_sentence(
        ceremony(
            home,
            "key",
            "restore",
            "--stdin",
            "--role",
            "targets",
            "--gun",
            GUN,
            "--expect-key",
            "ab" * 8,
            "--token",
            TOKEN,
            code=1,
            stdin=stdin,
            environ=environ,
        )
    )
    assert "not key abababababab named on the sheet" in sentence
    assert files_of(home) == before and hsm.objects(LABEL) == []

    # The same shares with the right id restore it onto the token.
    proc = ceremony(
        home, "key", "restore", "--stdin", "--role", "targets", "--gun", GUN,
        "--expect-key", cid[:16], "--token", TOKEN, stdin=stdin, environ=environ,
    )  # fmt: skip
    assert proc.stdout.strip() == cid
    assert record(home, cid)["backup"] == "shares" and key_files(home) == set()


# -- 2. token keys generated with (and without) backup shares -----------------------


def test_a_token_key_generated_with_backup_shares_is_the_key_on_the_sheets(
    tmp_path: Path,
) -> None:
    hsm = token(tmp_path)
    home, out = tmp_path / "home", tmp_path / "sheets"
    environ = env(**hsm.env())
    proc = ceremony(
        home, "key", "generate", "root", "--gun", GUN, "--token", TOKEN,
        "--backup-shares", "3", "--backup-threshold", "2", "--backup-out", str(out),
        environ=environ,
    )  # fmt: skip
    root_id = proc.stdout.strip()
    said = " ".join(proc.stderr.split())
    assert "made in this computer's memory, not on the token" in said
    assert "It existed outside the token for the backup" in said
    assert "THESE SHEETS ARE SECRETS" in said
    assert len(sheets(out)) == 3 and len(list(out.glob("*.pdf"))) == 3
    rec = record(home, root_id)
    assert rec["backup"] == "shares" and str(rec["uri"]).startswith(f"pkcs11:token={LABEL};")
    assert key_files(home) == set()

    # On the token: the private key, sensitive and not extractable, and honestly not made
    # there; its public key and its root certificate under the same CKA_ID.
    objects = hsm.objects(LABEL)
    assert sorted(o["class"] for o in objects) == [CKO_CERTIFICATE, CKO_PUBLIC_KEY, CKO_PRIVATE_KEY]
    assert {o["id"] for o in objects} == {token_id(home, root_id)}
    (private,) = [o for o in objects if o["class"] == CKO_PRIVATE_KEY]
    assert private["sensitive"] is True and private["extractable"] is False
    assert private["local"] is False and private["label"] == f"notary root {GUN}"
    (cert,) = [o for o in objects if o["class"] == CKO_CERTIFICATE]
    assert bytes.fromhex(str(cert["value"])) == certificate_der(rec, GUN)

    # Without the options a token key has no backup, and says so.
    proc = ceremony(
        home, "key", "generate", "targets", "--gun", GUN, "--token", TOKEN, environ=environ
    )
    targets_id = proc.stdout.strip()
    assert "it has NO BACKUP" in " ".join(proc.stderr.split())
    assert record(home, targets_id)["backup"] == "none"

    # `key list` shows both states, every line within 80 columns.
    listing = ceremony(home, "key", "list", environ=environ).stdout
    root_block, targets_block = block_of(listing, root_id), block_of(listing, targets_id)
    assert "  backup      shares: SLIP-39 share sheets" in root_block
    assert "  backup      none: only on the token, no backup" in targets_block
    for block in (root_block, targets_block):
        assert all(len(line) <= 80 for line in block.splitlines()), block
        assert f"  lives in token '{LABEL}' (serial " in block and "\n           key id " in block

    # A token key is never split again: its sheets were made at generation, or there are none.
    again = ("key", "backup", root_id, "--shares", "3", "--threshold", "2")
    sentence = one_sentence(
        ceremony(home, *again, "--out", str(tmp_path / "again"), code=1, environ=environ)
    )
    assert "its share sheets were made when it was generated" in sentence
    sentence = one_sentence(
        ceremony(
            home,
            "key",
            "backup",
            targets_id,
            "--shares",
            "3",
            "--threshold",
            "2",
            "--out",
            str(tmp_path / "again"),
            code=1,
            environ=environ,
        )
    )
    assert "generated on the token without backup" in sentence

    # Any two sheets rebuild the very key on the token, with its certificate.
    other = tmp_path / "other"
    files = sheets(out)
    proc = ceremony(
        other, "key", "restore", "--share-file", str(files[1]), "--share-file", str(files[2]),
        environ=env(NOTARY_ROOT_PASSPHRASE="another-passphrase"),
    )  # fmt: skip
    assert proc.stdout.strip() == root_id
    assert record(other, root_id)["guns"] == rec["guns"]
    assert record(other, root_id)["public"] == rec["public"]


def test_generate_with_backup_refusals_write_nothing(tmp_path: Path) -> None:
    hsm = token(tmp_path)
    home, out = tmp_path / "home", tmp_path / "sheets"
    environ = env(**hsm.env())
    generate = ("key", "generate", "targets", "--gun", GUN)
    backup = ("--backup-shares", "3", "--backup-threshold", "2", "--backup-out", str(out))

    sentence = one_sentence(ceremony(home, *generate, *backup, code=2, environ=environ))
    assert "are for keys generated on a token (--token)" in sentence
    assert "`ceremony key backup`" in sentence
    sentence = one_sentence(
        ceremony(home, *generate, "--token", TOKEN, "--backup-shares", "3", code=2, environ=environ)
    )
    assert "needs all three of --backup-shares N, --backup-threshold M and --backup-out" in sentence
    inside = ("--backup-shares", "3", "--backup-threshold", "2", "--backup-out", str(home / "s"))
    sentence = one_sentence(
        ceremony(home, *generate, "--token", TOKEN, *inside, code=2, environ=environ)
    )
    assert "inside the ceremony home" in sentence
    too_many = ("--backup-shares", "2", "--backup-threshold", "3", "--backup-out", str(out))
    one_sentence(ceremony(home, *generate, "--token", TOKEN, *too_many, code=2, environ=environ))

    wrong = env(**{**hsm.env(), "CEREMONY_PKCS11_PIN": "000000"})
    sentence = one_sentence(
        ceremony(home, *generate, "--token", TOKEN, *backup, code=1, environ=wrong)
    )
    assert "is wrong" in sentence
    absent = ("--token", "pkcs11:token=absent")
    assert "No token 'absent'" in one_sentence(
        ceremony(home, *generate, *absent, *backup, code=3, environ=environ)
    )

    assert not out.exists() or not list(out.iterdir())  # no sheet of a key that is nowhere
    assert not (home / "keys").exists() or not list((home / "keys").iterdir())
    assert hsm.objects(LABEL) == []


def test_a_lost_token_keys_sheets_restore_it_onto_a_replacement_token(tmp_path: Path) -> None:
    hsm = token(tmp_path)
    home, out = tmp_path / "home", tmp_path / "sheets"
    environ = env(**hsm.env())
    root_id = ceremony(
        home, "key", "generate", "root", "--gun", GUN, "--token", TOKEN,
        "--backup-shares", "3", "--backup-threshold", "2", "--backup-out", str(out),
        environ=environ,
    ).stdout.strip()  # fmt: skip
    files = sheets(out)
    restore = ("key", "restore", "--share-file", str(files[0]), "--share-file", str(files[2]))

    # While its token is present, the key needs no restore: no second live copy is made.
    replacement = make_softhsm(tmp_path / "replacement")
    replacement.init_token("replacement")
    sentence = one_sentence(ceremony(home, *restore, "--token", TOKEN, code=1, environ=environ))
    assert f"lives on token '{LABEL}'" in sentence and "which is present" in sentence
    assert len(hsm.objects(LABEL)) == 3

    # The token is lost (this machine no longer sees it); a replacement token takes the key.
    moved = env(**{**hsm.env(), "SOFTHSM2_CONF": str(replacement.conf)})
    proc = ceremony(home, *restore, "--token", "pkcs11:token=replacement", environ=moved)
    assert proc.stdout.strip() == root_id
    rec = record(home, root_id)
    assert str(rec["uri"]).startswith("pkcs11:token=replacement;serial=")
    assert rec["backup"] == "shares" and key_files(home) == set()
    objects = replacement.objects("replacement")
    assert sorted(o["class"] for o in objects) == [CKO_CERTIFICATE, CKO_PUBLIC_KEY, CKO_PRIVATE_KEY]
    (cert,) = [o for o in objects if o["class"] == CKO_CERTIFICATE]
    assert bytes.fromhex(str(cert["value"])) == certificate_der(rec, GUN)

    # It signs there (each signature verified as it is made): a liveness proof.
    proof = tmp_path / "proof.json"
    ceremony(home, "key", "check", root_id[:16], "--out", str(proof), environ=moved)
    document = json.loads(proof.read_text())
    (signature,) = document["signatures"]
    message = challenge(document["when"], b"")
    public = KeyStore(home).resolve(root_id).public
    assert verify_signature(public, Signature.from_dict(signature), message)
    assert not verify_signature(public, Signature.from_dict(signature), message + b"x")


# -- 3. retiring a token key -------------------------------------------------------


def test_retire_removes_the_token_keys_objects(tmp_path: Path) -> None:
    hsm = token(tmp_path)
    home = tmp_path / "home"
    environ = env(**hsm.env())
    root_id = ceremony(
        home, "key", "generate", "root", "--gun", GUN, "--token", TOKEN, environ=environ
    ).stdout.strip()
    targets_id = ceremony(
        home, "key", "generate", "targets", "--gun", GUN, "--token", TOKEN, environ=environ
    ).stdout.strip()
    root_cka = token_id(home, root_id)
    everything = hsm.objects(LABEL)
    assert sorted(o["class"] for o in everything if o["id"] == root_cka) == [
        CKO_CERTIFICATE, CKO_PUBLIC_KEY, CKO_PRIVATE_KEY,
    ]  # fmt: skip
    before = files_of(home)
    retire = ("key", "retire", root_id[:16], "--confirm", root_id[:16])

    # The same rules as for key files: a key this machine cannot place needs --force, and
    # the acknowledgement must name the key.
    sentence = one_sentence(ceremony(home, *retire, code=1, environ=environ))
    assert "give --force once you are sure" in sentence
    sentence = one_sentence(
        ceremony(home, "key", "retire", root_id[:16], "--confirm", targets_id[:16], "--force",
                 code=1, environ=environ)
    )  # fmt: skip
    assert "does not name key" in sentence
    assert "--confirm" in one_sentence(
        ceremony(home, "key", "retire", root_id[:16], code=4, environ=environ)
    )

    # A wrong PIN, a missing token: one sentence, nothing changed in the home or on the token.
    wrong = env(**{**hsm.env(), "CEREMONY_PKCS11_PIN": "000000"})
    sentence = one_sentence(ceremony(home, *retire, "--force", code=1, environ=wrong))
    assert f"The PIN for token '{LABEL}'" in sentence and "is wrong" in sentence
    empty = make_softhsm(tmp_path / "pulled")
    pulled = env(**{**hsm.env(), "SOFTHSM2_CONF": str(empty.conf)})
    sentence = one_sentence(ceremony(home, *retire, "--force", code=3, environ=pulled))
    assert f"No token '{LABEL}' (serial " in sentence
    assert files_of(home) == before and hsm.objects(LABEL) == everything

    # Retired: the root key's private key, public key and certificate are gone from the
    # token; the targets key's objects are untouched; the record stays, marked retired.
    proc = ceremony(home, *retire, "--force", environ=environ)
    assert f"Removed 3 object(s) of key {root_id[:12]}" in proc.stdout
    left = hsm.objects(LABEL)
    assert root_cka not in {o["id"] for o in left}
    assert left == [o for o in everything if o["id"] != root_cka]
    assert record(home, root_id)["retired"] is not None
    block = block_of(ceremony(home, "key", "list", environ=environ).stdout, root_id)
    assert "RETIRED" in block and "backup      none" in block

    # Again: nothing left to remove, and it says so.
    proc = ceremony(home, *retire, "--force", environ=environ)
    assert "holds no object of key" in proc.stdout and "already retired" in proc.stdout
    assert hsm.objects(LABEL) == left
