"""Runbooks are executed: every ```sh block of each runbook, in order, against the real server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.notary_env import PASSPHRASE, NotaryServer
from tests.softhsm import make_softhsm
from tests.test_preflight import machine

NOT_EXECUTED = "<!-- not executed by the tests:"  # a runbook for hardware this machine lacks
ALL_RUNBOOKS = sorted((Path(__file__).resolve().parent.parent / "runbooks").glob("*.md"))
RUNBOOKS = [p for p in ALL_RUNBOOKS if NOT_EXECUTED not in p.read_text()]
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)


def blocks(path: Path) -> list[str]:
    return BLOCK.findall(path.read_text())


@pytest.mark.parametrize("runbook", RUNBOOKS, ids=[p.stem for p in RUNBOOKS])
def test_runbook_commands_run(
    runbook: Path, notary_server: NotaryServer, new_gun, tmp_path: Path
) -> None:
    steps = blocks(runbook)
    assert steps, f"{runbook.name} has no ```sh blocks"
    bindir = str(Path(sys.executable).parent)
    env = {
        "PATH": f"{bindir}:{os.environ['PATH']}",
        "HOME": str(tmp_path / "home"),
        "GUN": new_gun(),
        "CEREMONY_HOME": str(tmp_path / "offline"),
        "CEREMONY_ONLINE_HOME": str(tmp_path / "online"),
        "CEREMONY_SERVER": notary_server.url,
        "CEREMONY_TLS_CA": str(notary_server.ca),
        "NOTARY_ROOT_PASSPHRASE": PASSPHRASE,
        "NOTARY_TARGETS_PASSPHRASE": PASSPHRASE,
        "NOTARY_SNAPSHOT_PASSPHRASE": PASSPHRASE,  # the real notary client's own snapshot key
        "NOTARY_DELEGATION_PASSPHRASE": PASSPHRASE,
        "WORK": str(tmp_path / "usb"),
        **make_softhsm(tmp_path / "hsm").env(),  # a fresh SoftHSM2 token directory each
        # `ceremony preflight` reads an air-gapped /sys and /proc (this machine is connected)
        "CEREMONY_PREFLIGHT_ROOT": str(machine(tmp_path)),
    }
    (tmp_path / "usb").mkdir()
    (tmp_path / "home").mkdir()
    outputs = []
    for i, script in enumerate(steps, 1):
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, (
            f"{runbook.name} block {i} failed:\n{script}\n{proc.stdout}\n{proc.stderr}"
        )
        outputs.append(proc.stdout)
    if runbook.stem == "first-ceremony":
        assert "app-1.0" in outputs[-1]
        digest = __import__("hashlib").sha256(b"release 1.0\n").hexdigest()
        assert digest in outputs[-1]
    if runbook.stem == "yearly-expiry-refresh":
        assert outputs[1].strip().endswith("3")  # three repositories due in the window
        assert outputs[-1].count("release-1") == 3  # the notary client lists each
        assert outputs[-1].count("already published") == 3  # the rerun finishes nothing new
    if runbook.stem == "root-on-a-token":
        assert "app-1.0" in outputs[4]  # the real notary client lists what the token signed


def test_runbooks_not_executed_say_so_and_hold_no_sh_block() -> None:
    for runbook in ALL_RUNBOOKS:
        if runbook not in RUNBOOKS:
            assert not blocks(runbook), f"{runbook.name} is not executed, so it must hold no ```sh"
