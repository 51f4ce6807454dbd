"""`ceremony key backup` / `key restore` through the real CLI: sheets, identity, every refusal.

The end-to-end proof that a restored key still publishes is in test_custody_e2e.py.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from ceremony.offline.sheets import parse_sheet, sheet_pages
from ceremony.qr.scan import decode_image
from ceremony.signing.keyfile import encode_key_file
from ceremony.signing.keystore import KeyRecord, KeyStore
from ceremony.signing.private import PrivateKey
from tests.custody.helpers import (
    GUN,
    KEY_PASSPHRASE,
    NEW_PASSPHRASE,
    SHARE_PASSPHRASE,
    ceremony,
    env,
    key_files,
    one_sentence,
    sheet_words,
    sheets,
)


def _generate(home: Path, role: str = "targets", gun: str = GUN) -> str:
    return ceremony(home, "key", "generate", role, "--gun", gun).stdout.strip()


def _backup(home: Path, key_id: str, out: Path, *extra: str, **environ: str) -> list[Path]:
    ceremony(
        home,
        "key",
        "backup",
        key_id,
        "--shares",
        "5",
        "--threshold",
        "3",
        "--out",
        str(out),
        *extra,
        environ=env(**environ),
    )
    return sheets(out)


def _lose(home: Path, key_id: str) -> None:
    """The key file and record are gone (a dead disk): only the sheets are left."""
    (home / "private" / f"{key_id}.key").unlink()
    (home / "keys" / f"{key_id}.json").unlink()


def _restore_files(home: Path, files: list[Path], *extra: str, code: int = 0, **environ: str):
    args = [a for f in files for a in ("--share-file", str(f))]
    return ceremony(
        home,
        "key",
        "restore",
        *args,
        *extra,
        code=code,
        environ=env(NOTARY_TARGETS_PASSPHRASE=NEW_PASSPHRASE, **environ),
    )


def _restore_stdin(home: Path, shares: list[list[str]], *extra: str, code: int = 0, **environ: str):
    return ceremony(
        home,
        "key",
        "restore",
        "--stdin",
        *extra,
        code=code,
        stdin="".join(" ".join(words) + "\n" for words in shares),
        environ=env(NOTARY_TARGETS_PASSPHRASE=NEW_PASSPHRASE, **environ),
    )


@pytest.fixture
def backed_up(tmp_path: Path) -> tuple[Path, str, list[Path]]:
    """A home with a targets key backed up as 3-of-5 sheets."""
    home = tmp_path / "home"
    key_id = _generate(home)
    return home, key_id, _backup(home, key_id, tmp_path / "sheets")


def test_backup_writes_secret_sheets_outside_the_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    key_id = _generate(home, "root")
    record_before = json.loads((home / "keys" / f"{key_id}.json").read_text())
    out = tmp_path / "usb" / "sheets"
    proc = ceremony(
        home, "key", "backup", key_id, "--shares", "5", "--threshold", "3", "--out", str(out)
    )
    assert "SECRETS" in proc.stderr and "outside the home" in proc.stderr
    written = [Path(line) for line in proc.stdout.split()]
    assert len(written) == 10 and {p.suffix for p in written} == {".txt", ".pdf"}
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in out.iterdir())
    assert sorted(out.iterdir()) == sorted(written)
    assert not any(p.suffix in (".txt", ".pdf") for p in home.rglob("*"))

    record = json.loads((home / "keys" / f"{key_id}.json").read_text())
    assert record["backup"] == "shares" and record_before["backup"] == "file"
    assert {k: v for k, v in record.items() if k != "backup"} == {
        k: v for k, v in record_before.items() if k != "backup"
    }

    store = KeyStore(home)
    held = store.get(key_id)
    assert held is not None
    certificate = held.certificate(GUN)
    assert certificate is not None
    words = []
    for k, path in enumerate(sheets(out), 1):
        text = path.read_text()
        assert f"share {k} of 5 (3 needed)" in text and f"{k} of 5, 3 needed" in text
        assert key_id in text and held.fingerprint in text
        assert "role         root" in text and f"gun          {GUN}" in text
        assert certificate.public_bytes.decode() in text  # the root certificate PEM
        assert f"key id {certificate.key_id}" in text
        assert "date         20" in text
        words.append(sheet_words(path))
        pdf = path.with_suffix(".pdf").read_bytes()
        assert pdf.startswith(b"%PDF") and b"CCITTFaxDecode" in pdf
        # The QR code drawn on the sheet reads back as the share's words.
        (page,) = sheet_pages(parse_sheet(text, path.name))
        assert decode_image(page) == [" ".join(words[-1])]
    assert len({tuple(w) for w in words}) == 5 and all(len(w) == 33 for w in words)
    assert KEY_PASSPHRASE not in "".join(p.read_text() for p in sheets(out))


def test_backup_refuses_a_folder_inside_the_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    key_id = _generate(home)
    for inside in (home, home / "sheets", home / "private"):
        proc = ceremony(
            home, "key", "backup", key_id, "--shares", "3", "--threshold", "2",
            "--out", str(inside), code=2,
        )  # fmt: skip
        assert "inside the ceremony home" in one_sentence(proc)
    assert not (home / "sheets").exists()
    assert json.loads((home / "keys" / f"{key_id}.json").read_text())["backup"] == "file"


def test_backup_refuses_an_rsa_key(tmp_path: Path) -> None:
    home = tmp_path / "home"
    private = PrivateKey(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    path = tmp_path / "rsa.key"
    path.write_bytes(encode_key_file(private, role="targets", gun=GUN, passphrase=KEY_PASSPHRASE))
    key_id = ceremony(home, "key", "import", str(path)).stdout.strip()
    proc = ceremony(
        home, "key", "backup", key_id, "--shares", "3", "--threshold", "2",
        "--out", str(tmp_path / "sheets"), code=1,
    )  # fmt: skip
    assert "RSA key" in one_sentence(proc) and "1,000 words" in proc.stderr
    assert not any((tmp_path / "sheets").glob("*"))


def test_backup_refuses_a_token_key_generated_without_backup(tmp_path: Path) -> None:
    home = tmp_path / "home"
    public = PrivateKey.generate_ecdsa().public_key()
    KeyStore(home).save(
        KeyRecord(
            public.key_id, "targets", public, "pkcs11:token=ceremony;id=%01", {GUN: None}, "none"
        )
    )
    proc = ceremony(
        home, "key", "backup", public.key_id, "--shares", "3", "--threshold", "2",
        "--out", str(tmp_path / "sheets"), code=1,
    )  # fmt: skip
    assert "it was generated on the token without backup" in one_sentence(proc)
    assert not (tmp_path / "sheets").exists()


def test_backup_refuses_a_threshold_it_cannot_make(tmp_path: Path) -> None:
    home = tmp_path / "home"
    key_id = _generate(home)
    for shares, threshold in (("3", "1"), ("3", "4"), ("17", "3")):
        proc = ceremony(
            home, "key", "backup", key_id, "--shares", shares, "--threshold", threshold,
            "--out", str(tmp_path / "sheets"), code=2,
        )  # fmt: skip
        one_sentence(proc)
    assert not any((tmp_path / "sheets").glob("*"))


def test_restore_from_sheets_gives_the_same_root_key_and_certificate(tmp_path: Path) -> None:
    home = tmp_path / "home"
    key_id = _generate(home, "root")
    record_before = (home / "keys" / f"{key_id}.json").read_text()
    files = _backup(home, key_id, tmp_path / "sheets")
    _lose(home, key_id)

    proc = _restore_files(
        home, [files[1], files[3], files[4]], NOTARY_ROOT_PASSPHRASE=NEW_PASSPHRASE
    )
    assert proc.stdout.strip() == key_id
    assert (home / "keys" / f"{key_id}.json").read_text() == record_before.replace(
        '"backup": "file"', '"backup": "shares"'
    )  # same GUN, same certificate (so the same certificate key id)
    key_file = home / "private" / f"{key_id}.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # Re-encrypted under the new passphrase: the old one no longer opens it.
    store = KeyStore(home)
    record = store.resolve(key_id)
    assert store.private_key(record, lambda _: NEW_PASSPHRASE).canonical_id == key_id
    with pytest.raises(Exception, match="passphrase"):
        store.private_key(record, lambda _: KEY_PASSPHRASE)

    # A key already in the home is not restored over.
    again = _restore_files(home, files[:3], code=1, NOTARY_ROOT_PASSPHRASE=NEW_PASSPHRASE)
    assert "already in this home" in one_sentence(again)


def test_typed_root_shares_need_the_certificate_and_get_it_back(tmp_path: Path) -> None:
    home = tmp_path / "home"
    key_id = _generate(home, "root")
    certificate = KeyStore(home).resolve(key_id).certificate(GUN)
    assert certificate is not None
    files = _backup(home, key_id, tmp_path / "sheets")
    _lose(home, key_id)
    typed = [sheet_words(f) for f in files[2:]]
    options = ("--role", "root", "--gun", GUN, "--expect-key", key_id)

    # No trust state here and no --certificate: a new certificate would be a new key id.
    proc = _restore_stdin(home, typed, *options, code=2, NOTARY_ROOT_PASSPHRASE=NEW_PASSPHRASE)
    assert "--certificate" in one_sentence(proc)
    assert key_files(home) == set()

    pem = tmp_path / "root.pem"  # copied from the sheet, as an operator would
    pem.write_bytes(certificate.public_bytes)
    proc = _restore_stdin(
        home, typed, *options, "--certificate", str(pem), NOTARY_ROOT_PASSPHRASE=NEW_PASSPHRASE
    )
    restored = KeyStore(home).resolve(key_id)
    assert restored.certificate(GUN) == certificate and restored.role == "root"


def test_ed25519_key_round_trip(tmp_path: Path) -> None:
    home = tmp_path / "home"
    private = PrivateKey(ed25519.Ed25519PrivateKey.generate())
    path = tmp_path / "ed.key"
    path.write_bytes(encode_key_file(private, role="targets", gun=GUN, passphrase=KEY_PASSPHRASE))
    key_id = ceremony(home, "key", "import", str(path)).stdout.strip()
    files = _backup(home, key_id, tmp_path / "sheets")
    assert "algorithm    ed25519" in files[0].read_text()
    _lose(home, key_id)
    typed = [sheet_words(f) for f in files[:3]]
    proc = _restore_stdin(
        home, typed, "--role", "targets", "--gun", GUN, "--algorithm", "ed25519",
        "--expect-key", key_id,
    )  # fmt: skip
    assert proc.stdout.strip() == key_id


def test_restore_refuses_fewer_shares_than_the_threshold(backed_up) -> None:
    home, key_id, files = backed_up
    _lose(home, key_id)
    proc = _restore_files(home, files[:2], code=1)
    assert "needs 3" in one_sentence(proc)
    # The same share twice counts once.
    proc = _restore_files(home, [files[0], files[0], files[1]], code=1)
    assert "Only 2 different share(s)" in one_sentence(proc)
    typed = [sheet_words(f) for f in files[:2]]
    proc = _restore_stdin(
        home, typed, "--role", "targets", "--gun", GUN, "--expect-key", key_id, code=1
    )
    assert "needs 3" in one_sentence(proc)
    assert key_files(home) == set()


def test_restore_refuses_shares_of_different_sets(tmp_path: Path, backed_up) -> None:
    home, key_id, files = backed_up
    other_set = _backup(home, key_id, tmp_path / "second-set")  # the same key, split again
    other_key = _backup(home, _generate(home), tmp_path / "other-key")
    _lose(home, key_id)
    proc = _restore_files(home, [files[0], files[1], other_set[2]], code=1)
    assert "different backup set" in one_sentence(proc)
    proc = _restore_files(home, [files[0], files[1], other_key[2]], code=1)
    assert "different sets" in one_sentence(proc)
    typed = [sheet_words(files[0]), sheet_words(files[1]), sheet_words(other_set[2])]
    proc = _restore_stdin(
        home, typed, "--role", "targets", "--gun", GUN, "--expect-key", key_id, code=1
    )
    assert "different backup set" in one_sentence(proc)
    assert f"{key_id}.key" not in key_files(home)


def test_restore_refuses_a_mistyped_word_and_a_bad_checksum(backed_up) -> None:
    home, key_id, files = backed_up
    _lose(home, key_id)
    options = ("--role", "targets", "--gun", GUN, "--expect-key", key_id)
    typed = [sheet_words(f) for f in files[:3]]

    mistyped = [list(w) for w in typed]
    mistyped[1][6] = mistyped[1][6][:-1] + ("x" if mistyped[1][6][-1] != "x" else "y")
    proc = _restore_stdin(home, mistyped, *options, code=1)
    sentence = one_sentence(proc)
    assert "Word 7 of share 2 is not on the SLIP-39 word list" in sentence
    assert mistyped[1][6] not in proc.stderr  # share words are never echoed

    swapped = [list(w) for w in typed]
    i = next(i for i in range(10, 32) if swapped[2][i] != swapped[2][i + 1])
    swapped[2][i], swapped[2][i + 1] = swapped[2][i + 1], swapped[2][i]
    proc = _restore_stdin(home, swapped, *options, code=1)
    assert "Share 3 fails its checksum" in one_sentence(proc)

    # The same in a share file: a word changed to another word of the list.
    damaged = files[0].parent.parent / "damaged.txt"
    text = files[0].read_text()
    word = sheet_words(files[0])[20]
    replacement = "academic" if word != "academic" else "acid"
    damaged.write_text(text.replace(f"21 {word}", f"21 {replacement}", 1))
    proc = _restore_files(home, [damaged, files[1], files[2]], code=1)
    assert "fails its checksum" in one_sentence(proc)
    assert key_files(home) == set()


def test_restore_refuses_a_share_of_another_key(tmp_path: Path, backed_up) -> None:
    home, key_id, _files = backed_up
    other_id = _generate(home)
    other = _backup(home, other_id, tmp_path / "other")
    _lose(home, key_id)
    typed = [sheet_words(f) for f in other[:3]]
    proc = _restore_stdin(
        home, typed, "--role", "targets", "--gun", GUN, "--expect-key", key_id, code=1
    )
    assert f"not key {key_id[:12]}" in one_sentence(proc)
    assert "shares of another key" in proc.stderr
    proc = _restore_files(home, other[:3], "--expect-key", key_id, code=1)
    assert f"not of key {key_id[:12]}" in one_sentence(proc)
    assert f"{key_id}.key" not in key_files(home)


def test_a_wrong_share_passphrase_is_caught_by_the_key_id(tmp_path: Path) -> None:
    home = tmp_path / "home"
    key_id = _generate(home)
    files = _backup(
        home, key_id, tmp_path / "sheets", "--passphrase-protect",
        CEREMONY_SHARE_PASSPHRASE=SHARE_PASSPHRASE,
    )  # fmt: skip
    assert "passphrase   yes" in files[0].read_text()
    _lose(home, key_id)

    # SLIP-39 cannot tell: a wrong passphrase gives another key, which the key id check refuses.
    proc = _restore_files(home, files[:3], code=1, CEREMONY_SHARE_PASSPHRASE="not the passphrase")
    sentence = one_sentence(proc)
    assert f"not key {key_id[:12]}" in sentence and "share passphrase is wrong" in sentence
    typed = [sheet_words(f) for f in files[2:]]
    options = ("--role", "targets", "--gun", GUN, "--expect-key", key_id)
    proc = _restore_stdin(home, typed, *options, code=1)  # no passphrase at all
    assert "share passphrase is wrong" in one_sentence(proc)
    # Sheets that say a passphrase is needed, and none given without a terminal: exit 4.
    proc = _restore_files(home, files[:3], code=4)
    assert "CEREMONY_SHARE_PASSPHRASE" in one_sentence(proc)
    assert key_files(home) == set()

    proc = _restore_stdin(home, typed, *options, CEREMONY_SHARE_PASSPHRASE=SHARE_PASSPHRASE)
    assert proc.stdout.strip() == key_id


def test_shares_never_come_from_the_command_line(backed_up) -> None:
    home, key_id, files = backed_up
    _lose(home, key_id)
    words = sheet_words(files[0])
    ceremony(home, "key", "restore", *words, code=2)
    # Typed shares without a terminal: the prompt fails at once instead of hanging.
    proc = ceremony(
        home, "key", "restore", "--role", "targets", "--gun", GUN, "--expect-key", key_id, code=4
    )
    one_sentence(proc)


def test_restore_onto_a_token_needs_its_module(backed_up) -> None:
    """Restoring onto a token is tested on SoftHSM2 in test_token_custody.py; without a
    PKCS#11 module it is refused before anything is written."""
    home, key_id, files = backed_up
    _lose(home, key_id)
    proc = _restore_files(home, files[:3], "--token", "pkcs11:token=ceremony", code=2)
    assert "--pkcs11-module" in one_sentence(proc)
    assert key_files(home) == set()


def test_a_damaged_or_altered_sheet_is_refused(backed_up) -> None:
    home, key_id, files = backed_up
    _lose(home, key_id)
    altered = files[0].parent / "altered.txt"
    altered.write_text(files[0].read_text().replace("role         targets", "role         r00t!"))
    proc = _restore_files(home, [altered, files[1], files[2]], code=1)
    assert "damaged" in one_sentence(proc)
    altered.write_text(files[0].read_text().replace(f"gun          {GUN}", "gun          a b"))
    proc = _restore_files(home, [altered, files[1], files[2]], code=1)
    one_sentence(proc)
    proc = _restore_files(home, [files[0].with_suffix(".pdf"), files[1], files[2]], code=1)
    assert "not a text share sheet" in one_sentence(proc)
    assert key_files(home) == set()
