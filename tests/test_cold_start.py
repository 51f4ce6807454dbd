"""`--help` is drawn without importing any command (cold start); it must say exactly what the
full app says, and must not pull in the heavy libraries."""

from __future__ import annotations

import subprocess
import sys

import pytest

FULL = {
    "ceremony": "from ceremony.cli import _register, app; _register()",
    "ceremony-online": "import online.cli; from online.cli_root import app",
}
QUICK = {
    "ceremony": "from ceremony.cli import main",
    "ceremony-online": "from online.cli_root import main",
}
HEAVY = ("cryptography", "httpx", "rich", "PIL", "qrcode", "online.cli", "ceremony.offline")
LOADED = (
    "sorted(m for m in sys.modules if m.split('.')[0] in H or m.rsplit('.', 1)[0] in H or m in H)"
)


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("name", sorted(FULL))
@pytest.mark.parametrize("argv", [["--help"], []])
def test_overview_is_the_full_help(name: str, argv: list[str]) -> None:
    full = _run(f"{FULL[name]}; app({argv!r}, prog_name={name!r})")
    quick = _run(f"import sys; sys.argv = [{name!r}, *{argv!r}]; {QUICK[name]}; main()")
    assert "Commands:" in full.stdout + full.stderr  # no arguments: help on stderr, exit 2
    # on a mismatch: .venv/bin/python scripts/update_overview.py
    assert (quick.stdout, quick.stderr, quick.returncode) == (
        full.stdout,
        full.stderr,
        full.returncode,
    )


@pytest.mark.parametrize("name", sorted(FULL))
def test_overview_imports_no_command(name: str) -> None:
    code = (
        f"import sys, atexit; sys.argv = [{name!r}, '--help']\n"
        f"H = {HEAVY!r}\n"
        f"atexit.register(lambda: print({LOADED}))\n"
        f"{QUICK[name]}; main()"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith("[]"), result.stdout[-500:]


def test_a_command_line_gets_the_full_app() -> None:
    result = _run(
        "import sys; sys.argv = ['ceremony-online', '--home', '/nonexistent', 'status', '--help']; "
        "from online.cli_root import main; main()"
    )
    assert result.returncode == 0
    assert "Usage: ceremony-online status" in result.stdout
