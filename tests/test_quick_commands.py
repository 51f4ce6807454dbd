"""`ceremony review/sign/verify` register only their own commands (start-up), and the online
half never imports httpx's command-line client; every other command line gets the full app."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

LOADED = "print(sorted(m for m in sys.modules if m.startswith(('ceremony.cli.', 'httpx._main'))))"


def _run(code: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"CEREMONY_HOME": str(home), "PATH": "/usr/bin:/bin"},
    )


@pytest.mark.parametrize("command", ["review", "sign", "verify"])
def test_review_commands_load_only_their_module(command: str, tmp_path: Path) -> None:
    code = (
        "import sys, atexit\n"
        f"atexit.register(lambda: {LOADED})\n"
        f"sys.argv = ['ceremony', '--home', {str(tmp_path)!r}, {command!r}, '--help']\n"
        "from ceremony.cli import main; main()"
    )
    result = _run(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"Usage: ceremony {command}" in result.stdout
    loaded = result.stdout.rstrip().splitlines()[-1]
    assert "ceremony.cli.review_cmds" in loaded
    assert "ceremony.cli.backup_cmds" not in loaded and "ceremony.cli.key_cmds" not in loaded


def test_other_commands_get_the_full_app(tmp_path: Path) -> None:
    code = (
        "import sys, atexit\n"
        f"atexit.register(lambda: {LOADED})\n"
        f"sys.argv = ['ceremony', '--home', {str(tmp_path)!r}, 'key', 'list', '--help']\n"
        "from ceremony.cli import main; main()"
    )
    result = _run(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Usage: ceremony key list" in result.stdout
    assert "ceremony.cli.backup_cmds" in result.stdout.rstrip().splitlines()[-1]


def test_the_online_half_leaves_out_httpx_command_line_client(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "import online.client.http, httpx\n"
        "print(sys.modules.get('httpx._main', 'absent'), httpx.Client is not None)"
    )
    result = _run(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["None", "True"]
