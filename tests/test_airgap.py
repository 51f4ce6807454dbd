"""The offline half never loads networking code or the online half.

Each check runs in a fresh interpreter: import every module of `ceremony`,
then look at `sys.modules`. The bare `socket` module is not on the list: the
standard library's `email.utils` (pulled in by `cryptography.x509`) imports it
without using it. Instead an audit hook fails the run if any socket is created,
resolved or connected while the modules load. The second test proves the guard bites by adding a
forbidden import to a throwaway copy of the package and watching it fail.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = (
    "ssl",
    "http.client",
    "urllib.request",
    "requests",
    "httpx",
    "urllib3",
    "aiohttp",
    "online",
)

GUARD = """
import importlib, pkgutil, sys
events = []
def hook(event, args):
    if event.startswith("socket.") or event == "socket.__new__":
        events.append(event)
sys.addaudithook(hook)
sys.path.insert(0, {path!r})
import ceremony
assert ceremony.__file__.startswith({path!r}), ceremony.__file__
names = ["ceremony"] + [m.name for m in pkgutil.walk_packages(ceremony.__path__, "ceremony.")]
for name in names:
    importlib.import_module(name)
if {exercise!r}:
    # Use the heavy paths too: draw a QR code and read it back with both decoders.
    from ceremony.qr.capacity import plan, preset_named
    from ceremony.qr.frames import Decoder, ContentType
    from ceremony.qr.render import frame_image
    from ceremony.qr.scan import decode_image, Backend
    p = plan(b"offline", preset_named("default"), content_type=ContentType.SIGNATURES)
    img = frame_image(p.encoder.frame(0), version=p.version, error=p.error)
    for backend in (Backend.PYZBAR, Backend.ZXING):
        assert decode_image(img, backend=backend) == [p.encoder.frame(0)]
forbidden = {forbidden!r}
bad = sorted(m for m in sys.modules if m in forbidden or any(m.startswith(f + ".") for f in forbidden))
print("MODULES", len(names))
print("LOADED", ",".join(bad))
print("SOCKET_EVENTS", ",".join(events))
sys.exit(1 if bad or events else 0)
"""


def run_guard(package_parent: Path, *, exercise: bool = False) -> subprocess.CompletedProcess[str]:
    code = GUARD.format(path=str(package_parent), forbidden=FORBIDDEN, exercise=exercise)
    return subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=120
    )


def test_ceremony_imports_no_network_module() -> None:
    proc = run_guard(ROOT, exercise=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    count = int(proc.stdout.split("MODULES ")[1].split()[0])
    assert count >= 15  # every module was really imported, not an empty walk


def test_guard_fails_when_a_network_import_is_added(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "ceremony", tmp_path / "ceremony")
    (tmp_path / "ceremony" / "leak.py").write_text("import http.client  # a forbidden import\n")
    proc = run_guard(tmp_path)
    assert proc.returncode == 1
    assert "LOADED http.client" in proc.stdout


def test_guard_fails_when_online_is_imported(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "ceremony", tmp_path / "ceremony")
    (tmp_path / "online").mkdir()
    (tmp_path / "online" / "__init__.py").write_text("")
    (tmp_path / "ceremony" / "leak.py").write_text("import online\n")
    proc = run_guard(tmp_path)
    assert proc.returncode == 1
    assert "LOADED online" in proc.stdout


def test_guard_fails_when_a_socket_is_opened(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "ceremony", tmp_path / "ceremony")
    (tmp_path / "ceremony" / "leak.py").write_text("import socket\nsocket.socket().close()\n")
    proc = run_guard(tmp_path)
    assert proc.returncode == 1
    assert "SOCKET_EVENTS socket.__new__" in proc.stdout


ONLINE_GUARD = """
import importlib, pkgutil, sys
import online
names = ["online"] + [m.name for m in pkgutil.walk_packages(online.__path__, "online.")]
for name in names:
    importlib.import_module(name)
{extra}
forbidden = ("ceremony.signing.keystore", "ceremony.signing.keyfile", "ceremony.cli")
bad = sorted(m for m in sys.modules if any(m == f or m.startswith(f + ".") for f in forbidden))
print("MODULES", len(names))
print("LOADED", ",".join(bad))
sys.exit(1 if bad else 0)
"""


def test_online_never_loads_key_holding_modules() -> None:
    code = ONLINE_GUARD.format(extra="")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert int(proc.stdout.split("MODULES ")[1].split()[0]) >= 6


def test_online_guard_bites() -> None:
    code = ONLINE_GUARD.format(extra="import ceremony.signing.keystore")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "LOADED ceremony.signing.keyfile,ceremony.signing.keystore" in proc.stdout
