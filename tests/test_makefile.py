"""Setting up on a fresh Debian machine: what `make demo` does, and a clean package build."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _dry_run(target: str) -> str:
    proc = subprocess.run(
        ["make", "-n", "-B", target],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return proc.stdout


def test_demo_installs_neither_chromium_nor_test_extras_and_checks_venv_and_zbar() -> None:
    demo = _dry_run("demo")
    assert "chromium" not in demo and "softhsm2" not in demo and "faketime" not in demo
    assert "[online,test]" not in demo and "-e '.[online]'" in demo
    assert "ldconfig" not in demo
    assert "find_library" in demo and "libzbar.so.0" in demo
    assert "python3-venv" in demo


def test_tests_install_their_own_packages() -> None:
    test = _dry_run("test")
    assert "chromium" in test and "softhsm2" in test and "[online,test]" in test


def test_the_package_builds_without_a_license_deprecation_warning(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    output = proc.stdout + proc.stderr
    assert "project.license` as a TOML table is deprecated" not in output
    assert "License classifiers are deprecated" not in output
