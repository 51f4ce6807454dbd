"""One staged set makes one request; re-exports re-render it; a failed export keeps nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.rig import Rig, one_sentence, stage_text_target
from tests.notary_env import NotaryServer

pytestmark = pytest.mark.notary


def _id_and_words(stdout: str) -> tuple[str, str]:
    fields = dict(line.split(":", 1) for line in stdout.splitlines() if ":" in line)
    return fields["request"].strip(), fields["words"].strip()


def test_every_format_re_renders_the_same_request_and_a_failed_export_keeps_nothing(
    notary_server: NotaryServer, tmp_path: Path
) -> None:
    rig = Rig(notary_server, tmp_path, "example.com/ux/requests")
    rig.setup_repository()
    first = _id_and_words(
        rig.run("ceremony-online", "export", rig.gun, "--out", str(tmp_path / "r.json")).stdout
    )
    for fmt in ("png", "gif", "html"):
        again = rig.run(
            "ceremony-online", "export", rig.gun, "--qr-out", str(tmp_path / fmt), "--format", fmt
        )
        assert _id_and_words(again.stdout) == first
        assert "exporting it again" in again.stderr
    listed = json.loads(rig.run("ceremony-online", "requests", "list", rig.gun, "--json").stdout)
    assert [r["id"] for r in listed["requests"]] == [first[0]]
    assert listed["requests"][0]["state"] == "exported"

    # A new staged set whose export fails (the QR folder already holds frames): no request is
    # kept and the earlier one is not superseded.
    stage_text_target(rig, "a.txt", "a\n")
    failed = rig.run(
        "ceremony-online", "export", rig.gun, "--qr-out", str(tmp_path / "png"), code=2
    )
    assert "already holds frame-*.png" in one_sentence(failed)
    listed = json.loads(rig.run("ceremony-online", "requests", "list", rig.gun, "--json").stdout)
    assert [(r["id"], r["state"]) for r in listed["requests"]] == [(first[0], "exported")]

    # Cancel it: the next export makes a new request, then re-exports that one.
    rig.run("ceremony-online", "requests", "cancel", rig.gun, first[0])
    second = _id_and_words(
        rig.run("ceremony-online", "export", rig.gun, "--out", str(tmp_path / "r2.json")).stdout
    )
    assert second[0] != first[0]
    third = rig.run(
        "ceremony-online",
        "export",
        rig.gun,
        "--qr-out",
        str(tmp_path / "html2"),
        "--format",
        "html",
    )
    assert _id_and_words(third.stdout) == second
    text = rig.run("ceremony-online", "requests", "list", rig.gun).stdout
    assert first[0] in text and "cancelled" in text and second[0] in text
