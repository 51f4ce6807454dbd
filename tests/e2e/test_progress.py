"""Long work shows progress on stderr: plain lines off a terminal, a rich display at one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.pty_util import PtyProcess
from tests.e2e.rig import Rig
from tests.notary_env import NotaryServer

pytestmark = pytest.mark.notary


def test_progress_is_plain_lines_off_a_terminal_and_rich_at_one(
    notary_server: NotaryServer, tmp_path: Path, new_gun: Callable[[], str]
) -> None:
    rig = Rig(notary_server, tmp_path, new_gun())
    rig.setup_repository()
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"t{i} {'ab' * 32} {i}\n" for i in range(500)))
    rig.run("ceremony-online", "add", rig.gun, "--from", str(listing))

    export = rig.run(
        "ceremony-online", "export", rig.gun, "--out", str(tmp_path / "r.json"),
        "--qr-out", str(tmp_path / "qr"), "--preset", "robust",
    )  # fmt: skip
    assert set(export.stdout.split()) >= {"request:", "digest:", "words:"}
    assert "Fetching and verifying" not in export.stdout  # results only on stdout
    err = export.stderr
    for step in (
        "Fetching and verifying",
        "Building and checking the request",
        "Drawing the request as QR codes",
    ):
        assert step in err, err
    frames = len(list((tmp_path / "qr").glob("frame-*.png")))
    assert f"{frames} of {frames} done in " in err
    assert "\x1b[" not in err  # no terminal codes in a log

    sig = tmp_path / "r.sig"
    rig.run("ceremony", "sign", str(tmp_path / "r.json"), "--out", str(sig), "--yes")
    publish = rig.run("ceremony-online", "publish", str(sig))
    assert "Uploading" in publish.stderr and "back from" in publish.stderr

    rig.run("ceremony-online", "add", rig.gun, "x", "--sha256", "cd" * 32, "--length", "1")
    session = PtyProcess(
        [
            "ceremony-online",
            "export",
            rig.gun,
            "--qr-out",
            str(tmp_path / "qr2"),
            "--preset",
            "robust",
        ],
        rig.env,
    )
    code = session.finish(timeout=120)
    assert code == 0, session.output
    assert "Drawing the request as QR codes" in session.output
    assert "━" in session.output and "0:00:" in session.output  # bar and elapsed time
