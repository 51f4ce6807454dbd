"""Air-gap preflight: is this machine fit to hold keys today?

Read-only checks, each one line for the operator and a record for the transcript:

- network: interfaces other than loopback that are up, and a default route (IPv4 or
  IPv6), read from `/sys/class/net/*/{operstate,flags}`, `/proc/net/route` and
  `/proc/net/ipv6_route`; wireless (`/sys/class/net/*/wireless`, `/sys/class/ieee80211`)
  and bluetooth (`/sys/class/bluetooth`) devices, up or not;
- the clock: not earlier than the newest line of the transcript;
- the transcript's chain;
- the home (no access for group or others) and its key files (0600 or stricter);
- the software: this tool and every distribution it depends on, by version and the
  SHA-256 of its installed RECORD, every installed file checked against that RECORD, and
  (after an install from the offline bundle) against the bundle's pinned versions.

The network checks read from a root folder, `/` normally: `CEREMONY_PREFLIGHT_ROOT`
points them at a fixture tree (tests, and drills on a connected machine). Nothing here
reads the clock; `now` is passed in.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import stat
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from ceremony.core.errors import VerificationFailed
from ceremony.offline import transcript

ROOT_ENV = "CEREMONY_PREFLIGHT_ROOT"
DISTRIBUTION = "notary-ceremony"
BUNDLE_RECORD = "offline-bundle-requirements.txt"  # install.sh leaves it in the venv

IFF_UP = 0x1
IFF_LOOPBACK = 0x8
RTF_UP = 0x1
RTF_REJECT = 0x200
_DOWN_STATES = frozenset({"down", "notpresent", "lowerlayerdown"})


@dataclass(frozen=True, slots=True)
class Check:
    """One check: what was looked at, whether it passed, and one line saying what was found."""

    name: str
    ok: bool
    detail: str
    network: bool = False  # a network check: `--allow-network` turns its failure into a warning

    def to_dict(self) -> dict[str, Any]:
        return {"detail": self.detail, "name": self.name, "ok": self.ok}


# --- Network ---------------------------------------------------------------------------


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None


@dataclass(frozen=True, slots=True)
class Interface:
    name: str
    operstate: str
    flags: int
    wireless: bool

    @property
    def loopback(self) -> bool:
        return bool(self.flags & IFF_LOOPBACK) or self.name == "lo"

    @property
    def up(self) -> bool:
        if self.operstate == "up":
            return True
        # tun/ppp devices and the like say "unknown": the administrative flag decides.
        return bool(self.flags & IFF_UP) and self.operstate not in _DOWN_STATES


def interfaces(root: Path) -> list[Interface] | None:
    """Every interface under ROOT/sys/class/net; None when that folder cannot be read."""
    net = root / "sys" / "class" / "net"
    try:
        names = sorted(p.name for p in net.iterdir())
    except OSError:
        return None
    found = []
    for name in names:
        folder = net / name
        flags_text = _read_text(folder / "flags") or "0"
        try:
            flags = int(flags_text, 16)
        except ValueError:
            flags = IFF_UP  # unreadable flags: assume the worst
        found.append(
            Interface(
                name,
                (_read_text(folder / "operstate") or "unknown").lower(),
                flags,
                (folder / "wireless").exists() or (folder / "phy80211").exists(),
            )
        )
    return found


def default_routes(root: Path) -> list[str] | None:
    """Interfaces holding a usable default route (IPv4 and IPv6); None if unreadable."""
    found: list[str] = []
    v4 = _read_text(root / "proc" / "net" / "route")
    v6 = _read_text(root / "proc" / "net" / "ipv6_route")
    if v4 is None and v6 is None:
        return None
    for line in (v4 or "").splitlines()[1:]:
        f = line.split()
        if len(f) >= 8 and f[1] == "00000000" and f[7] == "00000000":
            flags = int(f[3], 16)
            if flags & RTF_UP and not flags & RTF_REJECT and f[0] != "lo":
                found.append(f"{f[0]} (IPv4)")
    for line in (v6 or "").splitlines():
        f = line.split()
        if len(f) >= 10 and f[0] == "0" * 32 and f[1] == "00":
            flags = int(f[8], 16)
            if flags & RTF_UP and not flags & RTF_REJECT and f[9] != "lo":
                found.append(f"{f[9]} (IPv6)")
    return sorted(set(found))


def _class_devices(root: Path, name: str) -> list[str]:
    try:
        return sorted(p.name for p in (root / "sys" / "class" / name).iterdir())
    except OSError:
        return []


def network_checks(root: Path) -> list[Check]:
    checks: list[Check] = []
    found = interfaces(root)
    if found is None:
        checks.append(
            Check(
                "network interfaces",
                False,
                f"{root / 'sys/class/net'} cannot be read: the interfaces cannot be checked",
                network=True,
            )
        )
        found = []
    else:
        up = [i.name for i in found if i.up and not i.loopback]
        checks.append(
            Check(
                "network interfaces",
                not up,
                f"UP: {', '.join(up)} (take them down or remove them)"
                if up
                else "none up but loopback",
                network=True,
            )
        )
    routes = default_routes(root)
    checks.append(
        Check(
            "default route",
            routes == [],
            "cannot be read from /proc/net"
            if routes is None
            else (f"via {', '.join(routes)}" if routes else "none"),
            network=True,
        )
    )
    radios = sorted({i.name for i in found if i.wireless} | set(_class_devices(root, "ieee80211")))
    checks.append(
        Check(
            "wireless devices",
            not radios,
            f"present: {', '.join(radios)} (remove the device or disable it in firmware)"
            if radios
            else "none",
            network=True,
        )
    )
    bluetooth = _class_devices(root, "bluetooth")
    checks.append(
        Check(
            "bluetooth devices",
            not bluetooth,
            f"present: {', '.join(bluetooth)} (remove the device or disable it in firmware)"
            if bluetooth
            else "none",
            network=True,
        )
    )
    return checks


# --- Clock, transcript, home ------------------------------------------------------------


def transcript_checks(home: Path, now: datetime) -> list[Check]:
    data = transcript.read_transcript(home)
    checks: list[Check] = []
    try:
        chain = transcript.verify_chain(data)
        checks.append(
            Check(
                "transcript",
                True,
                f"{len(chain.entries)} line(s), chain intact"
                + (f", head {transcript.head_words(chain.head)}" if chain.head else ""),
            )
        )
    except VerificationFailed as exc:
        checks.append(Check("transcript", False, exc.message))
    last = transcript.last_time(data)
    shown = transcript.format_time(now)
    if last is None:
        checks.append(Check("clock", True, f"{shown} (no earlier transcript line to compare)"))
    elif now < last:
        checks.append(
            Check(
                "clock",
                False,
                f"{shown} is EARLIER than the transcript's last line "
                f"({transcript.format_time(last)}): set the clock",
            )
        )
    else:
        checks.append(
            Check(
                "clock",
                True,
                f"{shown}, not earlier than the transcript's last line "
                f"({transcript.format_time(last)})",
            )
        )
    return checks


def _mode(path: Path) -> os.stat_result | None:
    try:
        return path.lstat()
    except FileNotFoundError:
        return None


def permission_checks(home: Path) -> list[Check]:
    info = _mode(home)
    if info is None:
        return [Check("home permissions", True, f"{home} does not exist yet (made 0700)")]
    problems: list[str] = []
    if not stat.S_ISDIR(info.st_mode):
        problems.append(f"{home} is not a directory")
    elif info.st_mode & 0o077:
        problems.append(f"{home} is {stat.S_IMODE(info.st_mode):04o}, not 0700")
    if info.st_uid != os.getuid():
        problems.append(f"{home} belongs to another user")
    checks = [
        Check(
            "home permissions",
            not problems,
            "; ".join(problems) if problems else f"{home} is 0700",
        )
    ]
    private = home / "private"
    key_files = sorted(private.glob("*.key")) if private.is_dir() else []
    bad: list[str] = []
    private_info = _mode(private)
    if private_info is not None and private_info.st_mode & 0o077:
        bad.append(f"{private} is {stat.S_IMODE(private_info.st_mode):04o}")
    for key_file in key_files:
        key_info = key_file.lstat()
        if not stat.S_ISREG(key_info.st_mode):
            bad.append(f"{key_file.name} is not a regular file")
        elif key_info.st_mode & 0o177:
            bad.append(f"{key_file.name} is {stat.S_IMODE(key_info.st_mode):04o}")
    checks.append(
        Check(
            "key file permissions",
            not bad,
            f"{'; '.join(bad)} (chmod 0600 key files, 0700 folders)"
            if bad
            else f"{len(key_files)} key file(s), each 0600 or stricter",
        )
    )
    return checks


# --- Software ---------------------------------------------------------------------------


def normalise_name(name: str) -> str:
    """PEP 503: the form in which two spellings of a distribution's name compare equal."""
    return re.sub(r"[-_.]+", "-", name).lower()


_REQUIREMENT_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@dataclass(frozen=True, slots=True)
class Installed:
    """One installed distribution, as the transcript records it."""

    name: str
    version: str
    record_sha256: str | None  # SHA-256 of its RECORD: every installed file and its hash
    changed: tuple[str, ...]  # installed files that no longer match their RECORD
    wheel_sha256: str | None  # the wheel's hash in the offline bundle it was installed from

    def to_dict(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "name": self.name,
            "record_sha256": self.record_sha256,
            "version": self.version,
        }
        if self.wheel_sha256 is not None:
            entry["wheel_sha256"] = self.wheel_sha256
        if self.changed:
            entry["changed"] = list(self.changed)
        return entry


def dependency_closure(root_name: str) -> list[metadata.Distribution]:
    """`root_name` and every installed distribution it requires, transitively (no extras)."""
    seen: dict[str, metadata.Distribution] = {}
    todo = [root_name]
    while todo:
        name = normalise_name(todo.pop())
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # a requirement for another platform, or not installed
        seen[name] = dist
        for requirement in dist.requires or ():
            if "extra" in requirement.partition(";")[2]:
                continue
            match = _REQUIREMENT_NAME.match(requirement)
            if match:
                todo.append(match.group(1))
    return [seen[k] for k in sorted(seen)]


def _file_digest(path: Path) -> str | None:
    try:
        with path.open("rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").digest()
    except OSError:
        return None
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _changed_files(dist: metadata.Distribution) -> tuple[str, ...]:
    changed: list[str] = []
    for file in dist.files or ():
        if file.hash is None or file.hash.mode != "sha256":
            continue
        if _file_digest(Path(str(dist.locate_file(file)))) != file.hash.value:
            changed.append(str(file))
    return tuple(changed)


def bundle_pins(prefix: Path) -> dict[str, tuple[str, str]] | None:
    """name -> (version, wheel sha256) from the bundle's requirements, if installed from one."""
    try:
        text = (prefix / BUNDLE_RECORD).read_text(encoding="utf-8")
    except OSError:
        return None
    pins: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        match = re.match(r"\s*([A-Za-z0-9._-]+)==(\S+)\s+--hash=sha256:([0-9a-f]{64})", line)
        if match:
            pins[normalise_name(match.group(1))] = (match.group(2), match.group(3))
    return pins


def installed_software(prefix: Path | None = None) -> tuple[list[Installed], str | None]:
    """This tool and its dependencies as installed; and the bundle record's SHA-256, if any."""
    prefix = Path(sys.prefix) if prefix is None else prefix
    pins = bundle_pins(prefix) or {}
    bundle_digest = None
    if pins:
        bundle_digest = hashlib.sha256((prefix / BUNDLE_RECORD).read_bytes()).hexdigest()
    found: list[Installed] = []
    for dist in dependency_closure(DISTRIBUTION):
        name = normalise_name(dist.metadata["Name"])
        record = dist.read_text("RECORD")
        pinned = pins.get(name)
        found.append(
            Installed(
                name,
                dist.version,
                None if record is None else hashlib.sha256(record.encode()).hexdigest(),
                _changed_files(dist),
                pinned[1] if pinned is not None and pinned[0] == dist.version else None,
            )
        )
    return found, bundle_digest


def software_check(software: Iterable[Installed], pins: Mapping[str, tuple[str, str]]) -> Check:
    listed = list(software)
    problems: list[str] = []
    if not any(s.name == DISTRIBUTION for s in listed):
        problems.append(f"{DISTRIBUTION} is not installed as a distribution")
    problems.extend(
        f"{s.name} {s.version}: {len(s.changed)} installed file(s) differ from its RECORD"
        for s in listed
        if s.changed
    )
    problems.extend(f"{s.name} {s.version} has no RECORD" for s in listed if not s.record_sha256)
    if pins:
        problems.extend(
            f"{s.name} {s.version} is not the version in the offline bundle ({pins[s.name][0]})"
            for s in listed
            if s.name in pins and s.wheel_sha256 is None
        )
    summary = f"{len(listed)} distribution(s), installed files match their RECORD" + (
        ", as pinned by the offline bundle" if pins else ""
    )
    return Check("software", not problems, "; ".join(problems) if problems else summary)


# --- The whole preflight ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Report:
    checks: tuple[Check, ...]
    software: tuple[Installed, ...]
    bundle_sha256: str | None
    root: str

    def failures(self, *, allow_network: bool) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.ok and not (allow_network and c.network))

    @property
    def air_gapped(self) -> bool:
        return all(c.ok for c in self.checks if c.network)

    def to_dict(self, *, allow_network: bool) -> dict[str, Any]:
        return {
            "air_gapped": self.air_gapped,
            "allow_network": allow_network,
            "bundle_sha256": self.bundle_sha256,
            "checks": [c.to_dict() for c in self.checks],
            "root": self.root,
            "software": [s.to_dict() for s in self.software],
        }


def run_preflight(home: Path, root: Path, now: datetime, prefix: Path | None = None) -> Report:
    prefix = Path(sys.prefix) if prefix is None else prefix
    software, bundle_digest = installed_software(prefix)
    checks = [
        *network_checks(root),
        *transcript_checks(home, now),
        *permission_checks(home),
        software_check(software, bundle_pins(prefix) or {}),
    ]
    return Report(tuple(checks), tuple(software), bundle_digest, str(root))
