"""`make offline-bundle`: everything the air-gapped machine needs to install `ceremony`.

Builds, on a connected machine, a folder (default `dist/offline-bundle/`) holding:

- a wheel of this project and a wheel of every dependency of the offline half (not the
  `online` extra, so no network library), made with `pip wheel`;
- `requirements.txt`: every wheel pinned by version and SHA-256 (`--hash=sha256:`);
- `install.sh`: makes a venv and installs from this folder only
  (`pip install --no-index --find-links . --require-hashes`), ignoring every pip
  configuration file and PIP_* variable, then leaves a copy of `requirements.txt` in the
  venv, where `ceremony preflight` finds it and records each wheel's hash.

Wheels are built for this machine's Python and platform: build the bundle on the same
Debian release and Python as the offline machine. The SHA-256 of `requirements.txt` is
printed as words; `ceremony preflight` prints the same words after the install.

Usage: python scripts/offline_bundle.py [OUT]
"""

from __future__ import annotations

import hashlib
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ceremony.core.words import digest_words  # noqa: E402

# The files a wheel of this project is built from (no tests, caches or local state).
SOURCES = ("pyproject.toml", "README.md", "ceremony", "online")
WHEEL_NAME = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl$")

INSTALL_SH = """\
#!/bin/sh
# Install the offline half of notary-ceremony from this folder only: no package index,
# no pip configuration, every wheel checked against its SHA-256 in requirements.txt.
#   sh install.sh [VENV]      (default: $HOME/.local/share/notary-ceremony/venv)
# PYTHON chooses the interpreter (default python3; Debian needs python3-venv).
set -eu
bundle=$(cd "$(dirname "$0")" && pwd)
venv=${1:-"$HOME/.local/share/notary-ceremony/venv"}
"${PYTHON:-python3}" -m venv "$venv"
PIP_CONFIG_FILE=/dev/null "$venv/bin/python" -m pip --isolated --disable-pip-version-check \\
    install --no-index --find-links "$bundle" --only-binary :all: --no-cache-dir \\
    --require-hashes -r "$bundle/requirements.txt"
cp "$bundle/requirements.txt" "$venv/offline-bundle-requirements.txt"
echo "Installed $venv/bin/ceremony. Run: $venv/bin/ceremony preflight"
"""


def copy_sources(target: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=ignore)
        else:
            shutil.copy2(source, target / name)


def requirements(wheels: list[Path]) -> str:
    lines = [
        "# notary-ceremony offline bundle: every wheel pinned by version and SHA-256.",
        f"# Built with Python {platform.python_version()} on {sys.platform} "
        f"{platform.machine()}: install on the same Python and platform.",
    ]
    for wheel in wheels:
        match = WHEEL_NAME.match(wheel.name)
        if match is None:
            raise SystemExit(f"offline-bundle: {wheel.name} is not a wheel file name")
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        lines.append(f"{match['name']}=={match['version']} --hash=sha256:{digest}")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else ROOT / "dist" / "offline-bundle"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="offline-bundle-") as tmp:
        source = Path(tmp) / "src"
        source.mkdir()
        copy_sources(source)
        # Dependencies of the offline half only: the `online` extra is not asked for.
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(out), str(source)],
            check=True,
        )
    wheels = sorted(out.glob("*.whl"))
    (out / "requirements.txt").write_text(requirements(wheels), encoding="utf-8")
    install = out / "install.sh"
    install.write_text(INSTALL_SH, encoding="utf-8")
    install.chmod(0o755)
    digest = hashlib.sha256((out / "requirements.txt").read_bytes()).digest()
    print(f"Offline bundle in {out}: {len(wheels)} wheels")
    print(f"requirements.txt SHA-256 {digest.hex()}")
    print(f"  words: {digest_words(digest, 8)}")
    print(f"Carry the folder to the offline machine and run: sh {out.name}/install.sh")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
