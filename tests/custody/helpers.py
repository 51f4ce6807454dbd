"""Drive the real `ceremony` console script for custody tests; read share sheets as a person would."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.e2e.rig import one_sentence

CEREMONY = Path(sys.executable).parent / "ceremony"
GUN = "example.com/custody/app"
KEY_PASSPHRASE = "custody-key-passphrase"  # test-only secrets
NEW_PASSPHRASE = "custody-restored-passphrase"
SHARE_PASSPHRASE = "custody share passphrase"
_WORD = re.compile(r"(\d+)\s+([a-z]+)")

__all__ = ["GUN", "ceremony", "env", "key_files", "one_sentence", "sheet_words", "sheets"]


def env(**extra: str) -> dict[str, str]:
    """No inherited Notary or ceremony variables; the key passphrases set; plus `extra`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("NOTARY_", "CEREMONY_"))}
    base.update(
        NOTARY_ROOT_PASSPHRASE=KEY_PASSPHRASE,
        NOTARY_TARGETS_PASSPHRASE=KEY_PASSPHRASE,
        NOTARY_DELEGATION_PASSPHRASE=KEY_PASSPHRASE,
    )
    base.update(extra)
    return base


def ceremony(
    home: Path,
    *args: str,
    code: int = 0,
    stdin: str | None = None,
    environ: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`ceremony --home HOME ARGS`, stdin given or closed (no terminal); asserts the exit code."""
    proc = subprocess.run(
        [str(CEREMONY), "--home", str(home), *args],
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=environ if environ is not None else env(),
        timeout=120,
    )
    assert proc.returncode == code, f"{args} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def sheets(folder: Path) -> list[Path]:
    """The text sheets in `folder`, by share number."""
    return sorted(folder.glob("*.txt"), key=lambda p: int(p.stem.split("-share-")[1].split("-")[0]))


def sheet_words(sheet: Path) -> list[str]:
    """The numbered share words of a text sheet, read as a person reads them."""
    text = sheet.read_text()
    block = text.split("share words", 1)[1].split("\n\n", 1)[0]
    numbered = {int(n): w for line in block.splitlines()[1:] for n, w in _WORD.findall(line)}
    assert sorted(numbered) == list(range(1, 34)), numbered
    return [numbered[n] for n in sorted(numbered)]


def key_files(home: Path) -> set[str]:
    private = home / "private"
    return {p.name for p in private.iterdir()} if private.is_dir() else set()
