"""`ceremony-online local-server`: start, use what it prints, stop with SIGTERM or SIGINT.

The real command as a subprocess: its `CEREMONY_SERVER`/`CEREMONY_TLS_CA` lines are
evaluated by a real shell and used by the real notary client and `ceremony-online`; the
stop must exit 0 and leave no process behind (checked in /proc, not by trusting the tool).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line mentions `text` (zombies excluded)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def start(directory: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [str(BIN / "ceremony-online"), "local-server", "--dir", str(directory), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(3)]
    return proc, "".join(lines)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_local_server_serves_what_it_prints_and_stops_cleanly(
    stop: signal.Signals, tmp_path: Path
) -> None:
    directory = tmp_path / "srv"
    proc, printed = start(directory)
    try:
        assert printed.startswith("CEREMONY_SERVER=https://127.0.0.1:"), printed
        assert "CEREMONY_TLS_CA=" in printed
        assert (directory / "env").read_text() == printed
        assert processes_mentioning(str(directory / "server-config.json")), "no notary-server"

        # `eval` the lines in a real shell; the real clients then use the server.
        payload = tmp_path / "hello.txt"
        payload.write_text("hello\n")
        script = (
            f'eval "$(cat {directory}/env)"; '
            f'notary -s "$CEREMONY_SERVER" --tlscacert "$CEREMONY_TLS_CA" -d {tmp_path}/trust '
            f"init -p example.com/local/app && "
            f'notary -s "$CEREMONY_SERVER" --tlscacert "$CEREMONY_TLS_CA" -d {tmp_path}/trust '
            f"add -p example.com/local/app hello {payload} && "
            f'notary -s "$CEREMONY_SERVER" --tlscacert "$CEREMONY_TLS_CA" -d {tmp_path}/trust '
            f"list example.com/local/app && "
            f"{BIN}/ceremony-online --home {tmp_path}/online status example.com/local/app"
        )
        env = dict(os.environ)
        env.pop("CEREMONY_SERVER", None)
        env.update(
            {f"NOTARY_{r}_PASSPHRASE": "local-test-pass" for r in ("ROOT", "TARGETS", "SNAPSHOT")}
        )
        used = subprocess.run(
            ["bash", "-c", script], env=env, capture_output=True, text=True, timeout=120
        )
        assert used.returncode == 0, used.stdout + used.stderr
        assert "hello" in used.stdout, used.stdout
        assert re.search(r"targets +v[0-9]+ ", used.stdout), used.stdout
    finally:
        proc.send_signal(stop)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "stopped" in err
    deadline = time.monotonic() + 5
    while processes_mentioning(str(directory)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_mentioning(str(directory)) == [], "a process outlived local-server"


def test_local_server_on_a_taken_port_says_so(tmp_path: Path) -> None:
    first, printed = start(tmp_path / "a")
    try:
        port = printed.split("127.0.0.1:", 1)[1].split()[0].strip("'")
        second = subprocess.run(
            [str(BIN / "ceremony-online"), "local-server", "--dir", str(tmp_path / "b"),
             "--port", port],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert second.returncode == 3, second.stderr
        assert "address already in use" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
    assert first.returncode == 0
    assert processes_mentioning(str(tmp_path)) == []


def test_local_server_without_dir_removes_its_temporary_folder(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [str(BIN / "ceremony-online"), "local-server"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline() + proc.stdout.readline()
    ca = Path(line.split("CEREMONY_TLS_CA=", 1)[1].split()[0].strip("'"))
    assert ca.exists()
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert not ca.parent.exists()
    assert processes_mentioning(str(ca.parent)) == []
