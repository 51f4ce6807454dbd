"""Secrets stay secret: never on a command line, never readable by others, never in a core
dump, a temp file or any output; an edited key file header is noticed."""

from __future__ import annotations

import base64
import os
import pty
import re
import signal
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer

from ceremony.signing.keyfile import decode_key_file
from tests.e2e.rig import BIN, Rig, full_ceremony, one_sentence, stage_text_target
from tests.notary_env import NotaryServer

SECRET_WORDS = re.compile(r"pass|pin\b|pin-|password|secret|mnemonic|phrase", re.IGNORECASE)
ROOT_PASS = "root-Secret-4f1a9c"
TARGETS_PASS = "targets-Secret-7b2e"


def _options(command: Any, path: str = "") -> list[tuple[str, str]]:
    found = [
        (f"{path} {command.name}".strip(), opt)
        for param in command.params
        if not getattr(param, "is_flag", False)  # a flag carries no value, so no secret
        for opt in (*param.opts, *param.secondary_opts)
    ]
    for sub in (getattr(command, "commands", None) or {}).values():
        if True:
            found.extend(_options(sub, f"{path} {command.name}".strip()))
    return found


def test_no_option_of_either_cli_takes_a_passphrase_or_pin() -> None:
    from ceremony.cli import _register
    from ceremony.cli import app as offline
    from online.cli import app as online

    _register()
    options = _options(typer.main.get_command(offline)) + _options(typer.main.get_command(online))
    assert len(options) > 60  # the walk reached every subcommand
    assert [o for o in options if SECRET_WORDS.search(o[1])] == []


def _modes(root: Path) -> dict[str, int]:
    return {
        str(p.relative_to(root.parent)): stat.S_IMODE(p.lstat().st_mode)
        for p in [root, *root.rglob("*")]
        if not p.is_symlink()
    }


@pytest.mark.notary
def test_homes_and_key_files_are_private_under_umask_000(
    notary_server: NotaryServer, new_gun: Callable[[], str], tmp_path: Path
) -> None:
    rig = Rig(notary_server, tmp_path, new_gun())

    def run(*cmd: str) -> None:
        proc = subprocess.run(
            cmd,
            env=rig.env,
            capture_output=True,
            text=True,
            timeout=300,
            preexec_fn=lambda: os.umask(0),
        )
        assert proc.returncode == 0, proc.stderr

    run("ceremony", "key", "generate", "root", "--gun", rig.gun)
    run("ceremony", "key", "generate", "targets", "--gun", rig.gun)
    pub = tmp_path / "pub.json"
    run("ceremony", "key", "export-public", "--gun", rig.gun, "--out", str(pub))
    run("ceremony-online", "init", rig.gun, "--public-keys", str(pub))
    run("ceremony-online", "add", rig.gun, "a", "--sha256", "ab" * 32, "--length", "1")
    offline = _modes(tmp_path / "offline")
    assert len(offline) > 3
    assert {p: f"{m:04o}" for p, m in offline.items() if m & 0o077} == {}
    # The online home holds no secret: its folders are closed (0700), which covers its files.
    online = tmp_path / "online"
    folders = {p: m for p, m in _modes(online).items() if (online.parent / p).is_dir()}
    assert len(folders) > 1
    assert {p: f"{m:04o}" for p, m in folders.items() if m & 0o077} == {}
    keys = list((tmp_path / "offline" / "private").glob("*.key"))
    assert len(keys) == 2 and all(_modes(k)[k.name] == 0o600 for k in keys)


def test_an_offline_home_open_to_others_is_closed_with_one_note(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o777)
    proc = subprocess.run(
        [str(BIN / "ceremony"), "--home", str(home), "key", "list"],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    notes = [  # the transcript head line is printed after every command
        line
        for line in proc.stderr.splitlines()
        if line.strip() and not line.startswith("transcript:")
    ]
    assert notes == [f"note: The home {home} was open to other users (mode 0777); it is now 0700."]


def test_the_offline_process_allows_no_core_dump(tmp_path: Path) -> None:
    """A `key generate` waiting at its passphrase prompt: its limits, read from /proc."""
    parent, child = pty.openpty()
    env = {k: v for k, v in os.environ.items() if "PASSPHRASE" not in k}
    proc = subprocess.Popen(
        [str(BIN / "ceremony"), "--home", str(tmp_path / "h"), "key", "generate", "root", "--gun",
         "example.com/core/app"],
        stdin=child, stdout=child, stderr=child, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        seen = b""
        while b"assphrase" not in seen and time.monotonic() < deadline:
            seen += os.read(parent, 1024)
        assert b"assphrase" in seen
        limits = Path(f"/proc/{proc.pid}/limits").read_text()
        core = next(line for line in limits.splitlines() if line.startswith("Max core file size"))
        assert core.split()[4:6] == ["0", "0"], core
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        os.close(parent)
        os.close(child)


def _private_scalars(home: Path) -> list[bytes]:
    """Every private key of the home, decrypted here, as bytes that could leak."""
    leaks = []
    for path in (home / "private").glob("*.key"):
        data = path.read_bytes()
        passphrase = ROOT_PASS if b"role: root" in data else TARGETS_PASS
        native = decode_key_file(data, passphrase).native
        value = native.private_numbers().private_value.to_bytes(32, "big")  # type: ignore[union-attr]
        leaks += [value, value.hex().encode(), base64.b64encode(value)]
    return leaks


@pytest.mark.notary
def test_no_passphrase_or_private_key_reaches_a_file_temp_dir_or_output(
    notary_server: NotaryServer, new_gun: Callable[[], str], tmp_path: Path
) -> None:
    rig = Rig(notary_server, tmp_path, new_gun())
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    rig.env.update(
        {
            "TMPDIR": str(scratch),
            "NOTARY_ROOT_PASSPHRASE": ROOT_PASS,
            "NOTARY_TARGETS_PASSPHRASE": TARGETS_PASS,
        }
    )
    outputs: list[str] = []

    def run(*cmd: str, code: int = 0, env: dict[str, str] | None = None) -> str:
        proc = rig.run_env(env or rig.env, *cmd, code=code)
        outputs.extend((proc.stdout, proc.stderr))
        return proc.stderr

    run("ceremony", "key", "generate", "root", "--gun", rig.gun)
    run("ceremony", "key", "generate", "targets", "--gun", rig.gun)
    pub = tmp_path / "pub.json"
    run("ceremony", "key", "export-public", "--gun", rig.gun, "--out", str(pub))
    run("ceremony-online", "init", rig.gun, "--public-keys", str(pub))
    full_ceremony(rig, "first")
    stage_text_target(rig, "app", "v1")
    request = tmp_path / "second.request.json"
    run("ceremony-online", "export", rig.gun, "--out", str(request))
    sig = str(tmp_path / "second.sig")

    # error paths: a wrong passphrase, a corrupted key file, a kill mid-sign
    wrong = dict(rig.env, NOTARY_TARGETS_PASSPHRASE="wrong-" + TARGETS_PASS[::-1])
    err = run("ceremony", "sign", str(request), "--out", sig, "--yes", code=1, env=wrong)
    assert "passphrase" in err and TARGETS_PASS not in err
    targets_file = next(
        p
        for p in (tmp_path / "offline" / "private").glob("*.key")
        if b"role: targets" in p.read_bytes()
    )
    good = targets_file.read_bytes()
    lines = good.splitlines(keepends=True)
    body = [
        i for i, line in enumerate(lines) if line and not line.startswith(b"-") and b":" not in line
    ]
    middle = body[len(body) // 2]
    lines[middle] = bytes(reversed(lines[middle].rstrip(b"\n"))) + b"\n"
    targets_file.write_bytes(b"".join(lines))
    proc = subprocess.run(
        ["ceremony", "sign", str(request), "--out", sig, "--yes"],
        env=rig.env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    outputs.extend((proc.stdout, proc.stderr))
    assert proc.returncode in (1, 3) and "Traceback" not in proc.stderr, proc.stderr
    one_sentence(proc)
    targets_file.write_bytes(good)
    killed = subprocess.Popen(
        ["ceremony", "sign", str(request), "--out", sig, "--yes"],
        env=rig.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1.5)
    killed.kill()
    out, errs = killed.communicate()
    outputs.extend((out.decode(errors="replace"), errs.decode(errors="replace")))
    run("ceremony", "sign", str(request), "--out", sig, "--yes", code=0) if not Path(
        sig
    ).exists() else None
    if Path(sig).exists():
        run("ceremony-online", "publish", sig)

    needles = [ROOT_PASS.encode(), TARGETS_PASS.encode(), *_private_scalars(tmp_path / "offline")]
    needles += [n.encode("utf-16-le") for n in (ROOT_PASS, TARGETS_PASS)]
    plain_pem = re.compile(rb"-----BEGIN (EC |RSA |)PRIVATE KEY-----")
    scanned = 0
    for folder in (tmp_path / "offline", tmp_path / "online", scratch, tmp_path):
        for path in folder.rglob("*"):
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                scanned += 1
                assert not plain_pem.search(data), path
                for needle in needles:
                    assert needle not in data, (path, needle[:4])
    text = "\n".join(outputs).encode()
    for needle in needles:
        assert needle not in text
    assert not plain_pem.search(text)
    assert scanned > 10
    assert list(scratch.iterdir()) == []


@pytest.mark.notary
@pytest.mark.parametrize(
    ("header", "edited"), [(b"gun: ", b"gun: example.com/other/app"), (b"role: ", b"role: root")]
)
def test_an_edited_key_file_header_is_noticed_before_signing(
    notary_server: NotaryServer,
    new_gun: Callable[[], str],
    tmp_path: Path,
    header: bytes,
    edited: bytes,
) -> None:
    rig = Rig(notary_server, tmp_path, new_gun())
    rig.setup_repository()
    full_ceremony(rig, "first")
    targets_file = next(
        p
        for p in (tmp_path / "offline" / "private").glob("*.key")
        if b"role: targets" in p.read_bytes()
    )
    lines = targets_file.read_bytes().splitlines(keepends=True)
    lines = [edited + b"\n" if line.startswith(header) else line for line in lines]
    targets_file.write_bytes(b"".join(lines))
    stage_text_target(rig, "app", "v2")
    request = tmp_path / "r.json"
    rig.run("ceremony-online", "export", rig.gun, "--out", str(request))
    out = tmp_path / "r.sig"
    proc = rig.run("ceremony", "sign", str(request), "--out", str(out), "--yes", code=1)
    sentence = one_sentence(proc)
    assert "headers were edited" in sentence and targets_file.name in sentence, sentence
    assert not out.exists()
