"""QR transport benchmark: loss tolerance, render/decode cost and throughput per preset.

Run: .venv/bin/python bench/qr.py   (about a minute on 2 cores; loss figures are seeded and
reproducible, timings are medians on this machine). Prints markdown tables.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image, ImageFilter

from ceremony.qr.capacity import PRESETS, plan
from ceremony.qr.fountain import frame_coefficients
from ceremony.qr.render import DEFAULT_SCALE, frame_image, qr_matrix
from ceremony.qr.scan import Backend, decode_image

LossModel = Callable[[random.Random], Iterator[bool]]
"""Yields True for each lost frame."""


def independent(p: float) -> LossModel:
    def frames(rng: random.Random) -> Iterator[bool]:
        while True:
            yield rng.random() < p

    return frames


def gilbert_elliott(p: float, mean_burst: float) -> LossModel:
    """Two states; every frame is lost in the bad state. Mean loss p, mean burst length given."""
    leave_bad = 1 / mean_burst
    enter_bad = p * leave_bad / (1 - p)

    def frames(rng: random.Random) -> Iterator[bool]:
        bad = rng.random() < p
        while True:
            yield bad
            bad = rng.random() >= leave_bad if bad else rng.random() < enter_bad

    return frames


def fountain_frames(k: int, losses: Iterator[bool], transfer_id: bytes) -> int:
    """Frames shown until the GF(2) rank reaches K (coefficient rows only, as in frames.py)."""
    pivots: dict[int, int] = {}
    seq = 0
    while len(pivots) < k:
        if not next(losses):
            row = frame_coefficients(transfer_id, seq, k)
            while row:
                lead = row.bit_length() - 1
                pivot = pivots.get(lead)
                if pivot is None:
                    pivots[lead] = row
                    break
                row ^= pivot
        seq += 1
    return seq


def looped_frames(k: int, losses: Iterator[bool]) -> int:
    """Frames shown until every block was seen once, the sender cycling 0..K-1."""
    missing = set(range(k))
    seq = 0
    while missing:
        if not next(losses):
            missing.discard(seq % k)
        seq += 1
    return seq


def summarize(values: list[int], k: int) -> str:
    median = statistics.median(values)
    p90 = statistics.quantiles(values, n=10, method="inclusive")[-1]
    return f"{median:.0f} / {p90:.0f} ({median / k:.2f}×)"


def loss_table(runs: int) -> str:
    models: list[tuple[str, LossModel]] = [
        ("0 %", independent(0.0)),
        ("10 %", independent(0.1)),
        ("20 %", independent(0.2)),
        ("30 %", independent(0.3)),
        ("20 % bursty", gilbert_elliott(0.2, 5)),
    ]
    lines = [
        f"Frames shown until decoded, median / p90 over {runs} runs (× K). Bursty = "
        "Gilbert–Elliott, mean burst 5 frames, 20 % mean loss.",
        "",
        "| K | scheme | " + " | ".join(name for name, _ in models) + " |",
        "|---|---|" + "---|" * len(models),
    ]
    for k in (34, 318):
        for scheme in ("fountain", "looped sequence"):
            cells = []
            for index, (_, model) in enumerate(models):
                rng = random.Random(1000 * k + index)
                counts = []
                for run in range(runs):
                    losses = model(rng)
                    if scheme == "fountain":
                        counts.append(fountain_frames(k, losses, run.to_bytes(4, "big")))
                    else:
                        counts.append(looped_frames(k, losses))
                cells.append(summarize(counts, k))
            lines.append(f"| {k} | {scheme} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def degrade(image: Image.Image) -> Image.Image:
    gray = image.convert("L")
    small = gray.resize((round(gray.width * 0.8), round(gray.height * 0.8)))
    buffer = io.BytesIO()
    small.filter(ImageFilter.GaussianBlur(1)).save(buffer, format="JPEG", quality=60)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("L")


def best_ms(action: Callable[[], object], repeats: int = 5) -> float:
    """Best of a few runs: the cost of the work itself, without other processes' noise."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    return min(samples)


def speed_table(frames_per_preset: int) -> str:
    lines = [
        f"ms per full frame: median over {frames_per_preset} random frames of the best of 5 "
        "runs. Render = qrcode "
        f"matrix (fixed mask) + PIL image at {DEFAULT_SCALE} px/module. Decode on the clean "
        "render and on a degraded capture (0.8×, Gaussian blur 1, JPEG 60).",
        "",
        "| preset | QR | px | qrcode matrix | render total | pyzbar clean | zxing clean "
        "| pyzbar degraded | zxing degraded | decoded |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, preset in PRESETS.items():
        document = random.Random(name).randbytes(preset.block_size * (frames_per_preset + 1))
        transfer = plan(document, preset)
        texts = transfer.texts(frames_per_preset)
        version, error = transfer.version, transfer.error
        matrix = [
            best_ms(lambda t=text, v=version, e=error: qr_matrix(t, version=v, error=e))
            for text in texts
        ]
        render = [
            best_ms(lambda t=text, v=version, e=error: frame_image(t, version=v, error=e))
            for text in texts
        ]
        images = [frame_image(text, version=version, error=error) for text in texts]
        captures = [degrade(image.convert("L")) for image in images]
        clean = [image.convert("L") for image in images]
        cells: list[str] = []
        ok = 0
        for pictures in (clean, captures):
            for backend in (Backend.PYZBAR, Backend.ZXING):
                times = []
                for picture, text in zip(pictures, texts, strict=True):
                    times.append(best_ms(lambda p=picture, b=backend: decode_image(p, backend=b)))
                    ok += decode_image(picture, backend=backend) == [text]
                cells.append(f"{statistics.median(times):.1f}")
        side = images[0].width
        lines.append(
            f"| {name} | v{version}-{error} | {side} | {statistics.median(matrix):.1f} | "
            f"{statistics.median(render):.1f} | {cells[0]} | {cells[1]} | {cells[2]} | "
            f"{cells[3]} | {ok}/{4 * len(texts)} |"
        )
    return "\n".join(lines)


def throughput_table(runs: int) -> str:
    lines = [
        "Compressed payload per second at each preset's frame rate (the rate `play`, the GIF and "
        "the HTML player use), and a 100 KB compressed message "
        f"(fountain, median of {runs} runs). The decode table above shows the per-frame decode "
        "time a scanner needs to keep up (100 ms per frame at 10 fps).",
        "",
        "| preset | B (bytes/frame) | fps | KB/s | K for 100 KB | frames, time at 0 % loss "
        "| frames, time at 20 % loss |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, preset in PRESETS.items():
        block = preset.block_size
        fps = preset.fps
        k = -(-(100_000 + 32) // block)
        rng = random.Random(k)
        lossy = statistics.median(
            fountain_frames(k, independent(0.2)(rng), run.to_bytes(4, "big")) for run in range(runs)
        )
        lines.append(
            f"| {name} (v{preset.version}-{preset.error}) | {block} | {fps:g} | "
            f"{block * fps / 1000:.1f} | {k} | {k}, {k / fps:.1f} s | "
            f"{lossy:.0f}, {lossy / fps:.1f} s |"
        )
    return "\n".join(lines)


def environment() -> str:
    versions = ", ".join(
        f"{package} {metadata.version(package)}"
        for package in ("qrcode", "pillow", "pyzbar", "zxing-cpp")
    )
    return (
        f"Python {platform.python_version()} on {platform.machine()}, "
        f"{len(os.sched_getaffinity(0))} CPU(s); {versions}."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=100, help="Monte-Carlo runs per cell")
    parser.add_argument("--frames", type=int, default=5, help="timed frames per preset")
    arguments = parser.parse_args()
    sections = [
        ("# QR transport benchmark", environment()),
        ("## Loss tolerance: fountain vs looped sequence", loss_table(arguments.runs)),
        ("## Render and decode cost per frame", speed_table(arguments.frames)),
        ("## Throughput per preset", throughput_table(max(10, arguments.runs // 4))),
    ]
    for title, body in sections:
        print(f"{title}\n\n{body}\n")


if __name__ == "__main__":
    main()
