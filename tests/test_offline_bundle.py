"""`make offline-bundle`: the wheelhouse installs into a fresh venv from itself alone.

The bundle is built (what `make offline-bundle` runs) and installed with its own
`install.sh` (no index, every hash required); the installed `ceremony` runs. A tampered
or missing wheel stops the install; preflight records each wheel's hash and notices an
installed file that changed.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def env() -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("NOTARY_", "CEREMONY_"))}
    clean["PYTHON"] = sys.executable  # the interpreter the wheels were built for
    return clean


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    out = tmp_path / "offline-bundle"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "offline_bundle.py"), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def install(bundle: Path, venv: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(bundle / "install.sh"), str(venv)],
        capture_output=True,
        text=True,
        env=env(),
        timeout=600,
    )


def pins(bundle: Path) -> dict[str, str]:
    text = (bundle / "requirements.txt").read_text()
    return dict(re.findall(r"^(\S+)==\S+ --hash=sha256:([0-9a-f]{64})$", text, re.MULTILINE))


def test_bundle_installs_only_from_itself(bundle: Path, tmp_path: Path) -> None:
    wheels = sorted(bundle.glob("*.whl"))
    names = {w.name.split("-")[0].lower() for w in wheels}
    # The custody dependencies too: tokens (python-pkcs11), share sheets (shamir-mnemonic,
    # Pillow), canonical JSON (orjson).
    assert {"notary_ceremony", "cryptography", "typer", "rich", "pillow"} <= names
    assert {"python_pkcs11", "shamir_mnemonic", "orjson"} <= names
    assert not names & {"httpx", "httpcore", "requests", "urllib3"}  # no online extra
    pinned = pins(bundle)
    assert len(pinned) == len(wheels)
    for wheel in wheels:  # every wheel pinned by its real hash
        assert pinned[wheel.name.split("-")[0]] == hashlib.sha256(wheel.read_bytes()).hexdigest()
    venv = tmp_path / "venv"  # one venv throughout: making one is the slow part

    # A tampered wheel stops the install.
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    (wheel,) = copy.glob("base45-*.whl")
    wheel.write_bytes(wheel.read_bytes() + b"\0")
    proc = install(copy, venv)
    assert proc.returncode != 0
    assert "DO NOT MATCH THE HASHES" in proc.stderr
    assert not (venv / "bin" / "ceremony").exists()
    # So does a missing one: only the bundle is looked in (no index, no pip configuration).
    wheel.unlink()
    proc = install(copy, venv)
    assert proc.returncode != 0 and "base45" in proc.stderr
    assert not (venv / "bin" / "ceremony").exists()

    # The whole bundle installs, and the installed `ceremony` runs without a network library.
    proc = install(bundle, venv)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ceremony = str(venv / "bin" / "ceremony")
    helped = subprocess.run([ceremony, "--help"], capture_output=True, text=True, env=env())
    assert helped.returncode == 0 and "preflight" in helped.stdout, helped.stderr
    no_httpx = subprocess.run([str(venv / "bin" / "python"), "-c", "import httpx"], env=env())
    assert no_httpx.returncode == 1
    custody = "import pkcs11, shamir_mnemonic, PIL.ImageFont, orjson, ceremony.signing.pkcs11"
    imported = subprocess.run(
        [str(venv / "bin" / "python"), "-c", custody], capture_output=True, text=True, env=env()
    )
    assert imported.returncode == 0, imported.stderr

    # Preflight in the installed venv records each wheel's hash from the bundle.
    root = tmp_path / "root"
    (root / "sys" / "class" / "net" / "lo").mkdir(parents=True)
    (root / "sys" / "class" / "net" / "lo" / "operstate").write_text("unknown")
    (root / "sys" / "class" / "net" / "lo" / "flags").write_text("0x9")
    (root / "proc" / "net").mkdir(parents=True)
    (root / "proc" / "net" / "route").write_text("Iface\tDestination\n")
    run_env = dict(env(), CEREMONY_PREFLIGHT_ROOT=str(root), CEREMONY_HOME=str(tmp_path / "h"))
    checked = subprocess.run([ceremony, "preflight"], capture_output=True, text=True, env=run_env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"wheel sha256 {pinned['cryptography']}" in checked.stdout
    assert f"wheel sha256 {pinned['python_pkcs11']}" in checked.stdout
    assert f"wheel sha256 {pinned['shamir_mnemonic']}" in checked.stdout
    bundle_digest = hashlib.sha256((bundle / "requirements.txt").read_bytes()).hexdigest()
    assert f"requirements.txt has SHA-256 {bundle_digest}" in checked.stdout
    assert "as pinned by the offline bundle" in checked.stdout

    # An installed file changed after the install is found.
    (target,) = (venv / "lib").glob("python3*/site-packages/base45/__init__.py")
    target.write_text(target.read_text() + "\n# changed\n")
    changed = subprocess.run([ceremony, "preflight"], capture_output=True, text=True, env=run_env)
    assert changed.returncode == 1
    assert "base45 0.4.4: 1 installed file(s) differ from its RECORD" in changed.stdout
