"""QR transfers read from real video files with the real OpenCV, and the webcam path's failure.

A webcam cannot exist in CI; `ceremony review --qr webcam` must then fail with
one sentence and exit 3 (environment), never hang or trace back.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from ceremony.qr.capacity import plan, preset_named
from ceremony.qr.frames import ContentType, Decoder
from ceremony.qr.render import frame_image
from ceremony.qr.scan import scan_paths


def write_video(path: Path, texts: list[str], version: int, error: str) -> None:
    images = [frame_image(t, version=version, error=error, scale=4).convert("RGB") for t in texts]
    width, height = images[0].size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (width, height))
    for image in images:
        writer.write(np.ascontiguousarray(np.array(image)[:, :, ::-1]))
    writer.release()


def test_a_video_of_the_frames_with_losses_decodes(tmp_path: Path) -> None:
    document = random.Random(5).randbytes(6000)
    transfer = plan(document, preset_named("robust"), content_type=ContentType.REQUEST)
    texts = transfer.texts()
    kept = [t for i, t in enumerate(texts) if i % 5 != 2]  # a fifth of the frames never filmed
    video = tmp_path / "capture.avi"
    write_video(video, kept, transfer.version, transfer.error)
    assert scan_paths([video], Decoder(content_type=ContentType.REQUEST)) == document


def test_review_from_a_missing_webcam_exits_3(tmp_path: Path) -> None:
    env = dict(os.environ, CEREMONY_HOME=str(tmp_path / "home"))
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ceremony"), "review", "--qr", "webcam:7"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Webcam 7" in errors[0]
    assert "Traceback" not in proc.stderr
