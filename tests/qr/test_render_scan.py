"""Rendering and scanning: degraded captures, folder exports with loss, GIF, HTML, terminal."""

from __future__ import annotations

import io
import random
import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageFilter
from rich.console import Console

from ceremony.core.errors import EnvironmentFailure, MalformedInput, UsageError
from ceremony.qr.capacity import PRESETS, TransferPlan, plan
from ceremony.qr.frames import ContentType, Decoder, Progress
from ceremony.qr.progress import describe_progress, progress_bar
from ceremony.qr.render import (
    QUIET_ZONE,
    frame_image,
    half_block_lines,
    html_page,
    matrix_image,
    play_terminal,
    qr_matrix,
    write_gif,
    write_html,
    write_png_folder,
)
from ceremony.qr.scan import (
    Backend,
    decode_image,
    images_from_path,
    resolve_backend,
    scan_paths,
    scan_webcam,
)

BACKENDS = [Backend.ZXING, Backend.PYZBAR]


def make_plan(size: int, preset: str = "robust", seed: int = 0) -> tuple[bytes, TransferPlan]:
    document = random.Random(seed).randbytes(size)
    return document, plan(document, PRESETS[preset], content_type=ContentType.REQUEST)


def degrade(image: Image.Image) -> Image.Image:
    """A camera-ish copy: 0.8x downscale, Gaussian blur radius 1, JPEG quality 60."""
    gray = image.convert("L")
    small = gray.resize(
        (round(gray.width * 0.8), round(gray.height * 0.8)), Image.Resampling.BILINEAR
    )
    buffer = io.BytesIO()
    small.filter(ImageFilter.GaussianBlur(radius=1)).save(buffer, format="JPEG", quality=60)
    return Image.open(io.BytesIO(buffer.getvalue()))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("preset", ["robust", "default", "fast40"])
def test_degraded_frames_still_decode(backend: Backend, preset: str) -> None:
    _, transfer = make_plan(8000, preset)
    for text in transfer.texts(2):
        image = frame_image(text, version=transfer.version, error=transfer.error)
        assert decode_image(degrade(image), backend=backend) == [text]


@pytest.mark.parametrize("backend", BACKENDS)
def test_folder_export_with_a_fifth_removed_still_decodes(backend: Backend, tmp_path: Path) -> None:
    document, transfer = make_plan(6000)
    paths = write_png_folder(transfer, tmp_path / "out")
    assert len(paths) == transfer.export_count == transfer.k + 12
    assert [p.name for p in paths][:2] == ["frame-0000.png", "frame-0001.png"]
    for path in random.Random(20).sample(paths, len(paths) // 5):
        path.unlink()
    seen: list[Progress] = []
    decoder = Decoder(content_type=ContentType.REQUEST)
    assert scan_paths([tmp_path / "out"], decoder, seen.append, backend=backend) == document
    assert seen[-1].complete
    assert seen[-1].rank == seen[-1].k == transfer.k
    assert [p.rank for p in seen] == sorted(p.rank for p in seen)


def test_single_frame_document_is_one_static_png(tmp_path: Path) -> None:
    document = b'{"signatures":[{"keyid":"ab","sig":"cd"}]}'
    transfer = plan(document, content_type=ContentType.SIGNATURES)
    paths = write_png_folder(transfer, tmp_path)
    assert len(paths) == 1
    with Image.open(paths[0]) as image:
        assert image.size == ((17 + 4 * transfer.version + 2 * QUIET_ZONE) * 6,) * 2
    decoder = Decoder(content_type=ContentType.SIGNATURES)
    assert scan_paths([paths[0]], decoder) == document


def test_folder_export_refuses_a_folder_with_frames(tmp_path: Path) -> None:
    _, transfer = make_plan(3000)
    write_png_folder(transfer, tmp_path, count=2)
    with pytest.raises(UsageError, match="already holds frame"):
        write_png_folder(transfer, tmp_path, count=2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gif_is_written_and_decodes(backend: Backend, tmp_path: Path) -> None:
    document, transfer = make_plan(3000)
    path = write_gif(transfer, tmp_path / "transfer.gif", fps=5)
    with Image.open(path) as gif:
        assert getattr(gif, "n_frames", 1) == transfer.export_count
        assert gif.info["duration"] == 200
        assert gif.info["loop"] == 0
    assert scan_paths([path], Decoder(), backend=backend) == document


def test_gif_refuses_more_frames_than_memory_allows(tmp_path: Path) -> None:
    _, transfer = make_plan(3000)
    with pytest.raises(UsageError, match="too many for a GIF"):
        write_gif(transfer, tmp_path / "big.gif", count=100_000)


def test_html_page_is_self_contained_and_carries_every_frame(tmp_path: Path) -> None:
    _, transfer = make_plan(3000)
    path = write_html(transfer, tmp_path / "play.html", fps=4, caption="topmost Istanbul <b>")
    page = path.read_text()
    assert page == html_page(transfer, fps=4, caption="topmost Istanbul <b>")
    assert page.count("data:image/png;base64,") == transfer.export_count + 1  # + first <img>
    assert "default-src 'none'" in page
    assert re.search(r"(src|href)=\"(https?:)?//", page) is None
    assert "http://" not in page
    assert "https://" not in page
    assert "topmost Istanbul &lt;b&gt;" in page
    assert 'id="pause"' in page
    assert 'id="fps"' in page
    assert 'id="counter"' in page


def test_html_frames_decode() -> None:
    document, transfer = make_plan(2000)
    uris = re.findall(r'"data:image/png;base64,([^"]+)"', html_page(transfer))
    decoder = Decoder()
    import base64

    for uri in uris[1:]:
        for text in decode_image(Image.open(io.BytesIO(base64.b64decode(uri)))):
            decoder.add(text)
    assert decoder.result() == document


@pytest.mark.parametrize("fps", [0, 0.5, 16, 100])
def test_out_of_range_fps_is_a_usage_error(fps: float, tmp_path: Path) -> None:
    _, transfer = make_plan(2000)
    with pytest.raises(UsageError, match="frame rate"):
        write_gif(transfer, tmp_path / "x.gif", fps=fps, count=2)


def lines_to_image(lines: list[str]) -> Image.Image:
    """Turn half-block text back into modules, to prove the terminal drawing reads."""
    rows: list[list[bool]] = []
    for line in lines:
        rows.append([char in "▀█" for char in line])
        rows.append([char in "▄█" for char in line])
    width = len(rows[0])
    matrix = [bytes(row) for row in rows[:width]]  # drop the padding row of an odd height
    return matrix_image(matrix, scale=4, border=0)


def never_called(seconds: float) -> None:
    raise AssertionError(f"slept {seconds} s in once mode")


def test_terminal_once_mode_prints_one_decodable_frame() -> None:
    document = b'{"signatures":[]}'
    transfer = plan(document, content_type=ContentType.SIGNATURES)
    output = io.StringIO()
    console = Console(file=output, width=200, height=100, color_system=None)
    assert not console.is_terminal
    assert play_terminal(transfer, console=console, sleep=never_called) == 1
    lines = [line for line in output.getvalue().splitlines() if line]
    assert decode_image(lines_to_image(lines)) == transfer.texts()


def test_terminal_animation_is_bounded_and_uses_the_injected_sleep() -> None:
    _, transfer = make_plan(3000)
    naps: list[float] = []
    now = [100.0]

    def sleep(seconds: float) -> None:
        naps.append(seconds)
        now[0] += seconds

    console = Console(file=io.StringIO(), force_terminal=True, width=200, height=100)
    shown = play_terminal(
        transfer, console=console, fps=4, limit=3, sleep=sleep, clock=lambda: now[0]
    )
    assert shown == 3
    assert naps == [0.25, 0.25, 0.25]  # a fixed beat: drawing time is not added to it


def test_fast_presets_play_at_ten_frames_per_second() -> None:
    assert {name: p.fps for name, p in PRESETS.items()} == {
        "robust": 5, "default": 5, "fast": 10, "fast40": 10
    }  # fmt: skip
    document = random.Random(7).randbytes(20_000)
    transfer = plan(document, PRESETS["fast40"])
    assert 'value="10"' in html_page(transfer, count=2)


def test_terminal_too_small_is_an_environment_failure() -> None:
    _, transfer = make_plan(3000)
    console = Console(file=io.StringIO(), force_terminal=True, width=80, height=24)
    with pytest.raises(EnvironmentFailure, match="enlarge the window"):
        play_terminal(transfer, console=console, limit=2, sleep=lambda _: None)


def test_half_block_lines_shape() -> None:
    matrix = qr_matrix("NC1ABC", version=1, error="M")
    lines = half_block_lines(matrix)
    assert len(lines) == (21 + 8 + 1) // 2
    assert all(len(line) == 21 + 8 for line in lines)
    assert lines[0] == " " * 29


# --- Scan inputs and errors -----------------------------------------------------------------


def test_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        scan_paths([tmp_path / "nope.png"], Decoder())


def test_non_image_file_is_malformed(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("not an image")
    with pytest.raises(MalformedInput, match="is not an image"):
        scan_paths([path], Decoder())


def test_folder_without_images_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(UsageError, match="holds no image"):
        list(images_from_path(tmp_path))


def test_no_paths_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        scan_paths([], Decoder())


def test_too_few_frames_says_how_far_it_got(tmp_path: Path) -> None:
    _, transfer = make_plan(6000)
    write_png_folder(transfer, tmp_path, count=2)
    with pytest.raises(MalformedInput, match=f"Only 2 of {transfer.k} blocks"):
        scan_paths([tmp_path], Decoder())


def test_image_without_codes_says_nothing_was_read(tmp_path: Path) -> None:
    path = tmp_path / "blank.png"
    Image.new("L", (200, 200), 255).save(path)
    with pytest.raises(MalformedInput, match="No ceremony QR frame was read"):
        scan_paths([path], Decoder())


def test_wrong_document_kind_is_refused_by_the_scanner(tmp_path: Path) -> None:
    transfer = plan(b"{}", content_type=ContentType.SIGNATURES)
    write_png_folder(transfer, tmp_path)
    with pytest.raises(MalformedInput, match="but a signing request is expected"):
        scan_paths([tmp_path], Decoder(content_type=ContentType.REQUEST))


def test_auto_backend_prefers_zxing_and_missing_zxing_falls_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert resolve_backend(Backend.AUTO) is Backend.ZXING
    monkeypatch.setitem(sys.modules, "zxingcpp", None)
    assert resolve_backend(Backend.AUTO) is Backend.PYZBAR
    with pytest.raises(EnvironmentFailure, match="zxing-cpp"):
        resolve_backend(Backend.ZXING)


def test_video_without_opencv_names_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "cv2", None)
    video = tmp_path / "capture.mp4"
    video.write_bytes(b"\0" * 100)
    with pytest.raises(EnvironmentFailure, match="opencv-python-headless"):
        scan_paths([video], Decoder())
    with pytest.raises(EnvironmentFailure, match="opencv-python-headless"):
        scan_webcam(Decoder())


class FakeArray:
    """Just enough of a numpy array for scan.py: shape and tobytes()."""

    def __init__(self, image: Image.Image) -> None:
        self.image = image
        self.shape: tuple[int, ...] = (
            (image.height, image.width, 3) if image.mode == "RGB" else (image.height, image.width)
        )

    def tobytes(self) -> bytes:
        return self.image.tobytes()


def fake_cv2(frames: list[Image.Image], opened: bool = True) -> Any:
    module = types.ModuleType("cv2")

    class VideoCapture:
        def __init__(self, source: str | int) -> None:
            self.queue = [FakeArray(frame.convert("RGB")) for frame in frames]
            self.released = False

        def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
            return opened

        def read(self) -> tuple[bool, FakeArray | None]:
            return (True, self.queue.pop(0)) if self.queue else (False, None)

        def release(self) -> None:
            self.released = True

    module.VideoCapture = VideoCapture  # type: ignore[attr-defined]
    module.COLOR_BGR2GRAY = 6  # type: ignore[attr-defined]
    module.cvtColor = lambda array, code: FakeArray(array.image.convert("L"))  # type: ignore[attr-defined]
    return module


def test_video_and_webcam_frames_go_through_opencv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    document, transfer = make_plan(3000)
    images = [Image.new("L", (300, 300), 255)] + [
        frame_image(text, version=transfer.version, error=transfer.error, scale=3)
        for text in transfer.texts(transfer.k + 2)
    ]
    monkeypatch.setitem(sys.modules, "cv2", fake_cv2(images))
    video = tmp_path / "capture.mp4"
    video.write_bytes(b"fake")
    assert scan_paths([video], Decoder()) == document
    assert scan_webcam(Decoder(), device=0) == document
    with pytest.raises(MalformedInput, match=f"Only 1 of {transfer.k}"):
        scan_webcam(Decoder(), max_frames=2)


def test_unopenable_video_and_webcam(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cv2", fake_cv2([], opened=False))
    video = tmp_path / "broken.avi"
    video.write_bytes(b"x")
    with pytest.raises(MalformedInput, match="could not be opened as a video"):
        scan_paths([video], Decoder())
    with pytest.raises(EnvironmentFailure, match="Webcam 2 could not be opened"):
        scan_webcam(Decoder(), device=2)


def test_progress_helpers() -> None:
    progress = Progress(
        rank=3,
        k=10,
        frames=7,
        accepted=3,
        duplicate=1,
        foreign=2,
        corrupt=1,
        rejected=0,
        transfers=1,
        complete=False,
    )
    assert describe_progress(progress) == (
        "3/10 blocks, 7 QR frames read, 1 damaged, 2 not for this transfer"
    )
    output = io.StringIO()
    with progress_bar(Console(file=output, width=120), description="Scanning") as update:
        update(progress)
    assert "3/10 blocks" in output.getvalue()
