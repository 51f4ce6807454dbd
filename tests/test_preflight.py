"""`ceremony preflight`, through the real console script, against fixture /sys and /proc trees.

`CEREMONY_PREFLIGHT_ROOT` points the network checks at a folder built here, so both
outcomes are exercised without touching this machine's network.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ceremony.offline import transcript

CEREMONY = Path(sys.executable).parent / "ceremony"
ROUTE_HEADER = (
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
)
DEFAULT_ROUTE = "eth0\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
LAN_ROUTE = "eth0\t0002A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
V6_LOOPBACK_REJECT = (  # the kernel's own unreachable default on lo: not a route out
    "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
    "00000000000000000000000000000000 ffffffff 00000001 00000000 00200200 lo\n"
)
V6_DEFAULT = (
    "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
    "fe800000000000000000000000000001 00000400 00000001 00000000 00450003 wlan0\n"
)


def machine(
    tmp: Path,
    *,
    up: tuple[str, ...] = (),
    down: tuple[str, ...] = (),
    routes: str = "",
    v6: str = V6_LOOPBACK_REJECT,
    wireless: tuple[str, ...] = (),
    bluetooth: tuple[str, ...] = (),
) -> Path:
    """A fixture root with /sys/class/net (lo plus the given interfaces) and /proc/net."""
    root = tmp / "root"
    net = root / "sys" / "class" / "net"
    interfaces = {"lo": ("unknown", "0x9"), **dict.fromkeys(up, ("up", "0x1003"))}
    interfaces.update(dict.fromkeys(down, ("down", "0x1002")))
    for name, (state, flags) in interfaces.items():
        (net / name).mkdir(parents=True)
        (net / name / "operstate").write_text(state + "\n")
        (net / name / "flags").write_text(flags + "\n")
    for name in wireless:
        (net / name / "wireless").mkdir(parents=True)
        (root / "sys" / "class" / "ieee80211" / "phy0").mkdir(parents=True, exist_ok=True)
    for name in bluetooth:
        (root / "sys" / "class" / "bluetooth" / name).mkdir(parents=True)
    (root / "proc" / "net").mkdir(parents=True)
    (root / "proc" / "net" / "route").write_text(ROUTE_HEADER + routes)
    (root / "proc" / "net" / "ipv6_route").write_text(v6)
    return root


def preflight(
    home: Path, root: Path, *args: str, code: int = 0
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTARY_", "CEREMONY_"))}
    env["CEREMONY_PREFLIGHT_ROOT"] = str(root)
    proc = subprocess.run(
        [str(CEREMONY), "--home", str(home), "preflight", *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=env,
        timeout=120,
    )
    assert proc.returncode == code, f"{proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc


def recorded(home: Path) -> dict[str, object]:
    """The preflight details of the transcript's last line."""
    last = (home / "transcript.jsonl").read_text().splitlines()[-1]
    details: dict[str, object] = json.loads(last)["details"]["preflight"]
    return details


def checks(home: Path) -> dict[str, bool]:
    return {c["name"]: c["ok"] for c in recorded(home)["checks"]}  # type: ignore[attr-defined]


def error_line(proc: subprocess.CompletedProcess[str]) -> str:
    (line,) = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    return line


def test_an_air_gapped_machine_passes(tmp_path: Path) -> None:
    root = machine(tmp_path, down=("eth0",), routes=LAN_ROUTE)  # a cable-less NIC is fine
    home = tmp_path / "home"
    proc = preflight(home, root)
    assert "Preflight passed." in proc.stdout
    assert "ok    network interfaces: none up but loopback" in proc.stdout
    assert "ok    default route: none" in proc.stdout
    details = recorded(home)
    assert details["air_gapped"] is True and details["allow_network"] is False
    assert all(checks(home).values())
    software = {s["name"]: s for s in details["software"]}  # type: ignore[attr-defined]
    assert {"notary-ceremony", "cryptography", "typer"} <= set(software)
    assert "httpx" not in software  # the online extra's network library is not ours
    for item in software.values():
        assert len(item["record_sha256"]) == 64 and item["version"]
        assert f"{item['name']} {item['version']}  RECORD sha256 {item['record_sha256']}" in (
            proc.stdout
        )


def test_an_interface_up_and_a_default_route_fail(tmp_path: Path) -> None:
    root = machine(tmp_path, up=("eth0",), routes=DEFAULT_ROUTE + LAN_ROUTE)
    home = tmp_path / "home"
    proc = preflight(home, root, code=1)
    assert "FAIL  network interfaces: UP: eth0" in proc.stdout
    assert "FAIL  default route: via eth0 (IPv4)" in proc.stdout
    assert error_line(proc) == (
        "error: This machine is not ready to hold keys: network interfaces, default route "
        "failed; fix them, or for a drill only, re-run with --allow-network."
    )
    assert recorded(home)["air_gapped"] is False
    assert json.loads((home / "transcript.jsonl").read_text().splitlines()[-1])["exit"] == 1

    drill = preflight(home, root, "--allow-network")
    assert "WARN  network interfaces: UP: eth0" in drill.stdout
    assert "warning: this machine is NOT air-gapped" in drill.stderr
    assert recorded(home)["allow_network"] is True and recorded(home)["air_gapped"] is False


def test_radios_fail_even_when_down(tmp_path: Path) -> None:
    root = machine(
        tmp_path, down=("wlan0",), wireless=("wlan0",), bluetooth=("hci0",), v6=V6_DEFAULT
    )
    home = tmp_path / "home"
    proc = preflight(home, root, code=1)
    assert "FAIL  wireless devices: present: phy0, wlan0" in proc.stdout
    assert "FAIL  bluetooth devices: present: hci0" in proc.stdout
    assert "FAIL  default route: via wlan0 (IPv6)" in proc.stdout
    assert not checks(home)["wireless devices"] and not checks(home)["bluetooth devices"]


def test_an_unreadable_sys_tree_is_not_taken_for_air_gapped(tmp_path: Path) -> None:
    root = tmp_path / "empty-root"
    root.mkdir()
    proc = preflight(tmp_path / "home", root, code=1)
    assert "FAIL  network interfaces:" in proc.stdout and "cannot be read" in proc.stdout
    assert "FAIL  default route: cannot be read" in proc.stdout


def test_a_clock_earlier_than_the_transcript_fails_even_in_a_drill(tmp_path: Path) -> None:
    root = machine(tmp_path)
    home = tmp_path / "home"
    future = datetime.now(UTC) + timedelta(days=400)
    with transcript.collecting() as notes:  # a line written when the clock said `future`
        transcript.append(
            home, argv=["trust", "list"], exit_code=0, error=None, notes=notes, tool="t", now=future
        )
    proc = preflight(home, root, "--allow-network", code=1)
    assert (
        "FAIL  clock:" in proc.stdout
        and "is EARLIER than the transcript's last line" in proc.stdout
    )
    assert transcript.format_time(future) in proc.stdout
    assert error_line(proc) == (
        "error: This machine is not ready to hold keys: clock failed; fix them before the ceremony."
    )


def test_loose_permissions_fail(tmp_path: Path) -> None:
    root = machine(tmp_path)
    home = tmp_path / "home"
    preflight(home, root)  # makes the home, 0700
    (home / "private").mkdir(mode=0o700)
    key = home / "private" / "0123abcd.key"
    key.write_text("not read: only its mode is checked\n")
    key.chmod(0o600)
    preflight(home, root)
    key.chmod(0o644)
    home.chmod(0o755)  # the command closes an open home first (with a note), then checks
    proc = preflight(home, root, code=1)
    assert f"The home {home} was open to other users (mode 0755); it is now 0700." in proc.stderr
    assert "FAIL  key file permissions: 0123abcd.key is 0644" in proc.stdout
    assert "key file permissions failed" in error_line(proc)


def test_a_tampered_transcript_fails_preflight(tmp_path: Path) -> None:
    root = machine(tmp_path)
    home = tmp_path / "home"
    preflight(home, root)
    path = home / "transcript.jsonl"
    path.write_text(path.read_text().replace('"exit":0', '"exit":1', 1))
    proc = preflight(home, root, code=1)
    assert "FAIL  transcript: Line 1 of the transcript was changed" in proc.stdout
