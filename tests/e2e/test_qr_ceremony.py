"""A whole ceremony across the air gap by QR only, against the real notary-server and client.

The request crosses as degraded camera-like images (downscaled, blurred, JPEG)
with 20 % of the frames missing; the signatures come back as one QR image.
Also: a thin request for a 10,000-target repository fits in one frame.
"""

from __future__ import annotations

import hashlib
import random
import subprocess
from pathlib import Path

from PIL import Image, ImageFilter

from ceremony.core.documents import Request
from ceremony.qr.capacity import plan, preset_named
from ceremony.qr.frames import ContentType
from tests.e2e.rig import Rig
from tests.notary_env import NotaryCli, NotaryServer


def degrade(folder: Path, drop: float, seed: int) -> int:
    """Camera-like captures: 0.8x, blur, JPEG q60; then drop a fraction of the frames."""
    pngs = sorted(folder.glob("*.png"))
    rng = random.Random(seed)
    dropped = rng.sample(pngs, int(len(pngs) * drop))
    for path in pngs:
        if path in dropped:
            path.unlink()
            continue
        img = Image.open(path).convert("L")
        img = img.resize((int(img.width * 0.8), int(img.height * 0.8)), Image.Resampling.BILINEAR)
        img = img.filter(ImageFilter.GaussianBlur(1))
        img.save(path.with_suffix(".jpg"), quality=60)
        path.unlink()
    return len(dropped)


def test_request_and_signatures_cross_by_qr(
    notary_server: NotaryServer, notary_cli: NotaryCli, new_gun, tmp_path: Path
) -> None:
    rig = Rig(notary_server, tmp_path, new_gun())
    rig.setup_repository()
    payloads = {}
    for i in range(40):  # enough targets that the request needs several frames
        content = f"artifact {i}\n".encode() * 50
        path = tmp_path / f"artifact-{i}.bin"
        path.write_bytes(content)
        payloads[f"artifact-{i}"] = hashlib.sha256(content).hexdigest()
        rig.run("ceremony-online", "add", rig.gun, f"artifact-{i}", str(path))
    frames = tmp_path / "request-qr"
    rig.run("ceremony-online", "export", rig.gun, "--qr-out", str(frames), "--preset", "robust")
    total = len(list(frames.glob("*.png")))
    assert total > 3, "the request should need an animated code"
    assert degrade(frames, 0.2, seed=11) >= 1

    review = rig.run("ceremony", "review", "--qr", str(frames), "--full")
    assert "+ target artifact-7" in review.stdout
    sig_dir = tmp_path / "signatures-qr"
    rig.run("ceremony", "sign", "--qr", str(frames), "--qr-out", str(sig_dir), "--yes")
    sig_images = list(sig_dir.glob("*.png"))
    assert len(sig_images) == 1, "signatures must fit one QR code"

    rig.run("ceremony-online", "publish", "--qr", str(sig_images[0]))
    assert notary_cli.list_targets(rig.gun) == payloads


def test_thin_add_one_target_to_10000_fits_one_frame(
    notary_server: NotaryServer, notary_cli: NotaryCli, new_gun, tmp_path: Path
) -> None:
    rig = Rig(notary_server, tmp_path, new_gun())
    rig.setup_repository()
    rng = random.Random(3)
    lines = [
        f"pkg/{i:05d}.tar.gz {rng.randbytes(32).hex()} {rng.randrange(1, 10**7)}"
        for i in range(10_000)
    ]
    listing = tmp_path / "targets.list"
    listing.write_text("\n".join(lines) + "\n")
    rig.run("ceremony-online", "add", rig.gun, "--from", str(listing))
    rig.run("ceremony-online", "export", rig.gun, "--out", str(tmp_path / "big.request.json"))
    rig.run(
        "ceremony",
        "sign",
        str(tmp_path / "big.request.json"),
        "--out",
        str(tmp_path / "big.sig.json"),
        "--yes",
    )
    rig.run("ceremony-online", "publish", str(tmp_path / "big.sig.json"))

    (tmp_path / "new.bin").write_bytes(b"one more\n")
    rig.run("ceremony-online", "add", rig.gun, "one-more", str(tmp_path / "new.bin"))
    thin = tmp_path / "thin.request.json"
    rig.run("ceremony-online", "export", rig.gun, "--out", str(thin), "--thin")
    data = thin.read_bytes()
    assert Request.from_bytes(data).thin
    # It carries the server's snapshot and timestamp (about 1.5 KB) for the offline checks:
    # one static code at fast40, a few frames at the default preset.
    assert plan(data, preset_named("fast40"), content_type=ContentType.REQUEST).is_static
    assert plan(data, preset_named("default"), content_type=ContentType.REQUEST).encoder.k <= 3

    # A machine that does not hold the base is told what it lacks.
    other = dict(rig.env, CEREMONY_HOME=str(tmp_path / "empty-home"))
    lacking = subprocess.run(
        ["ceremony", "review", str(thin)],
        env=other,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    assert lacking.returncode == 1
    assert "does not hold" in lacking.stderr and "without --thin" in lacking.stderr

    sig = tmp_path / "thin.sig.json"
    rig.run("ceremony", "sign", str(thin), "--out", str(sig), "--yes")
    assert plan(
        sig.read_bytes(), preset_named("default"), content_type=ContentType.SIGNATURES
    ).is_static
    rig.run("ceremony-online", "publish", str(sig))
    listed = notary_cli.list_targets(rig.gun)
    assert len(listed) == 10_001
    assert listed["one-more"] == hashlib.sha256(b"one more\n").hexdigest()
