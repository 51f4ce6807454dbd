"""`ceremony verify DIR --gun GUN --now T` as an operator runs it, on the real client's cache.

The cache comes from the real notary client (three targets, a
`targets/releases` delegation, rotated snapshot and root keys). Every run is a
subprocess with no stdin and a fresh `--home`; `--now` comes from the metadata.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from ceremony.core.gotime import GoTime
from ceremony.core.keys import describe_key
from ceremony.core.metadata import parse_any
from tests.core import repos
from tests.core.repos import NotaryRepo, assert_one_sentence
from tests.notary_env import NotaryServer
from tests.transcript_head import without_head

CEREMONY = Path(sys.executable).with_name("ceremony")


@pytest.fixture(scope="module")
def repo(notary_server: NotaryServer, tmp_path_factory: pytest.TempPathFactory) -> NotaryRepo:
    return repos.notary_repo(notary_server, tmp_path_factory)


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str


def now_arg(repo: NotaryRepo, delta: timedelta = timedelta(0)) -> str:
    return GoTime.from_datetime(repo.now + delta).format()


def ceremony(home: Path, *args: str, columns: int = 250) -> Run:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CEREMONY_")}
    env["COLUMNS"] = str(columns)  # rich lays tables out to this width when not on a terminal
    proc = subprocess.run(
        [str(CEREMONY), "--home", str(home), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    return Run(proc.returncode, proc.stdout, without_head(proc.stderr))


def verify(repo: NotaryRepo, directory: Path, home: Path, now: str | None = None, **kw: int) -> Run:
    return ceremony(
        home, "verify", str(directory), "--gun", repo.gun, "--now", now or now_arg(repo), **kw
    )


def table_rows(stdout: str) -> list[list[str]]:
    """Cells of every rich table body row (continuation lines folded into the row above)."""
    rows: list[list[str]] = []
    for line in stdout.splitlines():
        if not line.startswith("│"):
            continue
        cells = [c.strip() for c in line.strip("│").split("│")]
        if rows and not cells[0] and len(cells) == len(rows[-1]):
            rows[-1] = [f"{a}\n{b}" if b else a for a, b in zip(rows[-1], cells, strict=True)]
        else:
            rows.append(cells)
    return rows


def assert_error_line(run: Run, code: int, starts: str) -> None:
    assert run.code == code, run
    assert "Traceback" not in run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(f"error: {starts}"), lines[0]
    assert_one_sentence(lines[0].removeprefix("error: "))


def copy_cache(repo: NotaryRepo, tmp_path: Path) -> Path:
    target = tmp_path / "metadata"
    shutil.copytree(repo.cache_dir, target)
    return target


def test_verify_prints_roles_targets_and_delegations(repo: NotaryRepo, tmp_path: Path) -> None:
    run = verify(repo, repo.cache_dir, tmp_path / "home")
    assert run.code == 0, run
    assert run.stderr == ""
    rows = table_rows(run.stdout)
    roles = {r[0]: r for r in rows if len(r) == 5}
    targets = target_lines(run.stdout)

    files = repo.cache_files()
    assert set(roles) == {"root", "timestamp", "snapshot", "targets", "targets/releases"}
    root = parse_any(files["root"]).body
    delegation = parse_any(files["targets"]).body.delegations.role("targets/releases")
    assert delegation is not None
    role_keys = {r: root.roles[r].keyids for r in ("root", "timestamp", "snapshot", "targets")}
    role_keys["targets/releases"] = delegation.keyids
    for role, (_, version, expires, threshold, signed_by) in roles.items():
        env = parse_any(files[role])
        assert version == str(env.body.version)
        assert expires == env.body.expires.format()
        assert threshold == "1"
        signers = [s.keyid for s in env.signatures if s.keyid in role_keys[role]]
        assert signers  # every role is signed by a key of its own
        assert signed_by.split("\n") == signers  # full 64-digit key ids

    expected = {("targets", n): c for n, c in repos.TARGET_CONTENTS.items()}
    expected[("targets/releases", repos.RELEASE_NAME)] = repos.RELEASE_CONTENT
    assert set(targets) == set(expected)
    for (role, name), content in expected.items():
        length, sha256 = targets[(role, name)]
        assert length == str(len(content))
        assert sha256 == repo.listed[name]  # the digest `notary list` shows

    for kid in root.roles["root"].keyids:  # the root certificate to compare with a record
        fingerprint = describe_key(root.keys[kid]).certificate_sha256
        assert fingerprint and f"certificate SHA-256 {fingerprint}" in run.stdout
    keyid = parse_any(files["targets"]).body.delegations.roles[0].keyids[0]
    assert f"delegation targets/releases: threshold 1, paths '', keys {keyid}" in run.stdout
    assert f"{repo.gun}: verified at" in run.stdout


def target_lines(stdout: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(role, name) -> (length, sha256) from the plain lines after "N target(s): ..."."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if " target(s): " in line)
    count = int(lines[start].split(" ", 1)[0])
    width = max(len(line.split()[2]) for line in lines[start + 1 : start + 1 + count])
    out = {}
    for line in lines[start + 1 : start + 1 + count]:
        sha256, length, role = line[:64], line[66:78].strip(), line[80 : 80 + width].strip()
        out[(role, line[82 + width :])] = (length, sha256)
    return out


def test_verify_json_lists_the_same_repository(repo: NotaryRepo, tmp_path: Path) -> None:
    human = verify(repo, repo.cache_dir, tmp_path / "home")
    run = ceremony(
        tmp_path / "home", "verify", str(repo.cache_dir), "--gun", repo.gun,
        "--now", now_arg(repo), "--json",
    )  # fmt: skip
    assert run.code == 0, run
    doc = json.loads(run.stdout)
    assert doc["gun"] == repo.gun
    assert doc["root_trusted_on_first_use"] is True
    listed = {(t["role"], t["name"]): (str(t["length"]), t["sha256"]) for t in doc["targets"]}
    assert listed == target_lines(human.stdout)
    assert {r["name"] for r in doc["roles"]} == {
        "root", "timestamp", "snapshot", "targets", "targets/releases"
    }  # fmt: skip
    assert [d["name"] for d in doc["delegations"]] == ["targets/releases"]


def test_verify_prints_full_digests_at_80_columns(repo: NotaryRepo, tmp_path: Path) -> None:
    run = verify(repo, repo.cache_dir, tmp_path / "home", columns=80)
    assert run.code == 0, run
    for digest in repo.listed.values():
        assert digest in run.stdout
    for role in ("targets", "timestamp"):
        assert parse_any(repo.files[role]).body.expires.format() in run.stdout


def test_changed_target_length_fails_with_one_line(repo: NotaryRepo, tmp_path: Path) -> None:
    directory = copy_cache(repo, tmp_path)
    path = directory / "targets.json"
    original = path.read_bytes()
    at = original.index(b'"hello.txt":')
    edited = original[:at] + original[at:].replace(b'"length":6', b'"length":7', 1)
    assert edited != original
    path.write_bytes(edited)
    parse_any(edited)  # still valid JSON, still well-formed metadata
    run = verify(repo, directory, tmp_path / "home")
    assert_error_line(run, 1, "targets failed verification")
    assert run.stdout == ""


def test_expired_timestamp_fails(repo: NotaryRepo, tmp_path: Path) -> None:
    run = verify(repo, repo.cache_dir, tmp_path / "home", now=now_arg(repo, timedelta(days=2)))
    assert_error_line(run, 1, "timestamp failed verification: it expired")


def test_wrong_gun_fails(repo: NotaryRepo, tmp_path: Path) -> None:
    run = ceremony(
        tmp_path / "home", "verify", str(repo.cache_dir), "--gun", "example.com/core/other",
        "--now", now_arg(repo),
    )  # fmt: skip
    assert_error_line(run, 1, "root v3 failed verification")


def test_nonexistent_directory_is_a_usage_error(repo: NotaryRepo, tmp_path: Path) -> None:
    run = verify(repo, tmp_path / "no-such-dir", tmp_path / "home")
    assert_error_line(run, 2, "")


def test_bad_now_is_a_usage_error(repo: NotaryRepo, tmp_path: Path) -> None:
    run = verify(repo, repo.cache_dir, tmp_path / "home", now="next tuesday")
    assert run.code == 2, run
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize(
    ("name", "garbage", "starts"),
    [
        ("root.json", b"\x89PNG\r\n\x1a\n\x00garbage", "The root metadata is not UTF-8"),
        ("root.json", b"{not json", "The root metadata is not valid JSON"),
        (
            "timestamp.json",
            b"[1, 2, 3]",
            "The timestamp metadata is not a signed metadata envelope",
        ),
    ],
)
def test_garbage_file_fails_with_one_sentence(
    repo: NotaryRepo, tmp_path: Path, name: str, garbage: bytes, starts: str
) -> None:
    directory = copy_cache(repo, tmp_path)
    (directory / name).write_bytes(garbage)
    run = verify(repo, directory, tmp_path / "home")
    assert_error_line(run, 1, starts)
