"""The test-only write hook is inert when unset and can only pause or fail a write; temp
files are swept only when no live writer holds them."""

from __future__ import annotations

import errno
import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ceremony.edge import fsutil
from ceremony.edge.fsutil import WRITE_HOOK_ENV, atomic_write, sweep_temporaries


@pytest.fixture(autouse=True)
def _fresh_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fsutil, "_HOOK", {})


def test_unset_the_hook_writes_nothing_and_fails_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(WRITE_HOOK_ENV, raising=False)
    atomic_write(tmp_path / "f", b"x")
    assert (tmp_path / "f").read_bytes() == b"x" and os.listdir(tmp_path) == ["f"]


def test_a_failed_write_keeps_the_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "fail-at").write_text("3")  # the second write's temp file
    monkeypatch.setenv(WRITE_HOOK_ENV, str(hook))
    home = tmp_path / "home"
    atomic_write(home / "f", b"old")
    with pytest.raises(OSError) as raised:
        atomic_write(home / "f", b"new")
    assert raised.value.errno == errno.ENOSPC
    assert (home / "f").read_bytes() == b"old" and os.listdir(home) == ["f"]
    points = (hook / "points").read_text().splitlines()
    assert [p.split()[1] for p in points] == ["temp-written", "renamed", "temp-written"]


def test_a_point_after_a_write_never_fails_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "fail-at").write_text("2")  # "renamed": the write is done, nothing to fail
    monkeypatch.setenv(WRITE_HOOK_ENV, str(hook))
    atomic_write(tmp_path / "f", b"x")
    assert (tmp_path / "f").read_bytes() == b"x"


def test_a_paused_write_stops_before_its_rename(tmp_path: Path) -> None:
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "pause-at").write_text("1")
    target = tmp_path / "f"
    code = f"from pathlib import Path; from ceremony.edge.fsutil import atomic_write; atomic_write(Path({str(target)!r}), b'x')"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env=dict(os.environ, **{WRITE_HOOK_ENV: str(hook)})
    )
    try:
        for _ in range(600):
            if (hook / "paused").exists() and (hook / "paused").read_text().endswith("\n"):
                break
            assert proc.poll() is None
            subprocess.run(["sleep", "0.05"], check=True)
        assert not target.exists() and len(list(tmp_path.glob(".f.*.tmp"))) == 1
        assert sweep_temporaries(tmp_path) == 0  # a live (paused) writer's temp stays
    finally:
        proc.kill()
        proc.wait()
    assert sweep_temporaries(tmp_path) == 1 and not list(tmp_path.glob(".f.*.tmp"))


def test_a_stale_temp_of_the_same_file_goes_with_the_next_write(tmp_path: Path) -> None:
    stale = tmp_path / ".f.abc123.tmp"
    stale.write_bytes(b"half")
    held = tmp_path / ".f.live99.tmp"
    held.write_bytes(b"being written")
    fd = os.open(held, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a live writer
        atomic_write(tmp_path / "f", b"x")
        assert stale.exists()  # a home's temp files are swept under its lock instead
        atomic_write(tmp_path / "f", b"x", sweep_stale=True)
        assert not stale.exists() and held.exists()
    finally:
        os.close(fd)
