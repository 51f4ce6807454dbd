"""Review of a large change: a summary with counts first, every `!` line always, and the
per-target detail only with --full (or in a pager at a terminal)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.rig import Rig, full_ceremony
from tests.notary_env import NotaryServer

pytestmark = pytest.mark.notary


def test_a_two_thousand_target_review_is_short_unless_full(
    notary_server: NotaryServer, tmp_path: Path, new_gun: Callable[[], str]
) -> None:
    rig = Rig(notary_server, tmp_path, new_gun())
    rig.setup_repository()
    full_ceremony(rig, "init")
    listing = tmp_path / "targets.txt"
    listing.write_text(
        "".join(
            f"pkg/{i:05d}.tar {hashlib.sha256(bytes([i % 256])).hexdigest()} {i}\n"
            for i in range(2000)
        )
    )
    rig.run("ceremony-online", "add", rig.gun, "--from", str(listing))
    pem = tmp_path / "delegate.pem"
    rig.run(
        "openssl",
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        str(tmp_path / "d.key"),
    )
    rig.run("openssl", "ec", "-in", str(tmp_path / "d.key"), "-pubout", "-out", str(pem))
    rig.run(
        "ceremony-online", "delegation", "add", rig.gun, "targets/releases", "--cert", str(pem),
        "--all-paths",
    )  # fmt: skip
    request = tmp_path / "big.json"
    rig.run("ceremony-online", "export", rig.gun, "--out", str(request))

    short = rig.run("ceremony", "review", str(request)).stdout
    lines = short.splitlines()
    assert len(lines) < 60, short
    assert "targets +2000 -0 ~0" in short
    assert any(line.startswith("! ") and "targets/releases" in line for line in lines)
    assert "pkg/01999.tar" not in short
    assert "--full" in short

    full = rig.run("ceremony", "review", str(request), "--full").stdout
    assert "pkg/00000.tar" in full and "pkg/01999.tar" in full
    assert len(full.splitlines()) > 2000
