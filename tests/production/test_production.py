"""The ceremony against a production-shaped Notary: PostgreSQL, notary-signer over mutual
TLS, notary-server with trust_service remote (`online.production`), checked with the real
notary client. Killing notary-signer, PostgreSQL or notary-server in the middle of a
publish is exit 3 with one sentence, loses nothing, and the same publish succeeds once
the process is back.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from online.production import ProductionStack, start_production, stop_production
from tests.e2e import test_ceremony_cli, test_ceremony_flows
from tests.e2e.rig import Rig, full_ceremony, one_sentence, stage_text_target
from tests.e2e.test_ceremony_cli import publish_new
from tests.lying_proxy import start_proxy
from tests.notary_env import NotaryCli, NotaryServer
from tests.production.conftest import Running, as_notary_server, stack_dir

pytestmark = pytest.mark.notary


def test_golden_path(
    notary_server: NotaryServer, notary_cli: NotaryCli, new_gun, tmp_path: Path
) -> None:
    rig = publish_new(notary_server, tmp_path, new_gun())
    stage_text_target(rig, "b", "b\n")
    full_ceremony(rig, "second")
    assert set(notary_cli.list_targets(rig.gun)) == {"a", "b"}


def test_root_rotation(
    notary_server: NotaryServer, notary_cli: NotaryCli, new_gun, tmp_path: Path
) -> None:
    test_ceremony_flows.test_root_rotation_signed_offline_by_old_and_new_keys(
        notary_server, notary_cli, new_gun, tmp_path
    )


def test_threshold_ceremony(
    notary_server: NotaryServer, notary_cli: NotaryCli, new_gun, tmp_path: Path
) -> None:
    test_ceremony_cli.test_threshold_two_of_two_across_two_homes(
        notary_server, notary_cli, new_gun, tmp_path
    )


def test_ten_thousand_targets(
    notary_server: NotaryServer, notary_cli: NotaryCli, new_gun, tmp_path: Path
) -> None:
    rig = publish_new(notary_server, tmp_path, new_gun())
    listing = tmp_path / "targets.txt"
    listing.write_text("".join(f"t{i:05d} {i:064x} {i + 1}\n" for i in range(10_000)))
    rig.run("ceremony-online", "add", rig.gun, "--from", str(listing))
    full_ceremony(rig, "bulk")
    listed = notary_cli.list_targets(rig.gun)
    assert len(listed) == 10_001 and listed["t09999"] == f"{9999:064x}"


def test_the_stack_restarts_on_its_folder_keeping_data_and_keys(
    production: ProductionStack, tmp_path: Path, new_gun
) -> None:
    # a second stack in a fresh folder: started, stopped, started again on the same folder
    stack = start_production(Path(production.directory.parent / f"{production.directory.name}-2"))
    try:
        server = as_notary_server(stack)
        rig = publish_new(server, tmp_path, new_gun())
        pids = {p.pid for p in stack.processes.values()}
        stop_production(stack)
        assert all(p.poll() is not None for p in stack.processes.values())
        env = (stack.directory / "env").read_text()
        assert f"CEREMONY_SERVER={stack.url}\nCEREMONY_TLS_CA={stack.ca}\n" == env
        stack = start_production(stack.directory)
        assert stack.url == server.url and not pids & {p.pid for p in stack.processes.values()}
        stage_text_target(rig, "b", "b\n")
        full_ceremony(rig, "after-restart")  # the server-held keys survived (notary-signer)
        assert set(NotaryCli(server, tmp_path / "trust").list_targets(rig.gun)) == {"a", "b"}
    finally:
        stop_production(stack)
    try:
        assert not (stack.directory / "pg" / "postmaster.pid").exists()
    finally:
        shutil.rmtree(stack.directory, ignore_errors=True)


def _prepared(running: Running, tmp_path: Path, gun: str) -> tuple[Rig, Path, object]:
    """A published repository, one more target staged, exported and signed, and a proxy in
    front of the server so a process can be killed while the upload is in flight."""
    server = as_notary_server(running.stack)
    rig = publish_new(server, tmp_path, gun)
    stage_text_target(rig, "b", "b\n")
    request, signatures = tmp_path / "b.request.json", tmp_path / "b.sig"
    rig.run("ceremony-online", "export", rig.gun, "--out", str(request))
    rig.run("ceremony", "sign", str(request), "--out", str(signatures), "--yes")
    d = running.stack.directory / "certs"
    proxy = start_proxy(
        running.stack.ports["server"], running.stack.ca, d / "server.crt", d / "server.key"
    )
    rig.env["CEREMONY_SERVER"] = proxy.url
    return rig, signatures, proxy


@pytest.mark.parametrize("victim", ["notary-signer", "postgres", "notary-server"])
def test_a_process_killed_mid_publish_loses_nothing(
    dedicated: Running, tmp_path: Path, new_gun, victim: str
) -> None:
    rig, signatures, proxy = _prepared(dedicated, tmp_path, new_gun())
    post = re.escape(f"/v2/{rig.gun}/_trust/tuf/") + "$"
    proxy.lie(post, "hook", lambda: dedicated.kill(victim), method="POST", times=1)  # type: ignore[attr-defined]
    try:
        failed = rig.run("ceremony-online", "publish", str(signatures), code=3)
        sentence = one_sentence(failed)
        assert "try again" in sentence or "check" in sentence, sentence
        status = rig.run(
            "ceremony-online", "status", rig.gun, code=0 if victim == "notary-signer" else 3
        )
        assert "Staged changes: 1" in status.stdout  # nothing was dropped
        dedicated.restart(victim)
        # notary-server reconnects to a restarted signer or database on its own schedule
        # (its health lags up to 10 s): until then the publish fails the same way, exit 3.
        for _ in range(20):
            published = subprocess.run(
                ["ceremony-online", "publish", str(signatures)],
                env=rig.env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=300,
            )
            if published.returncode != 3:
                break
            time.sleep(1.5)
        assert published.returncode == 0, published.stderr
        assert "Published request" in published.stdout or "already" in published.stdout
        listed = NotaryCli(as_notary_server(dedicated.stack), tmp_path / "trust").list_targets(
            rig.gun
        )
        assert set(listed) == {"a", "b"}
        assert "Staged changes: 0" in rig.run("ceremony-online", "status", rig.gun).stdout
    finally:
        proxy.stop()  # type: ignore[attr-defined]


def test_local_server_production_runs_until_sigterm_and_leaves_no_process() -> None:
    directory = stack_dir()
    command = Path(sys.executable).parent / "ceremony-online"
    proc = subprocess.Popen(
        [str(command), "local-server", "--production", "--dir", str(directory)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("CEREMONY_SERVER=https://127.0.0.1:"), proc.stderr
        assert proc.stdout.readline().startswith("CEREMONY_TLS_CA=")
        ports = json.loads((directory / "ports.json").read_text())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        for port in ports.values():  # nothing listens any more
            with socket.socket() as s:
                assert s.connect_ex(("127.0.0.1", port)) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(directory, ignore_errors=True)
