"""Every custody command leaves its line in the ceremony transcript, and no line holds a secret.

Backups, restores, liveness checks, retirement and token commands run through the real
CLI with known secrets (key passphrases, share passphrase, share words, home archive
passphrase, token PIN, a wrong PIN, a PIN typed into a URI); the transcripts are then
searched for every one of them, and each line is checked for the key it names.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from ceremony.offline.transcript import Entry, load_chain
from ceremony.signing.keyfile import encode_key_file
from ceremony.signing.private import PrivateKey
from tests.custody.helpers import (
    GUN,
    KEY_PASSPHRASE,
    NEW_PASSPHRASE,
    SHARE_PASSPHRASE,
    ceremony,
    env,
    sheet_words,
    sheets,
)
from tests.softhsm import PIN, make_softhsm

ARCHIVE_PASSPHRASE = "transcript-test archive passphrase"  # test-only secrets
WRONG_PIN = "97531864"
LABEL = "transcript-token"


def _command(entry: Entry) -> str:
    """The subcommand of a line, without its arguments (`key backup`, `backup home`)."""
    argv = list(entry.argv)
    if argv[0] == "--home":
        argv = argv[2:]
    words = [a for a in argv if not a.startswith("-")]
    return " ".join(words[:2]) if words[0] in ("key", "backup", "restore") else words[0]


def _lines(home: Path) -> list[Entry]:
    return list(load_chain(home).entries)


def _assert_no_secret(text: str, secrets: list[str], shares: list[list[str]]) -> None:
    for secret in secrets:
        assert secret not in text, f"a secret ({secret[:3]}…) is on the transcript"
    for words in shares:  # no run of three share words, whatever separates them
        for i in range(len(words) - 2):
            run = r"\W+".join(map(re.escape, words[i : i + 3]))
            assert not re.search(run, text), "share words are on the transcript"


def test_backup_restore_check_retire_are_recorded_without_a_secret(tmp_path: Path) -> None:
    home = tmp_path / "home"
    key_id = ceremony(home, "key", "generate", "targets", "--gun", GUN).stdout.strip()
    out = tmp_path / "sheets"
    with_share_passphrase = env(CEREMONY_SHARE_PASSPHRASE=SHARE_PASSPHRASE)
    ceremony(
        home,
        *("key", "backup", key_id, "--shares", "5", "--threshold", "3", "--out", str(out)),
        "--passphrase-protect",
        environ=with_share_passphrase,
    )
    shares = [sheet_words(p) for p in sheets(out)]
    (home / "private" / f"{key_id}.key").unlink()  # the disk dies: only the sheets are left
    (home / "keys" / f"{key_id}.json").unlink()
    restore_env = env(
        CEREMONY_SHARE_PASSPHRASE=SHARE_PASSPHRASE, NOTARY_TARGETS_PASSPHRASE=NEW_PASSPHRASE
    )
    restore = ("key", "restore", "--stdin", "--role", "targets", "--gun", GUN)
    # A mistyped word is refused (and recorded); then 3 good shares restore the key.
    typo = [*shares[0][:5], "zzzz", *shares[0][6:]]
    ceremony(
        home,
        *restore,
        "--expect-key",
        key_id,
        code=1,
        stdin="\n".join(" ".join(s) for s in (typo, shares[1], shares[2])) + "\n",
        environ=restore_env,
    )
    # Share words typed as arguments are refused, and the record leaves them out.
    ceremony(home, "key", "restore", *shares[1], code=2)
    restored = ceremony(
        home,
        *restore,
        "--expect-key",
        key_id,
        stdin="\n".join(" ".join(s) for s in shares[2:]) + "\n",
        environ=restore_env,
    )
    assert restored.stdout.strip() == key_id
    new_key = dict(env(), NOTARY_TARGETS_PASSPHRASE=NEW_PASSPHRASE)
    ceremony(home, "key", "check", "--out", str(tmp_path / "proof.json"), environ=new_key)
    archive = tmp_path / "home.backup"
    archive_env = env(CEREMONY_BACKUP_PASSPHRASE=ARCHIVE_PASSPHRASE)
    ceremony(home, "backup", "home", "--out", str(archive), environ=archive_env)
    second = tmp_path / "second"
    ceremony(second, "restore", "home", str(archive), environ=archive_env)
    ceremony(home, "key", "retire", key_id, "--confirm", key_id, "--force")

    lines = _lines(home)
    assert [_command(e) for e in lines] == [
        "key generate",
        "key backup",
        "key restore",
        "key restore",
        "key restore",
        "key check",
        "backup home",
        "key retire",
    ]
    assert [e.exit for e in lines] == [0, 0, 1, 2, 0, 0, 0, 0]
    assert all(e.keys == (key_id,) for i, e in enumerate(lines) if i not in (2, 3, 6))
    assert lines[2].error is not None and "not on the SLIP-39 word list" in lines[2].error
    assert lines[3].argv[-33:] == ("<redacted>",) * 33
    assert lines[3].error is not None and "unexpected extra argument" in lines[3].error
    archive_sha256 = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert lines[6].details["archive_sha256"] == archive_sha256
    assert "proof_sha256" in lines[5].details
    # The restored home carries the transcript as it was backed up, and records its restore.
    restored_lines = _lines(second)
    assert restored_lines[:6] == lines[:6]
    assert _command(restored_lines[6]) == "restore home"
    assert restored_lines[6].keys == (key_id,)
    assert restored_lines[6].details["archive_sha256"] == archive_sha256

    text = "".join((h / "transcript.jsonl").read_text() for h in (home, second))
    secrets = [KEY_PASSPHRASE, NEW_PASSPHRASE, SHARE_PASSPHRASE, ARCHIVE_PASSPHRASE]
    _assert_no_secret(text, secrets, shares)


def test_token_commands_are_recorded_without_the_pin(tmp_path: Path) -> None:
    hsm = make_softhsm(tmp_path / "hsm")
    hsm.init_token(LABEL)
    token = f"pkcs11:token={LABEL}"
    on_token = env(**hsm.env())
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    generate = ("key", "generate", "targets", "--gun", GUN, "--token")
    ceremony(
        alice,
        *generate,
        token,
        code=1,
        environ=env(**dict(hsm.env(), CEREMONY_PKCS11_PIN=WRONG_PIN)),
    )
    ceremony(alice, *generate, f"{token}?pin-value={PIN}", code=2, environ=on_token)
    key_id = ceremony(alice, *generate, token, environ=on_token).stdout.strip()
    adopted = ceremony(bob, "key", "import-token", "--token", token, environ=on_token)
    assert adopted.stdout.split() == [key_id]
    ceremony(bob, "key", "check", "--out", str(tmp_path / "proof.json"), environ=on_token)

    lines = _lines(alice)
    assert [(_command(e), e.exit) for e in lines] == [
        ("key generate", 1),
        ("key generate", 2),
        ("key generate", 0),
    ]
    assert "PIN" in (lines[0].error or "") and lines[2].keys == (key_id,)
    assert lines[1].argv[-1] == f"{token}?pin-value=<redacted>"
    assert [(_command(e), e.keys) for e in _lines(bob)] == [
        ("key import-token", (key_id,)),
        ("key check", (key_id,)),
    ]
    text = "".join((h / "transcript.jsonl").read_text() for h in (alice, bob))
    _assert_no_secret(text, [PIN, WRONG_PIN], [])


def test_key_file_and_trust_dir_imports_are_recorded_without_the_passphrase(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    one = PrivateKey(ec.generate_private_key(ec.SECP256R1()))
    key_file = tmp_path / "targets.key"
    key_file.write_bytes(encode_key_file(one, role="targets", gun=GUN, passphrase=KEY_PASSPHRASE))
    ceremony(home, "key", "import", str(key_file))
    other = PrivateKey(ec.generate_private_key(ec.SECP256R1()))
    trust_dir = tmp_path / "docker-trust"
    (trust_dir / "private").mkdir(parents=True)
    (trust_dir / "private" / f"{other.canonical_id}.key").write_bytes(
        encode_key_file(other, role="targets", gun=GUN, passphrase=KEY_PASSPHRASE)
    )
    ceremony(home, "key", "import", "--trust-dir", str(trust_dir))

    assert [(_command(e), e.exit, e.keys) for e in _lines(home)] == [
        ("key import", 0, (one.canonical_id,)),
        ("key import", 0, (other.canonical_id,)),
    ]
    _assert_no_secret((home / "transcript.jsonl").read_text(), [KEY_PASSPHRASE], [])
