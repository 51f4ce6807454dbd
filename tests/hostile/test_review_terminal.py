"""What a real terminal shows of a review with disguised names (tmux, read with capture-pane)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.rig import Rig
from tests.notary_env import NotaryServer

pytestmark = [
    pytest.mark.notary,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux (make system-deps)"),
]

NAMES = {
    "cyrillic": "lat\u0435st",
    "bidi": "app\u202efdp.exe",
    "isolate": "x\u2066y\u2069z",
    "zero-width": "zero\u200bwidth",
    "fullwidth": "ｌatest",
    "long": "L" * 10_000,
}
SHOWN = {
    "cyrillic": "lat\\u0435st",
    "bidi": "app\\u202efdp.exe",
    "isolate": "x\\u2066y\\u2069z",
    "zero-width": "zero\\u200bwidth",
    "fullwidth": "\\uff4catest",
}
FLAG = "contains invisible or look-alike characters"


def _screen(rig: Rig, tmp: Path, *argv: str) -> str:
    """Run `argv` in a detached 200x50 tmux session; everything it showed, scrollback too."""
    session = f"hostile-{time.monotonic_ns()}"
    env = " ".join(
        f"{k}={shlex.quote(v)}"
        for k, v in rig.env.items()
        if k.startswith(("CEREMONY_", "PATH")) or k == "HOME"
    )
    done = tmp / f"{session}.done"
    script = f"env {env} PAGER=cat TERM=xterm-256color {shlex.join(argv)}; touch {done}; sleep 60"
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "200", "-y", "50", script], check=True
    )
    try:
        deadline = time.monotonic() + 120
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert done.exists(), "the review did not finish"
        return subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", session, "-S", "-", "-E", "-"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)


def test_the_review_screen_shows_disguised_names_escaped_flagged_and_cut(
    notary_server: NotaryServer, new_gun: Callable[[], str], tmp_path: Path
) -> None:
    rig = Rig(notary_server, tmp_path, new_gun())
    rig.setup_repository()
    for i, name in enumerate(NAMES.values()):
        rig.run(
            "ceremony-online", "add", rig.gun, name, "--sha256", f"{i:02x}" * 32, "--length", "1"
        )
    request = tmp_path / "request.json"
    rig.run("ceremony-online", "export", rig.gun, "--out", str(request))

    screen = _screen(rig, tmp_path, "ceremony", "review", str(request))
    rows = screen.splitlines()
    # the first screen (50 rows) holds the summary and one `!` line per disguised name
    first = "\n".join(rows[:50])
    assert "Summary:" in first
    for key, text in SHOWN.items():
        assert f"target {text} {FLAG}" in first, (key, first)
    assert "L" * 201 not in screen
    # the detail: every name escaped, the long one cut with its length
    assert "(10000 characters, first 200 shown)" in screen
    for text in SHOWN.values():
        assert f"+ target {text}" in screen
    for raw in ("\u0435", "\u202e", "\u2066", "\u200b", "ｌ"):
        assert raw not in screen
    assert len(rows) < 120, "a long name pushed the review off the screen"
