"""`ceremony key …` end to end: the real console script, so exit codes and streams are real."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

from typer.testing import CliRunner

import ceremony.cli
from ceremony.core.documents import PublicKeysDocument
from ceremony.core.keys import describe_key
from ceremony.signing.keyfile import encode_key_file
from ceremony.signing.private import PrivateKey
from tests.keys.conftest import GUN, clean_env, run_ceremony

SECRET = "cli-passphrase-5678"
HEX64 = re.compile(r"^[0-9a-f]{64}\n$")


def test_generate_list_export(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = clean_env(NOTARY_ROOT_PASSPHRASE=SECRET, NOTARY_TARGETS_PASSPHRASE=SECRET)
    root = run_ceremony(home, "key", "generate", "root", "--gun", GUN, env=env)
    assert root.returncode == 0, root.stderr
    assert HEX64.match(root.stdout), root.stdout
    root_id = root.stdout.strip()
    assert root_id in root.stderr and "root certificate" in root.stderr
    targets = run_ceremony(home, "key", "generate", "targets", "--gun", GUN, env=env)
    assert HEX64.match(targets.stdout)
    targets_id = targets.stdout.strip()

    listed = run_ceremony(home, "key", "list", env=clean_env())
    assert listed.returncode == 0 and listed.stderr == ""
    blocks = {  # one block per key: "<role> key FINGERPRINT (id ID)", what it serves, where
        re.search(r"  id +([0-9a-f]{64})", block).group(1): block  # type: ignore[union-attr]
        for block in listed.stdout.split("\n\n")[1:]
    }
    assert set(blocks) == {root_id, targets_id}
    root_block = blocks[root_id]
    assert root_block.startswith("root key") and f"serves      {GUN}" in root_block
    assert "root certificate SHA-256" in root_block and f"{root_id}.key" in root_block
    assert all(len(line) <= 80 for line in root_block.splitlines() if "lives in" not in line)

    out = tmp_path / "public-keys.json"
    exported = run_ceremony(
        home, "key", "export-public", "--gun", GUN, "--out", str(out), env=clean_env()
    )
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout == ""
    data = out.read_bytes()
    document = PublicKeysDocument.from_bytes(data)
    (root_entry,) = document.for_role("root")
    assert root_entry.canonical_id == root_id and describe_key(root_entry.key).common_name == GUN
    assert [e.canonical_id for e in document.for_role("targets")] == [targets_id]
    assert b"PRIVATE" not in data and SECRET.encode() not in data
    assert all(e["key"]["keyval"]["private"] is None for e in json.loads(data)["keys"])
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


def test_empty_store_says_so(tmp_path: Path) -> None:
    listed = run_ceremony(tmp_path / "empty", "key", "list")
    assert listed.returncode == 0
    assert "No keys" in listed.stdout


def test_import_prints_ids_and_is_idempotent(
    tmp_path: Path, ec_key: PrivateKey, ed_key: PrivateKey
) -> None:
    first, second = tmp_path / "a.key", tmp_path / "b.key"
    first.write_bytes(encode_key_file(ec_key, role="targets", gun=GUN, passphrase=SECRET))
    second.write_bytes(
        encode_key_file(ed_key, role="targets/releases", gun=None, passphrase=SECRET)
    )
    env = clean_env(NOTARY_TARGETS_PASSPHRASE=SECRET, NOTARY_DELEGATION_PASSPHRASE=SECRET)
    home = tmp_path / "home"
    proc = run_ceremony(home, "key", "import", str(first), str(second), env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [ec_key.canonical_id, ed_key.canonical_id]
    again = run_ceremony(home, "key", "import", str(first), env=env)
    assert again.returncode == 0 and "already in the store" in again.stderr
    assert again.stdout.split() == [ec_key.canonical_id]


def test_wrong_passphrase_at_import_is_one_line_exit_1(tmp_path: Path, ec_key: PrivateKey) -> None:
    key_file = tmp_path / "targets.key"
    key_file.write_bytes(encode_key_file(ec_key, role="targets", gun=GUN, passphrase=SECRET))
    wrong = "definitely-the-wrong-one"
    proc = run_ceremony(
        tmp_path / "home",
        "key",
        "import",
        str(key_file),
        env=clean_env(NOTARY_TARGETS_PASSPHRASE=wrong),
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: The passphrase for the targets key is wrong;")
    assert "Traceback" not in proc.stderr and wrong not in proc.stderr and SECRET not in proc.stderr
    assert not (tmp_path / "home" / "private").exists() or not any(
        (tmp_path / "home" / "private").iterdir()
    )


def test_malformed_key_file_is_exit_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.key"
    bad.write_bytes(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nrole: root\n\nAAAA")
    proc = run_ceremony(
        tmp_path / "home", "key", "import", str(bad), env=clean_env(NOTARY_ROOT_PASSPHRASE=SECRET)
    )
    assert proc.returncode == 1
    assert len(proc.stderr.splitlines()) == 1 and "truncated" in proc.stderr


def test_no_terminal_and_no_passphrase_aborts_with_4(tmp_path: Path) -> None:
    proc = run_ceremony(tmp_path / "home", "key", "generate", "root", "--gun", GUN)
    assert proc.returncode == 4
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "error: No passphrase for the root key: set NOTARY_ROOT_PASSPHRASE or run at a terminal."
    ]
    assert not (tmp_path / "home" / "private").exists()


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    runner = CliRunner()
    ceremony.cli._register()
    env = {"NOTARY_DELEGATION_PASSPHRASE": SECRET}
    missing_gun = runner.invoke(
        ceremony.cli.app, ["--home", home, "key", "generate", "root"], env=env
    )
    assert missing_gun.exit_code == 2
    bad_role = runner.invoke(
        ceremony.cli.app, ["--home", home, "key", "generate", "timestamp", "--gun", GUN], env=env
    )
    assert bad_role.exit_code == 2
    # the file is checked by the command (fsutil.read_input), so through the entry point
    missing_file = run_ceremony(tmp_path / "home", "key", "import", str(tmp_path / "nope.key"))
    assert missing_file.returncode == 2
    assert "nope.key does not exist" in missing_file.stderr
    ok = runner.invoke(
        ceremony.cli.app, ["--home", home, "key", "generate", "delegation", "--gun", GUN], env=env
    )
    assert ok.exit_code == 0, ok.output
    assert re.search("^[0-9a-f]{64}$", ok.stdout, re.MULTILINE)
    export = run_ceremony(
        Path(home),
        "key",
        "export-public",
        "--gun",
        "example.com/none",
        "--out",
        str(tmp_path / "x.json"),
    )
    assert export.returncode == 1 and "No keys for example.com/none" in export.stderr
