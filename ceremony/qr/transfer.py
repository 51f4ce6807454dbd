"""The CLI-facing QR recipes both halves use: write a document as QR, read one back.

Small, safe compositions of `frames`, `render`, `scan` and `progress`: the
caller names a document kind (request or signatures) and a place; the recipe
picks the plan, shows progress and refuses the wrong kind of document.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import StrEnum
from pathlib import Path

from rich.console import Console

from ceremony.core.errors import UsageError
from ceremony.core.words import digest_words
from ceremony.qr.capacity import plan as qr_plan
from ceremony.qr.capacity import preset_named
from ceremony.qr.frames import ContentType, Decoder

WEBCAM = "webcam"
"""The `--qr` value that reads from a camera (`webcam:N` picks camera N)."""


class QrPreset(StrEnum):
    """The QR presets (see `ceremony.qr.frames.PRESETS`)."""

    ROBUST = "robust"
    DEFAULT = "default"
    FAST = "fast"
    FAST40 = "fast40"


class QrFormat(StrEnum):
    PNG = "png"
    GIF = "gif"
    HTML = "html"
    TERMINAL = "terminal"


def digest_phrase(digest_hex: str) -> str:
    """A document digest (hex) as the 8 PGP words both halves show, to compare aloud."""
    return digest_words(bytes.fromhex(digest_hex)[:8])


def write_qr(
    document: bytes,
    out_dir: Path,
    content_type: ContentType,
    *,
    preset: str = "default",
    fmt: QrFormat = QrFormat.PNG,
    caption: str = "",
    console: Console | None = None,
    terminal_frames: int | None = None,
    single: bool = False,
    name: str | None = None,
    on_frame: Callable[[int, int], None] | None = None,
    animated: bool = False,
) -> list[Path]:
    """Write `document` as QR frames into `out_dir` (PNG folder, GIF, HTML) or play it in the terminal.

    `caption` (GUN, request id and words; lines split by newlines) is shown under every
    PNG frame, GIF frame, the HTML player and the terminal player, with the frame
    number; the terminal player prints it again when it stops (Ctrl-C). With
    `single` (always for signatures) the document is one static code; `name` names
    the GIF or HTML file and the message (default: signatures or request).
    """
    from ceremony.qr import render

    # Signatures go back as one static code: nothing animated has to be filmed on the offline side.
    # A batch's signatures too large for one code travel animated (`animated`), like a request.
    single = single or (content_type is ContentType.SIGNATURES and not animated)
    plan = qr_plan(document, preset_named(preset), content_type=content_type, single=single)
    console = console or Console(stderr=True, highlight=False, emoji=False)
    name = name or ("signatures" if content_type is ContentType.SIGNATURES else "request")
    written: list[Path]
    if fmt is QrFormat.PNG:
        written = render.write_png_folder(plan, out_dir, caption=caption, on_frame=on_frame)
    elif fmt is QrFormat.GIF:
        out_dir.mkdir(parents=True, exist_ok=True)
        written = [
            render.write_gif(plan, out_dir / f"{name}.gif", caption=caption, on_frame=on_frame)
        ]
    elif fmt is QrFormat.HTML:
        out_dir.mkdir(parents=True, exist_ok=True)
        written = [
            render.write_html(plan, out_dir / f"{name}.html", caption=caption, on_frame=on_frame)
        ]
    else:
        shown = render.play_terminal(plan, console=console, limit=terminal_frames, caption=caption)
        written = []
        if caption:
            console.print(f"Stopped after {shown} frame(s). {caption}", markup=False)
    frames = "endless frames" if fmt is QrFormat.TERMINAL else f"{plan.export_count} frames"
    kind = "one static QR code" if plan.is_static else f"{plan.k} blocks, {frames}"
    console.print(f"QR {name}: {kind} at version {plan.version}-{plan.error}", markup=False)
    return written


def read_qr(
    paths: Sequence[Path], content_type: ContentType, *, console: Console | None = None
) -> bytes:
    """Scan images, folders, GIFs or videos until the document is whole, showing progress.

    The path `webcam` (or `webcam:N` for camera N) reads from a camera instead, which
    needs OpenCV (`pip install opencv-python-headless`); Ctrl-C stops it.
    """
    from ceremony.qr.progress import progress_bar
    from ceremony.qr.scan import scan_paths, scan_webcam

    if not paths:
        raise UsageError("Name at least one QR image, folder, GIF or video with --qr.")
    console = console or Console(stderr=True, highlight=False, emoji=False)
    decoder = Decoder(content_type=content_type)
    cameras = [str(p) for p in paths if str(p) == WEBCAM or str(p).startswith(WEBCAM + ":")]
    with progress_bar(console, description=f"Reading {content_type.label}") as on_progress:
        if not cameras:
            return scan_paths(list(paths), decoder, on_progress)
        if len(cameras) != len(paths) or len(cameras) > 1:
            raise UsageError("Read from one camera at a time, without other --qr paths.")
        device = cameras[0].partition(":")[2] or "0"
        if not device.isdigit():
            raise UsageError(f"{cameras[0]!r} is not a camera: use webcam or webcam:N.")
        return scan_webcam(decoder, on_progress, device=int(device))
