"""Import hygiene: the codec stays pure and nothing loads a networking module on import."""

from __future__ import annotations

import subprocess
import sys

import pytest

NETWORK = ("socket", "ssl", "http.client", "urllib.request", "urllib3", "requests", "httpx")
HEAVY = ("PIL", "segno", "pyzbar", "zxingcpp", "cv2", "typer", "rich")


def loaded_after(statement: str, names: tuple[str, ...]) -> list[str]:
    probe = f"import sys; {statement}; print(' '.join(n for n in {names!r} if n in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    return result.stdout.split()


@pytest.mark.parametrize("module", ["ceremony.qr.frames", "ceremony.core.words", "ceremony.qr"])
def test_pure_modules_import_no_imaging_or_cli_library(module: str) -> None:
    assert loaded_after(f"import {module}", HEAVY + NETWORK) == []


def test_render_scan_progress_import_no_network_module() -> None:
    statement = "import ceremony.qr.render, ceremony.qr.scan, ceremony.qr.progress"
    assert loaded_after(statement, NETWORK) == []


def test_decoding_images_loads_no_network_module() -> None:
    statement = (
        "from PIL import Image; from ceremony.qr.scan import decode_image, Backend; "
        "[decode_image(Image.new('L', (50, 50), 255), backend=b) for b in Backend]"
    )
    assert loaded_after(statement, NETWORK) == []
