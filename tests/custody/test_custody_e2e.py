"""Backups against the real notary-server: restored keys and restored homes sign releases the
real `notary` client accepts, and a restore never makes the machine forget what it signed."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from ceremony.offline.trust import TrustStore
from ceremony.signing.keystore import KeyStore
from tests.custody.helpers import NEW_PASSPHRASE, sheet_words, sheets
from tests.e2e.rig import Rig, full_ceremony, one_sentence, stage_text_target
from tests.e2e.test_ceremony_cli import publish_new
from tests.notary_env import NotaryCli, NotaryServer

BACKUP_PASSPHRASE = "home-backup-passphrase"  # test-only secret


def _key(home: Path, role: str) -> str:
    (record,) = [r for r in KeyStore(home).records() if r.role == role]
    return record.canonical_id


def _lose(home: Path, key_id: str) -> None:
    (home / "private" / f"{key_id}.key").unlink()
    (home / "keys" / f"{key_id}.json").unlink()


def _release(rig: Rig, name: str, env: dict[str, str] | None = None) -> None:
    """Stage a target, then export, sign (on `env`'s offline home) and publish it."""
    stage_text_target(rig, name, f"{name}\n")
    env = env or rig.env
    request, signatures = rig.tmp / f"{name}.request.json", rig.tmp / f"{name}.sig"
    rig.run("ceremony-online", "export", rig.gun, "--out", str(request))
    rig.run_env(env, "ceremony", "sign", str(request), "--out", str(signatures), "--yes")
    rig.run("ceremony-online", "publish", str(signatures))


def test_targets_key_restored_from_3_of_5_shares_publishes(
    notary_server: NotaryServer, notary_cli: NotaryCli, new_gun, tmp_path: Path
) -> None:
    rig = publish_new(notary_server, tmp_path, new_gun())
    home = tmp_path / "offline"
    targets_id = _key(home, "targets")
    record_before = (home / "keys" / f"{targets_id}.json").read_text()
    out = tmp_path / "sheets"
    rig.run(
        "ceremony", "key", "backup", targets_id, "--shares", "5", "--threshold", "3",
        "--out", str(out),
    )  # fmt: skip
    files = sheets(out)
    assert len(files) == 5
    _lose(home, targets_id)  # the machine's disk dies; the sheets are all that is left

    restored_env = dict(rig.env, NOTARY_TARGETS_PASSPHRASE=NEW_PASSPHRASE)
    proc = rig.run_env(
        restored_env, "ceremony", "key", "restore",
        "--share-file", str(files[0]), "--share-file", str(files[2]), "--share-file", str(files[4]),
    )  # fmt: skip
    assert proc.stdout.strip() == targets_id
    assert (home / "keys" / f"{targets_id}.json").read_text() == record_before.replace(
        '"backup": "file"', '"backup": "shares"'
    )

    _release(rig, "b", restored_env)
    listed = notary_cli.list_targets(rig.gun)
    assert listed["b"] == hashlib.sha256(b"b\n").hexdigest() and "a" in listed


def test_root_key_restored_from_typed_shares_keeps_its_certificate(
    notary_server: NotaryServer, notary_cli: NotaryCli, new_gun, tmp_path: Path
) -> None:
    """Typed shares carry no certificate: it comes from this home's trust state, so the
    restored root key signs a new root under the same certificate key id."""
    rig = publish_new(notary_server, tmp_path, new_gun())
    assert "a" in notary_cli.list_targets(rig.gun)  # the client now pins this root
    home = tmp_path / "offline"
    root_id = _key(home, "root")
    certificate_id = KeyStore(home).resolve(root_id).metadata_key(rig.gun).key_id
    out = tmp_path / "sheets"
    rig.run(
        "ceremony", "key", "backup", root_id, "--shares", "3", "--threshold", "2",
        "--out", str(out),
    )  # fmt: skip
    typed = "".join(" ".join(sheet_words(f)) + "\n" for f in sheets(out)[1:])
    _lose(home, root_id)

    restored_env = dict(rig.env, NOTARY_ROOT_PASSPHRASE=NEW_PASSPHRASE)
    proc = subprocess.run(
        ["ceremony", "key", "restore", "--stdin", "--role", "root", "--gun", rig.gun,
         "--expect-key", root_id[:16]],
        input=typed, capture_output=True, text=True, env=restored_env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == root_id
    assert KeyStore(home).resolve(root_id).metadata_key(rig.gun).key_id == certificate_id

    rig.run("ceremony-online", "refresh", rig.gun, "--role", "root")
    request, signatures = tmp_path / "root.request.json", tmp_path / "root.sig"
    rig.run("ceremony-online", "export", rig.gun, "--out", str(request))
    rig.run_env(restored_env, "ceremony", "sign", str(request), "--out", str(signatures), "--yes")
    rig.run("ceremony-online", "publish", str(signatures))
    stage_text_target(rig, "c", "c\n")
    full_ceremony(rig, "c")
    assert "c" in notary_cli.list_targets(rig.gun)  # the client accepted root v2


def _backup_home(rig: Rig, home: Path, out: Path) -> None:
    env = dict(rig.offline(home), CEREMONY_BACKUP_PASSPHRASE=BACKUP_PASSPHRASE)
    rig.run_env(env, "ceremony", "backup", "home", "--out", str(out))


def _restore_home(rig: Rig, home: Path, archive: Path, code: int = 0):
    env = dict(rig.offline(home), CEREMONY_BACKUP_PASSPHRASE=BACKUP_PASSPHRASE)
    return rig.run_env(env, "ceremony", "restore", "home", str(archive), code=code)


TRANSCRIPT_FILES = ("transcript.jsonl", ".transcript.lock")  # every command appends a line


def _files(home: Path) -> dict[str, bytes]:
    return {
        p.relative_to(home).as_posix(): p.read_bytes()
        for p in sorted(home.rglob("*"))
        if p.is_file() and p.name != ".lock" and p.name not in TRANSCRIPT_FILES
    }


def _transcript(home: Path) -> list[bytes]:
    return (home / "transcript.jsonl").read_bytes().splitlines()


def test_home_backup_restores_into_an_empty_home_that_signs(
    notary_server: NotaryServer, notary_cli: NotaryCli, new_gun, tmp_path: Path
) -> None:
    rig = publish_new(notary_server, tmp_path, new_gun())
    home, archive = tmp_path / "offline", tmp_path / "home.backup"
    _backup_home(rig, home, archive)
    assert archive.stat().st_mode & 0o077 == 0
    data = archive.read_bytes()
    assert data.startswith(b"notary-ceremony home backup\n\x01")
    assert b"PRIVATE KEY" not in data and b"signed_at" not in data  # encrypted

    # An archive inside the home, or over an existing file, is refused.
    env = dict(rig.env, CEREMONY_BACKUP_PASSPHRASE=BACKUP_PASSPHRASE)
    proc = rig.run_env(env, "ceremony", "backup", "home", "--out", str(home / "x"), code=2)
    assert "inside the ceremony home" in one_sentence(proc)
    rig.run_env(env, "ceremony", "backup", "home", "--out", str(archive), code=2)

    # A wrong passphrase opens nothing, and writes nothing.
    wrong = dict(rig.offline(tmp_path / "never"), CEREMONY_BACKUP_PASSPHRASE="wrong passphrase")
    proc = rig.run_env(wrong, "ceremony", "restore", "home", str(archive), code=1)
    assert "passphrase is wrong" in one_sentence(proc)
    # Nothing but the refusal's transcript line.
    assert {p.name for p in (tmp_path / "never").iterdir()} <= set(TRANSCRIPT_FILES)
    assert len(_transcript(tmp_path / "never")) == 1

    new_home = tmp_path / "replacement"
    _restore_home(rig, new_home, archive)
    assert _files(new_home) == _files(home)
    # The transcript as backed up goes on in the new home, with the restore's own line.
    restored_lines = _transcript(new_home)
    assert restored_lines[:-1] == _transcript(home)[: len(restored_lines) - 1]
    assert b'"restore","home"' in restored_lines[-1]
    assert (new_home / "private").stat().st_mode & 0o077 == 0
    assert all(p.stat().st_mode & 0o077 == 0 for p in (new_home / "private").iterdir())

    # Restoring the same archive again changes nothing.
    _restore_home(rig, new_home, archive)
    assert _files(new_home) == _files(home)

    # The replacement machine signs the next release, and it publishes.
    _release(rig, "b", rig.offline(new_home))
    assert "b" in notary_cli.list_targets(rig.gun)


def test_home_restore_refuses_a_home_with_newer_records_and_merges_an_older_one(
    notary_server: NotaryServer, notary_cli: NotaryCli, new_gun, tmp_path: Path
) -> None:
    rig = publish_new(notary_server, tmp_path, new_gun())
    home = tmp_path / "offline"
    old_archive, new_archive = tmp_path / "old.backup", tmp_path / "new.backup"
    _backup_home(rig, home, old_archive)
    # A second machine is restored from that backup now.
    second = tmp_path / "second"
    _restore_home(rig, second, old_archive)

    _release(rig, "b")  # this machine signs targets v2 after the backup
    _backup_home(rig, home, new_archive)

    # The old archive would make this machine forget it signed targets v2: refused by name.
    before = _files(home)
    lines_before = _transcript(home)
    proc = _restore_home(rig, home, old_archive, code=1)
    sentence = one_sentence(proc)
    assert rig.gun in sentence and "it signed targets v2" in sentence
    assert "v1" in sentence and "Nothing was restored" in sentence
    assert _files(home) == before
    assert _transcript(home)[:-1] == lines_before  # only the refusal's line was added
    assert b'"exit":1' in _transcript(home)[-1]

    # The second machine holds older records: the newer archive merges into it.
    extra = second / "notes.txt"
    extra.write_text("kept\n")
    proc = _restore_home(rig, second, new_archive)
    assert "merged" in proc.stderr
    ours, theirs = TrustStore(second).load(rig.gun), TrustStore(home).load(rig.gun)
    assert ours is not None and theirs is not None
    assert set(ours.requests) == set(theirs.requests) and len(ours.requests) == 2
    assert ours.versions == theirs.versions and ours.newest_signed("targets") == 2
    assert extra.read_text() == "kept\n"

    # Something signed only on the second machine, older than the archive's newest, is kept.
    state_path = next((second / "trust").glob("*/state.json"))
    state = json.loads(state_path.read_bytes())
    only_here = dict(next(iter(state["requests"].values())))
    state["requests"]["f" * 64] = only_here
    state_path.write_text(json.dumps(state, sort_keys=True, separators=(",", ":")))
    _restore_home(rig, second, new_archive)
    merged = TrustStore(second).load(rig.gun)
    assert merged is not None and "f" * 64 in merged.requests and len(merged.requests) == 3


def test_home_restore_never_overwrites_a_key_file_nor_revives_a_retired_key(
    notary_server: NotaryServer, new_gun, tmp_path: Path
) -> None:
    rig = Rig(notary_server, tmp_path, new_gun())
    rig.setup_repository()
    home, archive = tmp_path / "offline", tmp_path / "home.backup"
    _backup_home(rig, home, archive)
    root_id, targets_id = _key(home, "root"), _key(home, "targets")

    # This home's root key file was re-encrypted since (other bytes, same key): it is kept.
    root_file = home / "private" / f"{root_id}.key"
    changed = root_file.read_bytes() + b"\n"
    root_file.write_bytes(changed)
    # The targets key was retired here: its private half must not come back.
    targets_record = home / "keys" / f"{targets_id}.json"
    record = json.loads(targets_record.read_text())
    record["retired"] = "2025-01-01T00:00:00Z"
    targets_record.write_text(json.dumps(record))
    (home / "private" / f"{targets_id}.key").unlink()

    proc = _restore_home(rig, home, archive)
    assert root_file.read_bytes() == changed
    assert f"kept this home's private/{root_id}.key" in proc.stderr
    assert not (home / "private" / f"{targets_id}.key").exists()
    assert "retired" in proc.stderr
    assert json.loads(targets_record.read_text())["retired"] == "2025-01-01T00:00:00Z"
