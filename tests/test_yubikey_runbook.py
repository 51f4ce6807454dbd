"""The YubiKey runbook cannot run here (no device), but its `ceremony` commands must exist.

Every `$ ceremony …` line of its console blocks is checked against the real CLI: the
subcommand must exist and take every option the line uses.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

RUNBOOK = Path(__file__).resolve().parent.parent / "runbooks" / "yubikey-root.md"
CEREMONY = str(Path(sys.executable).parent / "ceremony")
CONSOLE = re.compile(r"^```console\n(.*?)^```", re.S | re.M)


def ceremony_lines() -> list[list[str]]:
    return [
        shlex.split(line[2:])
        for block in CONSOLE.findall(RUNBOOK.read_text())
        for line in block.splitlines()
        if line.startswith("$ ceremony ")
    ]


def test_yubikey_runbook_uses_real_ceremony_commands_and_options() -> None:
    lines = ceremony_lines()
    assert len(lines) >= 2
    for words in lines:
        path = [w for w in words[1:3] if not w.startswith("-")]
        proc = subprocess.run(
            [CEREMONY, *path, "--help"], capture_output=True, text=True, timeout=60, check=False
        )
        assert proc.returncode == 0, f"{' '.join(words)}: {proc.stderr}"
        for option in (w for w in words if w.startswith("--")):
            taken = re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", proc.stdout)
            assert taken, f"{' '.join(words)}: no {option}"


def test_yubikey_runbook_documents_touch_policy_and_module() -> None:
    text = RUNBOOK.read_text()
    assert "ykman piv keys generate" in text and "--touch-policy always" in text
    assert "/usr/lib/x86_64-linux-gnu/libykcs11.so" in text and "9c" in text
