"""The HTML player in a real browser (Debian's chromium, headless): it animates, and what it
shows on screen decodes back into the document.

Virtual time (`--virtual-time-budget`) makes the animation deterministic and fast: the
page's timers run as if that many milliseconds had passed.
"""

from __future__ import annotations

import random
import re
import subprocess
from pathlib import Path

from PIL import Image

from ceremony.qr.frames import ContentType, Decoder
from ceremony.qr.scan import Backend, decode_image
from ceremony.qr.transfer import QrFormat, write_qr

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium(page: Path, profile: Path, budget_ms: int, *extra: str) -> str:
    proc = subprocess.run(
        [
            "chromium",
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={budget_ms}",
            *extra,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_html_player_animates_and_its_screen_decodes(tmp_path: Path) -> None:
    document = random.Random(9).randbytes(4000)
    [page] = write_qr(
        document, tmp_path / "out", ContentType.REQUEST, fmt=QrFormat.HTML, caption="request words"
    )
    dom = chromium(page, tmp_path / "profile", 2500, "--dump-dom")
    shown, total = map(int, re.search(r"Frame (\d+) of (\d+)", dom).groups())  # type: ignore[union-attr]
    assert total > 5 and shown >= 10  # 5 fps for 2.5 s: the frames advanced

    decoder = Decoder(content_type=ContentType.REQUEST)
    for step in range(total):
        shot = tmp_path / f"shot-{step}.png"
        chromium(
            page,
            tmp_path / f"profile-{step}",
            200 * step + 100,
            "--window-size=1000,1000",
            f"--screenshot={shot}",
        )
        for text in decode_image(Image.open(shot), backend=Backend.PYZBAR):
            decoder.add(text)
        if decoder.complete:
            break
    assert decoder.complete and decoder.result() == document
