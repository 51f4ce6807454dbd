"""SIGKILL at random points loses nothing: a 20,000-target ceremony, step by step.

Each step (staging the list, export, sign, publish, key generate) is started as a
subprocess and killed with SIGKILL after a random delay (a fixed seed, so a failure can
be replayed), several times. After each kill both homes must still read (`status`,
`key list`), the staged changes must be all there or not at all, and after the rerun
(which must succeed; for `sign`, `sign --again` when the refusal says so) no temp file
may be left in either home. The real `notary list` checks the server at the end.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.rig import Rig
from tests.e2e.test_ceremony_cli import publish_new
from tests.notary_env import NotaryCli, NotaryServer

pytestmark = pytest.mark.notary

TARGETS = 20_000
KILLS = 3


def _killed(rig: Rig, delay: float, *cmd: str) -> int | None:
    """Run `cmd`, SIGKILL it after `delay` s; its exit code if it finished first, else None."""
    proc = subprocess.Popen(
        cmd,
        env=rig.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(delay)
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    return None


def _temporaries(rig: Rig) -> list[Path]:
    return [
        p for home in ("online", "offline") for p in (rig.tmp / home).rglob(".*.tmp") if p.is_file()
    ]


def _staged(rig: Rig) -> int:
    out = rig.run("ceremony-online", "status", rig.gun).stdout
    line = next(line for line in out.splitlines() if line.startswith("Staged changes:"))
    return int(line.split(":")[1])


def test_a_twenty_thousand_target_ceremony_survives_sigkill_at_every_step(
    notary_server: NotaryServer, notary_cli: NotaryCli, new_gun, tmp_path: Path
) -> None:
    rng = random.Random(13)
    rig = publish_new(notary_server, tmp_path, new_gun())
    listing = tmp_path / "targets.txt"
    listing.write_text("".join(f"t{i:05d} {i:064x} {i + 1}\n" for i in range(TARGETS)))

    add = ("ceremony-online", "add", rig.gun, "--from", str(listing))
    for _ in range(KILLS):
        code = _killed(rig, rng.uniform(0.2, 2.5), *add)
        staged = _staged(rig)
        assert staged in (0, TARGETS), staged  # all or nothing
        if code is not None or staged:
            break
    if _staged(rig) == 0:
        rig.run(*add)
    assert _staged(rig) == TARGETS

    request, signatures = tmp_path / "bulk.request.json", tmp_path / "bulk.sig"
    export = ("ceremony-online", "export", rig.gun, "--out", str(request))
    for _ in range(KILLS):
        _killed(rig, rng.uniform(0.3, 4.0), *export)
        assert _staged(rig) == TARGETS
        rig.run("ceremony-online", "requests", "list", rig.gun)
    rig.run(*export)
    assert not _temporaries(rig), _temporaries(rig)

    sign = ("ceremony", "sign", str(request), "--out", str(signatures), "--yes")
    for _ in range(KILLS):
        _killed(rig, rng.uniform(0.3, 5.0), *sign)
        rig.run("ceremony", "key", "list")
    again = subprocess.run(
        sign, env=rig.env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300
    )
    if again.returncode != 0:
        assert "--again" in again.stderr, again.stderr
        rig.run(*sign, "--again")
    assert not _temporaries(rig), _temporaries(rig)

    publish = ("ceremony-online", "publish", str(signatures))
    for _ in range(KILLS):
        _killed(rig, rng.uniform(0.3, 5.0), *publish)
        assert _staged(rig) in (0, TARGETS)
    rig.run(*publish)
    assert _staged(rig) == 0
    assert not _temporaries(rig), _temporaries(rig)
    listed = notary_cli.list_targets(rig.gun)
    assert len(listed) == TARGETS + 1 and listed["t19999"] == f"{19999:064x}"


def test_key_generate_killed_leaves_no_invisible_key(
    tmp_path: Path, notary_server: NotaryServer
) -> None:
    rng = random.Random(7)
    rig = Rig(notary_server, tmp_path, "example.com/test/crash-keys")
    for _ in range(KILLS):
        _killed(
            rig, rng.uniform(0.05, 1.0), "ceremony", "key", "generate", "targets", "--gun", rig.gun
        )
        listed = rig.run("ceremony", "key", "list").stdout
        private = tmp_path / "offline" / "private"
        keys = list(private.glob("*.key")) if private.is_dir() else []
        for key in keys:  # every key file on disk is one `key list` shows
            assert key.stem in listed, (key, listed)
    rig.run("ceremony", "key", "generate", "targets", "--gun", rig.gun)


def test_two_signs_at_once_on_one_offline_home_lose_no_update(
    notary_server: NotaryServer, new_gun, tmp_path: Path
) -> None:
    from ceremony.core.gun import gun_folder
    from ceremony.offline.trust import TrustState

    rig = publish_new(notary_server, tmp_path, new_gun())
    requests = []
    for name in ("b", "c"):  # two online homes, two different requests on the same base
        env = dict(rig.env, CEREMONY_ONLINE_HOME=str(tmp_path / f"online-{name}"))
        (tmp_path / f"{name}.txt").write_text(name)
        rig.run_env(env, "ceremony-online", "add", rig.gun, name, str(tmp_path / f"{name}.txt"))
        request = tmp_path / f"{name}.request.json"
        rig.run_env(env, "ceremony-online", "export", rig.gun, "--out", str(request))
        requests.append(request)
    procs = [
        subprocess.Popen(
            ["ceremony", "sign", str(r), "--out", str(r.with_suffix(".sig")), "--yes"],
            env=rig.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in requests
    ]
    results = [(p.wait(timeout=300), p.stderr.read() if p.stderr else "") for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes in ([0, 0], [0, 1]), results
    for code, err in results:
        if code:
            assert len([line for line in err.splitlines() if line.startswith("error: ")]) == 1
    state_file = tmp_path / "offline" / "trust" / gun_folder(rig.gun) / "state.json"
    state = TrustState.from_bytes(state_file.read_bytes())
    signed = {
        r.stem.removesuffix(".request")
        for r, (code, _) in zip(requests, results, strict=True)
        if code == 0
    }
    recorded = {
        name
        for name, r in zip(("b", "c"), requests, strict=True)
        if json.loads(r.read_text())["id"] in state.requests
    }
    assert recorded == signed  # every signing that succeeded is recorded: no lost update


def test_two_online_commands_at_once_on_one_home_lose_no_update(
    notary_server: NotaryServer, tmp_path: Path
) -> None:
    rig = Rig(notary_server, tmp_path, "example.com/test/crash-two-adds")
    lists = []
    for name in ("x", "y"):
        listing = tmp_path / f"{name}.txt"
        listing.write_text("".join(f"{name}{i:05d} {i:064x} {i + 1}\n" for i in range(5_000)))
        lists.append(listing)
    procs = [
        subprocess.Popen(
            ["ceremony-online", "add", rig.gun, "--from", str(listing)],
            # no server named: the GUN is not checked at first staging (it is not published)
            env={k: v for k, v in rig.env.items() if k != "CEREMONY_SERVER"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for listing in lists
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    assert _staged(rig) == 10_000  # the lock serialised them: neither write was lost
