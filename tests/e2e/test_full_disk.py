"""A full disk (ENOSPC) is one sentence, exit 3, and corrupts nothing.

The homes or the output live on a tiny tmpfs mounted for the test (tests run as root),
filled until one page is left, so the write that fails is the second of a pair: the key
file fits but its record does not; the trust record fits but the signatures file does not.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.rig import Rig, one_sentence
from tests.e2e.test_ceremony_cli import export_change, publish_new
from tests.notary_env import NotaryServer

pytestmark = pytest.mark.notary


@pytest.fixture
def tiny(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=800k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(mount: Path, leave_pages: int = 1) -> None:
    """Fill the tmpfs with 4 KiB files, then free `leave_pages` of them."""
    made: list[Path] = []
    for i in range(100_000):
        path = mount / f"filler-{i}"
        try:
            path.write_bytes(b"\0" * 4096)
        except OSError:
            with contextlib.suppress(OSError):
                path.unlink()
            break
        made.append(path)
    for path in made[:leave_pages]:
        path.unlink()


def _temporaries(*folders: Path) -> list[Path]:
    return [p for f in folders for p in f.rglob(".*.tmp")]


def test_key_generate_on_a_full_disk_leaves_no_invisible_key(
    notary_server: NotaryServer, tiny: Path
) -> None:
    rig = Rig(notary_server, tiny, "example.com/test/full-disk-keys")
    rig.run("ceremony", "key", "generate", "targets", "--gun", rig.gun)
    _fill(tiny)
    failed = rig.run("ceremony", "key", "generate", "targets", "--gun", rig.gun, code=3)
    assert "No space left on device" in one_sentence(failed)
    assert "Generated" not in failed.stdout + failed.stderr.split("error:")[0]
    listed = rig.run("ceremony", "key", "list").stdout
    keys = list((tiny / "offline" / "private").glob("*.key"))
    assert len(keys) == 1 and keys[0].stem in listed
    assert not _temporaries(tiny / "offline")


def test_staging_on_a_full_disk_stages_nothing(notary_server: NotaryServer, tiny: Path) -> None:
    rig = Rig(notary_server, tiny, "example.com/test/full-disk-stage")
    listing = tiny.parent / "targets.txt"
    listing.write_text("".join(f"t{i:05d} {i:064x} {i + 1}\n" for i in range(20_000)))
    # No server named: a GUN the server lacks is refused at first staging, before any write.
    offline_staging = {k: v for k, v in rig.env.items() if k != "CEREMONY_SERVER"}
    failed = rig.run_env(
        offline_staging, "ceremony-online", "add", rig.gun, "--from", str(listing), code=3
    )
    assert "No space left on device" in one_sentence(failed)
    status = rig.run_env(offline_staging, "ceremony-online", "status", rig.gun, code=2)
    assert "Staged changes: 0" in status.stdout
    assert not _temporaries(tiny)


def test_sign_with_a_full_output_disk_says_only_what_is_true(
    notary_server: NotaryServer, new_gun, tmp_path: Path, tiny: Path
) -> None:
    rig = publish_new(notary_server, tmp_path, new_gun())
    request = export_change(rig, "b")
    _fill(tiny, leave_pages=0)
    out = tiny / "b.sig"
    sign = ["ceremony", "sign", str(request), "--yes"]
    failed = rig.run(*sign, "--out", str(out), code=3)
    assert "No space left on device" in one_sentence(failed)
    assert "Signatures written" not in failed.stderr and not out.exists()
    assert not _temporaries(tiny)
    elsewhere = tmp_path / "b.sig"
    refused = rig.run(*sign, "--out", str(elsewhere), code=1)  # recorded: a replay is refused
    assert "--again" in one_sentence(refused)
    rig.run(*sign, "--out", str(elsewhere), "--again")
    rig.run("ceremony-online", "publish", str(elsewhere))
