"""Help text for people: no Python types, whole summaries, examples, --version, completion."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

BIN = Path(sys.executable).parent
TYPE_LEAK = re.compile(r"<(list\[|str>|int>|path>|file>|dir>|bool>)|\{[A-Za-z_.]+\}")


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COLUMNS="100", PATH=f"{BIN}:{os.environ['PATH']}")
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)


def _command_paths() -> list[tuple[str, ...]]:
    from ceremony.cli import _register
    from ceremony.cli import app as offline_app
    from online.cli import app as online_app

    _register()
    paths: list[tuple[str, ...]] = []

    def walk(prog: str, command: object, prefix: tuple[str, ...]) -> None:
        paths.append((prog, *prefix))
        for name, sub in getattr(command, "commands", {}).items():
            walk(prog, sub, (*prefix, name))

    walk("ceremony", typer.main.get_command(offline_app), ())
    walk("ceremony-online", typer.main.get_command(online_app), ())
    return paths


@pytest.mark.parametrize("path", _command_paths(), ids=" ".join)
def test_help_has_no_python_types_or_cut_summaries(path: tuple[str, ...]) -> None:
    proc = _run(*path, "--help")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert not TYPE_LEAK.search(text), text
    commands = text.split("Commands:", 1)[1] if "Commands:" in text else ""
    assert "..." not in commands, text


def test_version_examples_webcam_and_completion() -> None:
    for prog in ("ceremony", "ceremony-online"):
        version = _run(prog, "--version")
        assert version.returncode == 0 and version.stdout.startswith("notary-ceremony ")
        top = _run(prog, "--help").stdout
        assert "--install-completion" in top and "--show-completion" in top
        assert f"  {prog} " in top  # an example line
    assert "--qr webcam" in _run("ceremony", "review", "--help").stdout
    assert "Examples:" in _run("ceremony-online", "export", "--help").stdout
    assert "Examples:" in _run("ceremony", "sign", "--help").stdout
    script = _run("ceremony", "--show-completion", "bash")
    assert script.returncode == 0 and "complete" in script.stdout


def test_sign_without_a_request_says_what_to_give() -> None:
    proc = _run("ceremony", "sign")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: Give the request to sign: a file"), proc.stderr
    assert "--qr webcam" in proc.stderr
