"""Draw frame texts as QR codes: PNG folders, an animated GIF, an HTML player, a terminal view.

Every code is black on white, with a 4-module quiet zone, in alphanumeric mode with a
FIXED mask (`MASK`): the research (qr-transfer.md §1.4) found a fixed mask decodes as well
as the automatic choice and renders about 4x faster. The QR version and EC level come from
the `TransferPlan`, so all frames of an animation have the same size.

The encoder is `qrcode` (with `mask_pattern` fixed), not segno: segno imports
`xml.sax.saxutils`, which imports `urllib.request` and with it `ssl` and `http.client`,
and the offline half must never load a networking module (tests/test_airgap.py draws a
code to prove it).

Nothing here decodes or decides what to send; see `frames.plan` and `ceremony.qr.scan`.
"""

from __future__ import annotations

import base64
import collections
import concurrent.futures
import html
import io
import itertools
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Final

from PIL import Image
from rich.console import Console
from rich.live import Live
from rich.text import Text

from ceremony.core.errors import EnvironmentFailure, UsageError
from ceremony.qr.capacity import TransferPlan

MASK: Final = 0
QUIET_ZONE: Final = 4
DEFAULT_SCALE: Final = 6
"""Screen pixels per module; at least 5-6 are needed on screen (qr-transfer.md §1.4)."""
MIN_FPS: Final = 1.0
MAX_FPS: Final = 15.0
GIF_PIXEL_BUDGET: Final = 256 * 1024 * 1024
"""Pillow holds every GIF frame in memory; beyond this many pixels use the HTML page."""

Matrix = Sequence[bytes | bytearray]
"""Rows of modules, non-zero = dark, without quiet zone."""

_DARK_BYTE: Final = bytes([255]) + bytes(255)
"""Translation table: module value 0 (light) -> 255 (white), anything else -> 0 (black)."""


def qr_matrix(text: str, *, version: int, error: str) -> Matrix:
    """The module matrix of `text` as one alphanumeric segment with the fixed mask."""
    import qrcode
    import qrcode.constants
    import qrcode.exceptions
    import qrcode.util

    levels = {
        "L": qrcode.constants.ERROR_CORRECT_L,
        "M": qrcode.constants.ERROR_CORRECT_M,
        "Q": qrcode.constants.ERROR_CORRECT_Q,
        "H": qrcode.constants.ERROR_CORRECT_H,
    }
    if error not in levels or not 1 <= version <= 40:
        raise UsageError(f"There is no QR code version {version}-{error}.")
    code = qrcode.QRCode(
        version=version, error_correction=levels[error], mask_pattern=MASK, border=0
    )
    try:
        code.add_data(qrcode.util.QRData(text, mode=qrcode.util.MODE_ALPHA_NUM))
        code.make(fit=False)
    except qrcode.exceptions.DataOverflowError:
        raise UsageError(
            f"A frame of {len(text)} characters does not fit a version {version}-{error} QR "
            "code; choose a larger preset."
        ) from None
    except (ValueError, TypeError) as error_:
        raise UsageError(
            f"The text cannot be drawn as an alphanumeric QR code: {error_}."
        ) from None
    return [bytes(1 if cell else 0 for cell in row) for row in code.get_matrix()]


def matrix_image(
    matrix: Matrix, *, scale: int = DEFAULT_SCALE, border: int = QUIET_ZONE
) -> Image.Image:
    """Black-on-white 1-bit image, `scale` pixels per module, `border` modules of quiet zone."""
    if scale < 1:
        raise UsageError(f"A QR scale must be at least 1 pixel per module, not {scale}.")
    width = len(matrix) + 2 * border
    blank = b"\xff" * width
    rows = [blank] * border
    rows += [
        b"\xff" * border + bytes(row).translate(_DARK_BYTE) + b"\xff" * border for row in matrix
    ]
    rows += [blank] * border
    image = Image.frombytes("L", (width, width), b"".join(rows))
    image = image.resize((width * scale, width * scale), Image.Resampling.NEAREST)
    return image.convert("1", dither=Image.Dither.NONE)


def frame_image(text: str, *, version: int, error: str, scale: int = DEFAULT_SCALE) -> Image.Image:
    """One frame text as an image."""
    return matrix_image(qr_matrix(text, version=version, error=error), scale=scale)


def plan_images(
    plan: TransferPlan, *, scale: int = DEFAULT_SCALE, count: int | None = None
) -> Iterator[Image.Image]:
    """Images of frames 0..count-1 (default: the plan's export count), rendered lazily."""
    for text in plan.texts(count):
        yield frame_image(text, version=plan.version, error=plan.error, scale=scale)


def write_png_folder(
    plan: TransferPlan, folder: Path, *, scale: int = DEFAULT_SCALE, count: int | None = None
) -> list[Path]:
    """Write numbered PNGs `frame-0000.png`...: K + ceil(K/2) frames, or one for a static code.

    Refuses a folder that already holds frame PNGs, so two transfers never get mixed.
    """
    total = plan.export_count if count is None else count
    _make_folder(folder)
    if any(folder.glob("frame-*.png")):
        raise UsageError(
            f"{folder} already holds frame-*.png files; choose an empty folder so two "
            "transfers are not mixed."
        )
    digits = max(4, len(str(total - 1)))
    paths: list[Path] = []
    for seq, image in enumerate(plan_images(plan, scale=scale, count=total)):
        path = folder / f"frame-{seq:0{digits}d}.png"
        _atomic_write(path, _png_bytes(image))
        paths.append(path)
    return paths


def write_gif(
    plan: TransferPlan,
    path: Path,
    *,
    scale: int = DEFAULT_SCALE,
    fps: float | None = None,
    count: int | None = None,
) -> Path:
    """Write an endlessly looping animated GIF of the export frames at `fps` (the preset's)."""
    total = plan.export_count if count is None else count
    fps = _checked_fps(plan, fps)
    side = (17 + 4 * plan.version + 2 * QUIET_ZONE) * scale
    if total * side * side > GIF_PIXEL_BUDGET:
        raise UsageError(
            f"{total} frames of {side}x{side} pixels are too many for a GIF; use the HTML "
            "page or the PNG folder instead."
        )
    images = [image.convert("L") for image in plan_images(plan, scale=scale, count=total)]
    buffer = io.BytesIO()
    images[0].save(
        buffer,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=round(1000 / fps),
        loop=0,
    )
    _atomic_write(path, buffer.getvalue())
    return path


def html_page(
    plan: TransferPlan,
    *,
    scale: int = DEFAULT_SCALE,
    fps: float | None = None,
    count: int | None = None,
    title: str = "Ceremony QR transfer",
    caption: str = "",
) -> str:
    """A self-contained HTML player: frames as PNG data URIs (all rendered before the page is
    written), fps control starting at the preset's rate, counter, pause.

    A Content-Security-Policy forbids every fetch, so the page works (and stays) offline.
    """
    fps = _checked_fps(plan, fps)
    uris = [
        "data:image/png;base64," + base64.b64encode(_png_bytes(image)).decode("ascii")
        for image in plan_images(plan, scale=scale, count=count)
    ]
    return _HTML_TEMPLATE.format(
        title=html.escape(title),
        caption=html.escape(caption),
        k=plan.k,
        version=plan.version,
        error=plan.error,
        fps=f"{fps:g}",
        min_fps=f"{MIN_FPS:g}",
        max_fps=f"{MAX_FPS:g}",
        first=uris[0],
        frames=json.dumps(uris),
    )


def write_html(
    plan: TransferPlan,
    path: Path,
    *,
    scale: int = DEFAULT_SCALE,
    fps: float | None = None,
    count: int | None = None,
    title: str = "Ceremony QR transfer",
    caption: str = "",
) -> Path:
    """Write `html_page` to `path` atomically."""
    page = html_page(plan, scale=scale, fps=fps, count=count, title=title, caption=caption)
    _atomic_write(path, page.encode("utf-8"))
    return path


# --- Terminal ----------------------------------------------------------------------------

_HALF_BLOCKS: Final = {
    (False, False): " ",
    (True, False): "▀",
    (False, True): "▄",
    (True, True): "█",
}


def half_block_lines(matrix: Matrix, *, border: int = QUIET_ZONE) -> list[str]:
    """Two module rows per text line with half blocks; block characters are the DARK modules.

    Print them black on white (as `terminal_frame` does) so the code reads on any theme.
    """
    width = len(matrix) + 2 * border
    light = [False] * width
    rows = [light] * border
    rows += [[False] * border + [bool(m) for m in row] + [False] * border for row in matrix]
    rows += [light] * border
    if len(rows) % 2:
        rows.append(light)
    return [
        "".join(_HALF_BLOCKS[top, bottom] for top, bottom in zip(upper, lower, strict=True))
        for upper, lower in zip(rows[0::2], rows[1::2], strict=True)
    ]


def terminal_frame(text: str, *, version: int, error: str) -> Text:
    """One frame as rich Text, black on white."""
    lines = half_block_lines(qr_matrix(text, version=version, error=error))
    return Text("\n".join(lines), style="black on white", no_wrap=True, overflow="crop")


def play_terminal(
    plan: TransferPlan,
    *,
    console: Console | None = None,
    fps: float | None = None,
    limit: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Animate frames 0, 1, 2, ... in the terminal; returns how many frames were shown.

    Runs until `limit` frames (None: until Ctrl-C), at `fps` (the preset's by default). A
    static code, or a console that is not a terminal, gets frame 0 printed once and the call
    returns at once, never blocking a pipe. Repair frames never repeat, so a late or lossy
    receiver always gains. Frames are drawn ahead in a thread and shown on a fixed beat, so
    the drawing time of a large code does not slow the rate.
    """
    console = console or Console(emoji=False, highlight=False)
    fps = _checked_fps(plan, fps)
    first = terminal_frame(plan.encoder.frame(0), version=plan.version, error=plan.error)
    if plan.is_static or not console.is_terminal or limit == 1:
        console.print(first)
        return 1
    size = 17 + 4 * plan.version + 2 * QUIET_ZONE
    if console.width < size or console.height < (size + 1) // 2:
        raise EnvironmentFailure(
            f"The terminal is {console.width}x{console.height} but the QR code needs "
            f"{size}x{(size + 1) // 2}; enlarge the window or reduce the font size."
        )
    seqs = itertools.count() if limit is None else range(limit)
    shown = 0
    with (
        concurrent.futures.ThreadPoolExecutor(max_workers=1) as drawer,
        Live(first, console=console, auto_refresh=False, transient=True) as live,
    ):

        def draw(seq: int) -> Text:
            return terminal_frame(plan.encoder.frame(seq), version=plan.version, error=plan.error)

        ahead: collections.deque[concurrent.futures.Future[Text]] = collections.deque()
        pending = iter(seqs)
        for seq in itertools.islice(pending, _DRAW_AHEAD):
            ahead.append(drawer.submit(draw, seq))
        beat = clock()
        while ahead:
            frame = ahead.popleft().result()
            following = next(pending, None)
            if following is not None:
                ahead.append(drawer.submit(draw, following))
            live.update(frame, refresh=True)
            shown += 1
            beat += 1 / fps
            sleep(max(0.0, beat - clock()))
    return shown


_DRAW_AHEAD: Final = 8


# --- Helpers -----------------------------------------------------------------------------


def _checked_fps(plan: TransferPlan, fps: float | None) -> float:
    """`fps`, or the preset's rate (10 for the fast presets, 5 for the others)."""
    fps = float(plan.preset.fps) if fps is None else fps
    if not MIN_FPS <= fps <= MAX_FPS:
        raise UsageError(f"The frame rate must be between {MIN_FPS:g} and {MAX_FPS:g} fps.")
    return fps


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise EnvironmentFailure(f"Cannot create folder {folder}: {error.strerror}.") from None


def _atomic_write(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file."""
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as error:
        raise EnvironmentFailure(f"Cannot write {path}: {error.strerror}.") from None


_HTML_TEMPLATE: Final = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
 body {{ margin: 0; background: #fff; color: #000; font: 16px system-ui, sans-serif;
        display: flex; flex-direction: column; align-items: center; }}
 img {{ image-rendering: pixelated; max-width: 96vw; max-height: 82vh; margin: 1vh 0; }}
 .bar {{ display: flex; gap: 1em; align-items: center; flex-wrap: wrap; justify-content: center; }}
 .caption {{ font-family: ui-monospace, monospace; margin: 0.5em; text-align: center; }}
</style>
</head>
<body>
<img id="qr" alt="QR frame" src="{first}">
<div class="bar">
 <button id="pause" type="button">Pause</button>
 <label>Speed <input id="fps" type="range" min="{min_fps}" max="{max_fps}" step="1"
  value="{fps}"> <span id="fpsv">{fps}</span> fps</label>
 <span id="counter">Frame 1</span>
 <span>K = {k} blocks, QR v{version}-{error}</span>
</div>
<div class="caption">{caption}</div>
<script>
"use strict";
const frames = {frames};
const img = document.getElementById("qr");
const counter = document.getElementById("counter");
const pause = document.getElementById("pause");
const fps = document.getElementById("fps");
const fpsv = document.getElementById("fpsv");
let index = 0, playing = true, timer = null;
function show(n) {{
  index = (n + frames.length) % frames.length;
  img.src = frames[index];
  counter.textContent = "Frame " + (index + 1) + " of " + frames.length;
}}
function schedule() {{
  clearInterval(timer);
  if (playing && frames.length > 1) {{
    timer = setInterval(function () {{ show(index + 1); }}, 1000 / Number(fps.value));
  }}
}}
pause.addEventListener("click", function () {{
  playing = !playing;
  pause.textContent = playing ? "Pause" : "Play";
  schedule();
}});
fps.addEventListener("input", function () {{ fpsv.textContent = fps.value; schedule(); }});
document.addEventListener("keydown", function (event) {{
  if (event.key === " ") {{ event.preventDefault(); pause.click(); }}
  if (!playing && event.key === "ArrowRight") {{ show(index + 1); }}
  if (!playing && event.key === "ArrowLeft") {{ show(index - 1); }}
}});
show(0);
schedule();
</script>
</body>
</html>
"""
