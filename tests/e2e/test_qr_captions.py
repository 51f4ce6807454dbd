"""QR outputs carry a caption: GUN, request id, words and frame n/N on every PNG frame and
GIF frame, in the HTML player, and in the terminal player, which prints them when it stops."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageSequence

from ceremony.core.documents import Request
from ceremony.qr.capacity import plan, preset_named
from ceremony.qr.frames import ContentType
from ceremony.qr.render import captioned, frame_image
from ceremony.qr.scan import Backend, decode_image
from ceremony.qr.transfer import digest_phrase
from tests.e2e.pty_util import PtyProcess
from tests.e2e.rig import Rig
from tests.notary_env import NotaryServer

pytestmark = pytest.mark.notary


def _same(a: Image.Image, b: Image.Image) -> bool:
    return (
        a.size == b.size and ImageChops.difference(a.convert("L"), b.convert("L")).getbbox() is None
    )


def test_png_gif_html_and_terminal_outputs_are_captioned(
    notary_server: NotaryServer, tmp_path: Path, new_gun: Callable[[], str]
) -> None:
    rig = Rig(notary_server, tmp_path, new_gun())
    rig.setup_repository()
    request_file = tmp_path / "r.json"
    rig.run("ceremony-online", "export", rig.gun, "--out", str(request_file), "--preset", "robust")
    request = Request.from_bytes(request_file.read_bytes())
    words = digest_phrase(request.digest)
    lines = [f"{rig.gun}  request {request.id}", f"words: {words}"]

    rig.run(
        "ceremony-online",
        "export",
        rig.gun,
        "--qr-out",
        str(tmp_path / "png"),
        "--preset",
        "robust",
    )
    p = plan(request.to_bytes(), preset_named("robust"), content_type=ContentType.REQUEST)
    pngs = sorted((tmp_path / "png").glob("frame-*.png"))
    assert len(pngs) == p.export_count > 1
    for seq in (0, len(pngs) - 1):
        shown = Image.open(pngs[seq])
        code = frame_image(p.encoder.frame(seq), version=p.version, error=p.error)
        assert _same(shown, captioned(code, [*lines, f"frame {seq + 1}/{len(pngs)}"]))
        assert decode_image(shown, backend=Backend.ZXING) == [p.encoder.frame(seq)]

    rig.run(
        "ceremony-online", "export", rig.gun, "--qr-out", str(tmp_path / "gif"), "--format",
        "gif", "--preset", "robust",
    )  # fmt: skip
    gif = Image.open(tmp_path / "gif" / "request.gif")
    frames = [frame.copy() for frame in ImageSequence.Iterator(gif)]
    assert len(frames) == p.export_count
    code = frame_image(p.encoder.frame(1), version=p.version, error=p.error)
    assert _same(frames[1], captioned(code, [*lines, f"frame 2/{len(frames)}"]))

    rig.run(
        "ceremony-online", "export", rig.gun, "--qr-out", str(tmp_path / "html"), "--format",
        "html", "--preset", "robust",
    )  # fmt: skip
    page = (tmp_path / "html" / "request.html").read_text()
    assert rig.gun in page and request.id in page and words in page and "Frame " in page

    env = dict(rig.env, LINES="90", COLUMNS="200")
    session = PtyProcess(
        ["ceremony-online", "export", rig.gun, "--format", "terminal", "--preset", "robust"], env
    )
    session.read_until("frame 3 ")
    session.read_until(request.id)
    session.send(b"\x03")
    code_ = session.finish()
    assert code_ == 0, session.output[-2000:]
    tail = session.output[session.output.rfind("Stopped after") :]
    assert request.id in tail and words in tail
