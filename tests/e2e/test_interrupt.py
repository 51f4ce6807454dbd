"""Ctrl-C exits 4 with "interrupted; nothing was written." in both CLIs, prompts included.

Driven as an operator would: the CLI runs on a pty, and Ctrl-C is the byte 0x03 typed at
that terminal (the line discipline turns it into SIGINT), or SIGINT sent mid-command.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.pty_util import PtyProcess
from tests.notary_env import PASSPHRASE

BIN = Path(sys.executable).parent
MESSAGE = "interrupted; nothing was written."


def _env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NOTARY_", "CEREMONY_")) and k != "PYTHONWARNINGS"
    }
    env.update(
        {
            "PATH": f"{BIN}:{os.environ['PATH']}",
            "CEREMONY_HOME": str(tmp_path / "offline"),
            "CEREMONY_ONLINE_HOME": str(tmp_path / "online"),
        }
    )
    return env


@pytest.mark.parametrize("key", [b"\x03", b"\x04"], ids=["ctrl-c", "ctrl-d"])
def test_ctrl_c_at_a_passphrase_prompt_exits_4(tmp_path: Path, key: bytes) -> None:
    session = PtyProcess(
        ["ceremony", "key", "generate", "root", "--gun", "example.com/app"], _env(tmp_path)
    )
    session.read_until("New passphrase for the root key")
    session.send(key)
    code = session.finish()
    assert code == 4, session.output
    assert MESSAGE in session.output
    assert "Traceback" not in session.output
    private = tmp_path / "offline" / "private"
    assert not private.exists() or not any(private.iterdir())


def test_ctrl_c_at_a_yes_prompt_exits_4(tmp_path: Path) -> None:
    env = _env(tmp_path)
    generated = subprocess.run(
        ["ceremony", "key", "generate", "targets", "--gun", "example.com/app"],
        env=dict(env, NOTARY_TARGETS_PASSPHRASE=PASSPHRASE),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert generated.returncode == 0
    key_id = _first_key_id(tmp_path)
    session = PtyProcess(["ceremony", "key", "retire", key_id], env)
    session.read_until(":")
    time.sleep(0.3)
    session.send(b"\x03")
    code = session.finish()
    assert code == 4, session.output
    assert MESSAGE in session.output
    assert "Aborted!" not in session.output


def _first_key_id(tmp_path: Path) -> str:
    keys = sorted((tmp_path / "offline" / "private").glob("*.key"))
    assert keys
    return keys[0].stem


def test_sigint_mid_command_exits_4_online(tmp_path: Path) -> None:
    """A server that accepts and never answers: Ctrl-C while the command waits on it."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        env = dict(
            _env(tmp_path), CEREMONY_SERVER=f"http://127.0.0.1:{port}", CEREMONY_ALLOW_HTTP="1"
        )
        proc = subprocess.Popen(
            ["ceremony-online", "status", "example.com/app"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        listener.settimeout(60)
        connection, _ = listener.accept()  # the command is now waiting on the server
        try:
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=60)
        finally:
            connection.close()
    assert proc.returncode == 4, stderr
    assert stderr.strip().splitlines()[-1] == f"error: {MESSAGE}"
    assert "Traceback" not in stderr


def test_ctrl_c_mid_command_exits_4_offline(tmp_path: Path) -> None:
    """Ctrl-C typed while a `ceremony` command is busy (the real entry point and run_app)."""
    session = PtyProcess([sys.executable, "-c", _SLOW_COMMAND], _env(tmp_path))
    session.read_until("READY")
    session.send(b"\x03")
    code = session.finish()
    assert code == 4, session.output
    assert MESSAGE in session.output
    assert "Traceback" not in session.output


# The real `ceremony` entry point, with a command that blocks inside the library (as a long
# verification or QR render does) after saying READY.
_SLOW_COMMAND = """
import sys, time
import ceremony.cli as cli
from ceremony.cli import app
@app.command("slow-for-test")
def slow() -> None:
    print("READY", flush=True)
    time.sleep(60)
sys.argv = ["ceremony", "slow-for-test"]
cli.main()
"""
