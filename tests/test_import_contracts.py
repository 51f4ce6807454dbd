"""The import rules hold, and each one bites: a violation planted in a copy of the tree fails it.

The rules are import-linter contracts in pyproject.toml (`make lint` runs them); the air-gap
test (`tests/test_airgap.py`) checks the same boundary at run time.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT = str(Path(sys.executable).parent / "lint-imports")

PLANTED = {
    "The offline half never imports the online half or a network module": (
        "ceremony/qr/leak.py",
        "import ssl\n",
    ),
    "The online half imports only ceremony's core, QR and edge helpers": (
        "online/leak.py",
        "import ceremony.signing.keystore\n",
    ),
    "ceremony.core imports nothing outside itself but cryptography, and does no I/O": (
        "ceremony/core/leak.py",
        "import os\n",
    ),
    "Inside ceremony: cli over offline over signing over QR and edge helpers over the": (
        "ceremony/core/leak.py",
        "import ceremony.offline.trust\n",
    ),
}


def lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    return subprocess.run(
        [LINT, "--no-cache", "--config", str(tree / "pyproject.toml")],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_tree_keeps_every_contract() -> None:
    proc = lint(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 kept, 0 broken" in proc.stdout


@pytest.mark.parametrize("contract", sorted(PLANTED))
def test_a_planted_violation_breaks_its_contract(tmp_path: Path, contract: str) -> None:
    for package in ("ceremony", "online"):
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    path, line = PLANTED[contract]
    (tmp_path / path).write_text(line)
    proc = lint(tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    summary = " ".join(proc.stdout.split())
    assert re.search(re.escape(contract) + r"[^.]*? BROKEN", summary), proc.stdout
