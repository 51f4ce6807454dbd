"""Read QR frames from image files, folders, GIFs, videos and a webcam into a `Decoder`.

Two decoding backends: zxing-cpp (`zxingcpp`, 8-10x faster and better on small modules)
when it is installed, pyzbar on Debian's libzbar0 otherwise; `Backend` selects one
explicitly so both stay tested. Frames are Base45 text in alphanumeric mode, which both
return byte-exactly (qr-transfer.md §4.4).

OpenCV is optional and only needed for video files and the webcam; it is imported when
first needed. Images are decoded in grayscale at their own resolution (upscaling only
slows pyzbar down). This module reads files and devices but never the network.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from PIL import Image, ImageSequence, UnidentifiedImageError

from ceremony.core.errors import EnvironmentFailure, MalformedInput, UsageError
from ceremony.qr.frames import Decoder, Progress

ProgressCallback = Callable[[Progress], None]
"""Called after every image or video frame with the decoder's counters (rank/K)."""

IMAGE_SUFFIXES: Final = frozenset(
    {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm", ".pbm"}
)
VIDEO_SUFFIXES: Final = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".ogv"}
)

_OPENCV_HINT: Final = (
    "Reading video files or a webcam needs OpenCV; install it with "
    "`pip install opencv-python-headless`."
)


class Backend(StrEnum):
    """Which QR decoder library reads the images."""

    AUTO = "auto"
    """zxing-cpp if importable, else pyzbar."""
    ZXING = "zxing"
    PYZBAR = "pyzbar"


def resolve_backend(backend: Backend = Backend.AUTO) -> Backend:
    """The concrete backend to use; EnvironmentFailure if the requested one is missing."""
    if backend is Backend.AUTO:
        try:
            _zxing()
        except EnvironmentFailure:
            _pyzbar()
            return Backend.PYZBAR
        return Backend.ZXING
    if backend is Backend.ZXING:
        _zxing()
    else:
        _pyzbar()
    return backend


def decode_image(image: Image.Image, *, backend: Backend = Backend.AUTO) -> list[str]:
    """Texts of every QR code found in `image` (grayscale is used; order as found)."""
    gray = image if image.mode == "L" else image.convert("L")
    if resolve_backend(backend) is Backend.ZXING:
        zxingcpp = _zxing()
        found = zxingcpp.read_barcodes(gray, formats=zxingcpp.BarcodeFormat.QRCode)
        return [str(code.text) for code in found]
    pyzbar, symbol = _pyzbar()
    return [bytes(code.data).decode("latin-1") for code in pyzbar.decode(gray, symbols=[symbol])]


def images_from_path(path: Path) -> Iterator[Image.Image]:
    """Every picture `path` holds: an image, all frames of a GIF/animation, all video frames,
    or the image and video files of a folder in name order (other files there are skipped).
    """
    if not path.exists():
        raise UsageError(f"{path} does not exist; check the path.")
    if path.is_dir():
        children = sorted(
            child
            for child in path.iterdir()
            if child.is_file() and child.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES
        )
        if not children:
            raise UsageError(f"{path} holds no image or video files; check the folder.")
        for child in children:
            yield from images_from_path(child)
        return
    if path.suffix.lower() in VIDEO_SUFFIXES:
        yield from video_frames(path)
        return
    yield from _picture_frames(path)


def _picture_frames(path: Path) -> Iterator[Image.Image]:
    try:
        with Image.open(path) as picture:
            for frame in ImageSequence.Iterator(picture):
                yield frame.convert("L")
    except (UnidentifiedImageError, Image.DecompressionBombError, SyntaxError, ValueError):
        raise MalformedInput(
            f"{path} is not an image this tool can read; give PNG, JPEG or GIF files."
        ) from None
    except OSError as error:
        raise MalformedInput(
            f"{path} could not be read as an image ({error.strerror or error}); check the file."
        ) from None


def video_frames(source: Path | int) -> Iterator[Image.Image]:
    """Grayscale frames of a video file, or of webcam number `source`, through OpenCV."""
    cv2 = _opencv()
    capture = cv2.VideoCapture(str(source) if isinstance(source, Path) else source)
    try:
        if not capture.isOpened():
            if isinstance(source, Path):
                raise MalformedInput(f"{source} could not be opened as a video; check the file.")
            raise EnvironmentFailure(
                f"Webcam {source} could not be opened; check it is connected and not in use."
            )
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield _gray_frame(cv2, frame)
    finally:
        capture.release()


def _gray_frame(cv2: Any, frame: Any) -> Image.Image:
    """An OpenCV BGR or grayscale array as a PIL image, without needing numpy here."""
    if len(frame.shape) == 3:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    height, width = frame.shape[:2]
    return Image.frombytes("L", (width, height), frame.tobytes())


def scan_images(
    images: Iterable[Image.Image],
    decoder: Decoder,
    on_progress: ProgressCallback | None = None,
    *,
    backend: Backend = Backend.AUTO,
) -> bool:
    """Feed the codes of each image to `decoder` until it completes; returns `complete`.

    A transfer that reaches rank K but fails its checks (hash, size bound) raises
    MalformedInput at once: scanning further cannot help.
    """
    chosen = resolve_backend(backend)
    for image in images:
        for text in decode_image(image, backend=chosen):
            decoder.add(text)
            if decoder.failure:
                raise MalformedInput(decoder.failure)
            if decoder.complete:
                break
        if on_progress is not None:
            on_progress(decoder.progress)
        if decoder.complete:
            return True
    return decoder.complete


def scan_paths(
    paths: Sequence[Path | str],
    decoder: Decoder,
    on_progress: ProgressCallback | None = None,
    *,
    backend: Backend = Backend.AUTO,
) -> bytes:
    """Read image files, folders, GIFs and videos in order until the document is complete.

    Returns the document; raises MalformedInput (one sentence) when the frames run out first.
    """
    if not paths:
        raise UsageError("No QR image paths were given; name image files or a folder.")
    resolve_backend(backend)
    for path in paths:
        if scan_images(images_from_path(Path(path)), decoder, on_progress, backend=backend):
            return decoder.result()
    raise MalformedInput(decoder.incomplete_reason())


def scan_webcam(
    decoder: Decoder,
    on_progress: ProgressCallback | None = None,
    *,
    device: int = 0,
    backend: Backend = Backend.AUTO,
    max_frames: int | None = None,
) -> bytes:
    """Read camera frames until the document is complete (Ctrl-C stops, as KeyboardInterrupt).

    `max_frames` bounds the number of camera frames read (None: no bound).
    """
    frames: Iterator[Image.Image] = video_frames(device)
    if max_frames is not None:
        frames = (frame for _, frame in zip(range(max_frames), frames, strict=False))
    if scan_images(frames, decoder, on_progress, backend=backend):
        return decoder.result()
    raise MalformedInput(decoder.incomplete_reason())


def _zxing() -> Any:
    try:
        import zxingcpp  # optional: the `zxing` extra
    except ImportError:
        raise EnvironmentFailure(
            "The zxing backend needs zxing-cpp; install it with `pip install zxing-cpp` "
            "or use the pyzbar backend."
        ) from None
    return zxingcpp


def _pyzbar() -> tuple[Any, Any]:
    try:
        from pyzbar import pyzbar  # loads libzbar through ctypes
    except ImportError:
        raise EnvironmentFailure(
            "The pyzbar backend cannot load the zbar library; install it with "
            "`apt install libzbar0` or install zxing-cpp."
        ) from None
    return pyzbar, pyzbar.ZBarSymbol.QRCODE


def _opencv() -> Any:
    try:
        import cv2  # optional, only for video and webcam
    except ImportError:
        raise EnvironmentFailure(_OPENCV_HINT) from None
    return cv2
