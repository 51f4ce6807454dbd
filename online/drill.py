"""`ceremony-online drill`: a whole ceremony rehearsed on one machine, with injected faults.

The same code path as a real ceremony, not a simulation: every step runs the real
`ceremony` (offline) and `ceremony-online` commands, and the real `notary` client, as
subprocesses, each machine with its own home, against a throwaway notary-server
(`online.localserver`, the code `local-server` runs). This module imports no key-holding
code: keys are made, held and used only inside the `ceremony` subprocesses.

Each keyholder's passphrase is random, given to its machine in Notary's environment
variables, and blanked from every output the report keeps. Each scenario lists what it
expects, and each step checks its exit code and what it must (or must not) print.
"""

from __future__ import annotations

import json
import os
import random
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from ceremony.core.errors import EnvironmentFailure
from ceremony.edge.fsutil import atomic_write
from online.drill_report import DrillRecord, ScenarioRecord, StepRecord, html_page, markdown
from online.drillproxy import CuttableProxy
from online.localserver import LocalServer, memory_server

STEP_TIMEOUT = 300  # seconds for one command
OUTPUT_LIMIT = 6000  # characters of a step's output kept in the report (head and tail)
REDACTED = "[secret]"
QR_LOSS = 0.3  # the share of QR frames the camera misses
FAKE_LATER = "+1100d"  # past the 3-year expiry of targets (faketime offset)


@dataclass(frozen=True, slots=True)
class DrillOptions:
    scenarios: tuple[str, ...]
    report: Path
    keep: bool = False
    jobs: int = 1  # scenarios rehearsed at the same time (each has its own GUN and homes)


@dataclass(frozen=True, slots=True)
class DrillResult:
    markdown: Path
    html: Path
    passed: int
    total: int


@dataclass(frozen=True, slots=True)
class Machine:
    """Who runs a command, and the environment of their machine."""

    label: str
    env: dict[str, str]


class StepFailed(Exception):
    """A step did not do what the scenario expects; the scenario stops there."""


@dataclass
class Outcome:
    code: int
    output: str  # stdout then stderr, redacted

    def __contains__(self, text: str) -> bool:
        return text in self.output


def _tool(name: str) -> str:
    """The command next to this interpreter (the same install), else on PATH."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if found is None:
        raise EnvironmentFailure(f"The drill needs `{name}`, which is not installed.")
    return found


def _clip(text: str) -> str:
    if len(text) <= OUTPUT_LIMIT:
        return text
    half = OUTPUT_LIMIT // 2
    return f"{text[:half]}\n… ({len(text) - OUTPUT_LIMIT} characters left out) …\n{text[-half:]}"


@dataclass
class Rehearsal:
    """One scenario's machines, files and step records."""

    name: str
    work: Path  # this scenario's folder (homes, the "USB stick", the client's trust dir)
    server_url: str
    ca: Path
    secrets_seen: list[str]
    stopping: threading.Event
    steps: list[StepRecord] = field(default_factory=list)
    gun: str = ""
    keyholders: dict[str, Machine] = field(default_factory=dict)
    fingerprints: dict[str, dict[str, str]] = field(default_factory=dict)  # who -> role -> fp
    key_ids: dict[str, dict[str, str]] = field(default_factory=dict)
    trusting: set[str] = field(default_factory=set)  # keyholders past their first contact
    words: dict[str, str] = field(default_factory=dict)  # request label -> words read aloud

    def __post_init__(self) -> None:
        self.gun = f"drill.example.com/{self.name}/app"
        self.usb = self.work / "usb"
        self.usb.mkdir(parents=True, exist_ok=True)
        self.online = self.online_machine("operator", self.server_url)

    # -- machines ----------------------------------------------------------------

    def _base_env(self, who: str) -> dict[str, str]:
        home = self.work / f"{who}-user"
        home.mkdir(parents=True, exist_ok=True)
        bindir = str(Path(sys.executable).parent)
        return {
            "PATH": f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(home),  # never the operator's own ~/.ceremony, ~/.notary or ~/.docker
            "LANG": "C.UTF-8",
            "COLUMNS": "200",
        }

    def online_machine(self, who: str, server: str) -> Machine:
        env = self._base_env(who)
        env.update(
            {
                "CEREMONY_ONLINE_HOME": str(self.work / who),
                "CEREMONY_SERVER": server,
                "CEREMONY_TLS_CA": str(self.ca),
            }
        )
        return Machine(f"{who} (online machine)", env)

    def keyholder(self, who: str) -> Machine:
        if who not in self.keyholders:
            passphrase = secrets.token_urlsafe(18)
            self.secrets_seen.append(passphrase)
            env = self._base_env(who)
            env.update(
                {
                    "CEREMONY_HOME": str(self.work / who),
                    "NOTARY_ROOT_PASSPHRASE": passphrase,
                    "NOTARY_TARGETS_PASSPHRASE": passphrase,
                }
            )
            self.keyholders[who] = Machine(f"{who} (offline machine)", env)
        return self.keyholders[who]

    def client(self) -> Machine:
        return Machine("client (docker host with the notary client)", self._base_env("client"))

    # -- steps -------------------------------------------------------------------

    def _show(self, argv: Sequence[str]) -> str:
        text = shlex.join(argv)
        text = text.replace(str(Path(sys.executable).parent) + "/", "")
        return text.replace(str(self.work), "$DRILL")

    def _redact(self, text: str) -> str:
        for secret in self.secrets_seen:
            text = text.replace(secret, REDACTED)
        return text

    def record(
        self,
        actor: str,
        title: str,
        command: str,
        expected: str,
        output: str,
        seconds: float,
        problem: str = "",
    ) -> None:
        self.steps.append(
            StepRecord(
                number=len(self.steps) + 1,
                actor=actor,
                title=title,
                command=self._redact(command),
                expected=expected,
                output=_clip(self._redact(output)),
                seconds=seconds,
                passed=not problem,
                problem=self._redact(problem),
            )
        )
        if problem:
            raise StepFailed(f"step {len(self.steps)} ({title}): {problem}")

    def run(
        self,
        machine: Machine,
        title: str,
        *argv: str,
        code: int | Sequence[int] = 0,
        says: Sequence[str] = (),
        never: Sequence[str] = (),
        check: Callable[[Outcome], str | None] | None = None,
        env: dict[str, str] | None = None,
        wrap: Sequence[str] = (),
        expected: str = "",
    ) -> Outcome:
        """Run one real command; check its exit code and what it prints (stdout + stderr)."""
        if self.stopping.is_set():
            raise StepFailed("the drill was interrupted")
        codes = (code,) if isinstance(code, int) else tuple(code)
        tools = {"ceremony", "ceremony-online", "notary"}
        full = [*wrap, *(_tool(a) if i == 0 and a in tools else a for i, a in enumerate(argv))]
        started = time.monotonic()
        try:
            proc = subprocess.run(
                full,
                env={**machine.env, **(env or {})},
                cwd=self.work,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,  # one stream: messages in the order they were made
                text=True,
                timeout=STEP_TIMEOUT,
                check=False,
            )
            raw, rc = proc.stdout, proc.returncode
        except subprocess.TimeoutExpired:
            raw, rc = f"(no answer within {STEP_TIMEOUT} s; stopped)", -1
        seconds = time.monotonic() - started
        outcome = Outcome(rc, self._redact(raw))
        problems = []
        if rc not in codes:
            problems.append(f"exit {rc}, expected {' or '.join(map(str, codes))}")
        problems += [f"does not say {s!r}" for s in says if s not in raw]
        problems += [f"says {n!r}" for n in never if n in raw]
        leaked = [s for s in self.secrets_seen if s in raw]
        if leaked:
            problems.append("a passphrase appears in the output")
        if "Traceback" in raw:
            problems.append("a traceback")
        if not problems and check is not None:
            found = check(outcome)
            if found:
                problems.append(found)
        want = expected or (
            f"exit {' or '.join(map(str, codes))}"
            + (f"; says {', '.join(repr(s) for s in says)}" if says else "")
        )
        shown_wrap = [w for w in wrap if not w.startswith("-")][:1]
        command = " ".join([*shown_wrap, self._show(argv)]) if shown_wrap else self._show(argv)
        self.record(
            machine.label,
            title,
            command,
            want,
            f"(exit {rc})\n{outcome.output}",
            seconds,
            "; ".join(problems),
        )
        return outcome

    def note(self, actor: str, title: str, description: str, work: Callable[[], str]) -> str:
        """A step the drill does itself (a camera losing frames, a merge of files): recorded."""
        started = time.monotonic()
        problem = ""
        try:
            output = work()
        except (OSError, ValueError, StepFailed) as exc:
            output, problem = "", f"{type(exc).__name__}: {exc}"
        self.record(
            actor,
            title,
            f"(the drill) {description}",
            "done",
            output,
            time.monotonic() - started,
            problem,
        )
        return output

    # -- the common parts of a ceremony ---------------------------------------------

    def make_keys(self, who: str, *roles: str) -> None:
        machine = self.keyholder(who)
        token = machine.env.get("DRILL_TOKEN")
        for role in roles:
            where = ["--token", token] if token and role != "root" else []
            out = self.run(
                machine,
                f"{who} generates a {role} key" + (" on the token" if where else ""),
                "ceremony",
                "key",
                "generate",
                role,
                "--gun",
                self.gun,
                *where,
            )
            key_id = _first_hex64(out.output.split())
            self.key_ids.setdefault(who, {})[role] = key_id
            self.fingerprints.setdefault(who, {})[role] = self.fingerprint(
                machine, who, key_id, out
            )
        self.run(
            machine,
            f"{who} exports the public keys (to the USB stick)",
            "ceremony",
            "key",
            "export-public",
            "--gun",
            self.gun,
            "--out",
            str(self.usb / f"{who}.json"),
        )

    def fingerprint(self, machine: Machine, who: str, key_id: str, generated: Outcome) -> str:
        """The key's fingerprint for the record: as `key generate` printed it, else asked."""
        words = generated.output.split()
        for i, word in enumerate(words[:-1]):
            if word == "fingerprint" and len(words[i + 1]) == 64:
                return words[i + 1]
        fp = self.run(
            machine,
            f"{who} reads the key's fingerprint for the record",
            "ceremony",
            "key",
            "fingerprint",
            key_id,
        )
        return _first_hex64(fp.output.split())

    def expect_keys(self, who: str, *, new_repository: bool = False) -> list[str]:
        """`--expect-key FP` from the record, for a keyholder's first contact only.

        For a new repository: every key `who` does not hold; for an existing one: its root
        keys. A machine that already trusts the repository is given none (an option that
        matches no key is refused).
        """
        if who in self.trusting:
            return []
        return [
            arg
            for other, fps in self.fingerprints.items()
            if other != who
            for role, fp in fps.items()
            if new_repository or role == "root"
            for arg in ("--expect-key", fp)
        ]

    def merge_public_keys(self, names: Sequence[str]) -> Path:
        target = self.usb / "all-public-keys.json"

        def merge() -> str:
            docs = [json.loads((self.usb / f"{n}.json").read_text()) for n in names]
            merged = dict(docs[0])
            merged["keys"] = [k for d in docs for k in d["keys"]]
            atomic_write(target, json.dumps(merged).encode(), mode=0o644)
            return f"{len(merged['keys'])} public keys from {', '.join(names)}"

        self.note(
            "operator (online machine)",
            "merge the keyholders' public keys files",
            f"join the `keys` lists of {', '.join(n + '.json' for n in names)}",
            merge,
        )
        return target

    def setup(
        self,
        holders: Sequence[str] = ("alice",),
        threshold: int = 1,
        signers: Sequence[str] | None = None,
    ) -> None:
        """Keys (alice also holds root), a repository with one target, signed and published."""
        self.prepare(holders, threshold)
        request = self.export("init")
        sigs = [self.sign(who, request, "init") for who in (signers or holders[:threshold])]
        self.publish(*sigs)

    def prepare(self, holders: Sequence[str] = ("alice",), threshold: int = 1) -> None:
        """Keys (alice also holds root); a new repository with target app-1.0, staged."""
        self.make_keys(holders[0], "root", "targets")
        for who in holders[1:]:
            self.make_keys(who, "targets")
        public = self.merge_public_keys(holders)
        self.run(
            self.online,
            "stage a new repository",
            "ceremony-online",
            "init",
            self.gun,
            "--public-keys",
            str(public),
            "--targets-threshold",
            str(threshold),
        )
        self.stage_file("app-1.0", "release 1.0\n")

    def stage_file(self, name: str, text: str, machine: Machine | None = None) -> None:
        path = self.usb / f"{name}.txt"
        path.write_text(text)
        self.run(
            machine or self.online,
            f"stage target {name}",
            "ceremony-online",
            "add",
            self.gun,
            name,
            str(path),
        )

    def stage_list(self, label: str, count: int) -> None:
        """Stage `count` targets pkg/000.tar.gz … from a `name sha256 length` list."""
        listing = self.usb / f"{label}.list"
        rng = random.Random(count)  # noqa: S311 - made-up target digests, not a secret
        listing.write_text(
            "".join(
                f"pkg/{i:03d}.tar.gz {rng.randbytes(32).hex()} {rng.randrange(1, 10**7)}\n"
                for i in range(count)
            )
        )
        self.run(
            self.online,
            f"stage {count} targets from a list",
            "ceremony-online",
            "add",
            self.gun,
            "--from",
            str(listing),
        )

    def heard(self, label: str, export: Outcome) -> None:
        """Note the words the operator reads aloud for a request (from `export`'s output)."""
        found = re.search(r"^words:\s+(.+)$", export.output, re.M)
        if found:
            self.words[label] = found.group(1).strip()

    def read_aloud(self, label: str) -> tuple[str, ...]:
        """What a keyholder's review must show: the words the operator read aloud."""
        return (self.words[label],) if label in self.words else ()

    def export_to(self, machine: Machine, title: str, label: str, *to: str) -> None:
        """`ceremony-online export GUN` to `to` (a file or QR frames); note the words read aloud."""
        out = self.run(machine, title, "ceremony-online", "export", self.gun, *to, says=("words:",))
        self.heard(label, out)

    def export(self, label: str, machine: Machine | None = None) -> Path:
        request = self.usb / f"{label}.request.json"
        self.export_to(
            machine or self.online, f"export the {label} request", label, "--out", str(request)
        )
        return request

    def sign_as(
        self, who: str, title: str, label: str, where: Sequence[str], extra: Sequence[str]
    ) -> None:
        """`who` signs the `label` request (`where`: what it reads and writes), confirming the
        record's keys on first contact; the review must show the words read aloud."""
        self.run(
            self.keyholder(who),
            title,
            "ceremony",
            "sign",
            *where,
            "--yes",
            *self.expect_keys(who, new_repository=label == "init"),
            *extra,
            says=self.read_aloud(label),
        )
        self.trusting.add(who)

    def sign(self, who: str, request: Path, label: str, *extra: str) -> Path:
        out = self.usb / f"{label}.{who}.sig.json"
        title = f"{who} reviews and signs the {label} request"
        self.sign_as(who, title, label, (str(request), "--out", str(out)), extra)
        return out

    def publish_from(self, title: str, *sources: str, machine: Machine | None = None) -> Outcome:
        """`ceremony-online publish` of signatures files or QR captures; it must publish."""
        return self.run(
            machine or self.online,
            title,
            "ceremony-online",
            "publish",
            *sources,
            says=("Published",),
        )

    def publish(self, *signatures: Path, machine: Machine | None = None) -> Outcome:
        return self.publish_from("publish the signatures", *map(str, signatures), machine=machine)

    def status(self, title: str, *says: str) -> Outcome:
        """`ceremony-online status GUN` on the operator's machine, which must say `says`."""
        return self.run(self.online, title, "ceremony-online", "status", self.gun, says=says)

    def notary_list(
        self,
        title: str,
        *names: str,
        trust: str = "client-trust",
        server: str | None = None,
        absent: Sequence[str] = (),
    ) -> Outcome:
        def listed(outcome: Outcome) -> str | None:
            lines = "\n" + outcome.output
            missing = [n for n in names if f"\n{n} " not in lines]
            if missing:
                return f"the notary client does not list {', '.join(missing)}"
            extra = [n for n in absent if f"\n{n} " in lines]
            return f"the notary client lists {', '.join(extra)}" if extra else None

        return self.run(
            self.client(),
            title,
            "notary",
            "-s",
            server or self.server_url,
            "--tlscacert",
            str(self.ca),
            "-d",
            str(self.work / trust),
            "list",
            self.gun,
            check=listed,
            expected=f"exit 0; lists {', '.join(names)}"
            + (f"; not {', '.join(absent)}" if absent else ""),
        )


# ---------------------------------------------------------------------------
# the camera: PNG frames as a phone or webcam would capture them


def degrade(path: Path, out: Path) -> None:
    """A camera-like capture: 0.8x, a blur, JPEG at quality 60."""
    from PIL import Image, ImageFilter  # here: every ceremony-online command imports drill

    with Image.open(path) as src:
        img = src.convert("L")
    img = img.resize((int(img.width * 0.8), int(img.height * 0.8)), Image.Resampling.BILINEAR)
    img = img.filter(ImageFilter.GaussianBlur(1))
    img.save(out, quality=60)


def capture(frames: Path, captures: Path, loss: float, seed: int) -> str:
    """One pass of the camera over the played loop: miss `loss` of the frames, degrade the rest.

    Captures add up over passes (each pass writes other names). Says what it did."""
    pngs = sorted(frames.glob("*.png"))
    rng = random.Random(seed)  # noqa: S311 - a simulated camera, not a secret
    missed = set(rng.sample(range(len(pngs)), int(len(pngs) * loss)))
    captures.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(pngs):
        if i not in missed:
            degrade(path, captures / f"pass{seed}-{path.stem}.jpg")
    if len(pngs) < 2:
        raise ValueError(f"the request should be an animated code, not {len(pngs)} frame(s)")
    return (
        f"{len(pngs)} frames shown, {len(pngs) - len(missed)} captured ({len(missed)} missed), "
        "each shrunk to 0.8x, blurred and saved as JPEG at quality 60"
    )


def capture_one(image: Path, shot: Path) -> str:
    degrade(image, shot)
    return f"captured {shot.name}"


# ---------------------------------------------------------------------------
# scenarios


@dataclass(frozen=True, slots=True)
class Scenario:
    summary: str
    expected: tuple[str, ...]
    play: Callable[[Rehearsal, DrillContext], None]


@dataclass
class DrillContext:
    """What the scenarios share: the server (and a relay in front of it), the clock tool."""

    server: LocalServer
    proxies: list[CuttableProxy] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def proxy(self) -> CuttableProxy:
        proxy = CuttableProxy(self.server.port)
        self.proxies.append(proxy)
        return proxy


def _qr_sign(r: Rehearsal, who: str, captures: Path, label: str, *extra: str) -> Path:
    out = r.usb / f"{label}-{who}-sig-qr"
    title = f"{who} reviews and signs the {label} request read from QR images"
    r.sign_as(who, title, label, ("--qr", str(captures), "--qr-out", str(out)), extra)
    images = sorted(out.glob("*.png"))
    if len(images) != 1:
        r.record(
            r.keyholder(who).label,
            "one signatures QR code",
            "",
            "one PNG",
            "",
            0.0,
            f"{len(images)} signature images",
        )
    shot = r.usb / f"{label}-{who}-sig-capture.jpg"
    r.note(
        "operator (online machine)",
        f"the online camera captures {who}'s signatures code",
        "degrade the signatures QR image like a camera capture (0.8x, blur, JPEG 60)",
        lambda: capture_one(images[0], shot),
    )
    return shot


def _camera(r: Rehearsal, who: str, frames: Path, caps: Path, seed: int) -> None:
    r.note(
        f"{who} (offline machine)",
        f"{who}'s camera reads the request frames",
        "capture every frame as a camera would (0.8x, blur, JPEG 60)",
        partial(capture, frames, caps, 0.0, seed),
    )


def _cameras(r: Rehearsal, label: str, frames: Path, seeds: dict[str, int]) -> dict[str, Path]:
    """Each keyholder's camera reads the `label` request's frames (its own seed): captures."""
    captures = {who: r.usb / f"{label}-{who}-captures" for who in seeds}
    for who, seed in seeds.items():
        _camera(r, who, frames, captures[who], seed)
    return captures


def _qr_review(r: Rehearsal, who: str, title: str, captures: Path, *says: str) -> Outcome:
    """`who` reviews (read-only, in full) the request read from `captures`."""
    return r.run(
        r.keyholder(who),
        title,
        "ceremony",
        "review",
        "--qr",
        str(captures),
        "--full",
        says=says,
    )


def _qr_export(r: Rehearsal, label: str, *extra: str) -> Path:
    frames = r.usb / f"{label}-qr"
    title = f"export the {label} request as QR frames (PNG)"
    r.export_to(r.online, title, label, "--qr-out", str(frames), *extra)
    return frames


def _publish_qr(r: Rehearsal, *shots: Path) -> None:
    args = [a for s in shots for a in ("--qr", str(s))]
    r.publish_from("publish the signatures read from QR images", *args)


def play_full(r: Rehearsal, _ctx: DrillContext) -> None:
    holders = ("alice", "bob", "carol")
    r.make_keys("alice", "root", "targets")
    r.make_keys("bob", "targets")
    r.make_keys("carol", "targets")
    public = r.merge_public_keys(holders)
    r.run(
        r.online,
        "stage a new repository: targets needs 2 of 3 keyholders",
        "ceremony-online",
        "init",
        r.gun,
        "--public-keys",
        str(public),
        "--targets-threshold",
        "2",
    )
    r.stage_file("app-1.0", "release 1.0\n")
    frames = _qr_export(r, "init")
    shown = _cameras(r, "init", frames, {"alice": 1, "bob": 2})
    _qr_review(r, "alice", "alice reviews the request (read-only)", shown["alice"], "app-1.0")
    sig_a = _qr_sign(r, "alice", shown["alice"], "init")
    sig_b = _qr_sign(r, "bob", shown["bob"], "init")
    _publish_qr(r, sig_a, sig_b)
    r.notary_list("a docker host lists the repository with the real notary client", "app-1.0")

    # one more ceremony: release 1.1 and a root rotation (a new root key on alice's machine);
    # old and new root keys sign root, alice and carol (her first contact) sign targets
    alice = r.keyholder("alice")
    out = r.run(
        alice,
        "alice generates a new root key",
        "ceremony",
        "key",
        "generate",
        "root",
        "--gun",
        r.gun,
    )
    new_root = _first_hex64(out.output.split())
    new_fp = r.fingerprint(alice, "alice", new_root, out)
    new_keys = r.usb / "new-root.json"
    r.run(
        alice,
        "alice exports the new root key's public half",
        "ceremony",
        "key",
        "export-public",
        "--gun",
        r.gun,
        "--key",
        new_root,
        "--out",
        str(new_keys),
    )
    r.run(
        r.online,
        "stage the root rotation",
        "ceremony-online",
        "rotate",
        r.gun,
        "root",
        "--public-keys",
        str(new_keys),
    )
    r.stage_file("app-1.1", "release 1.1\n")
    frames = _qr_export(r, "rotation")
    seen = _cameras(r, "rotation", frames, {"alice": 5, "carol": 6})
    _qr_review(
        r,
        "alice",
        "alice reviews: root v1 -> v2, the new key held on this machine, release 1.1",
        seen["alice"],
        *("v1 -> v2", f"+ root key {new_fp}", "app-1.1"),
    )
    shots = [
        _qr_sign(r, "alice", seen["alice"], "rotation", "--accept", "root"),
        # carol holds no root key: she confirms the new one from the record
        _qr_sign(r, "carol", seen["carol"], "rotation", "--accept", "root", "--expect-key", new_fp),
    ]
    _publish_qr(r, *shots)

    def follows() -> str:
        root = r.work / "client-trust" / "tuf" / r.gun / "metadata" / "root.json"
        if not root.exists() or b'"version":2' not in root.read_bytes():
            raise ValueError("the client's trusted root is not version 2")
        return f"{root.name} is version 2"

    r.notary_list("the client that trusted the old root follows the rotation", "app-1.0", "app-1.1")
    r.note(
        "client",
        "the client now trusts root v2",
        "read the client's trusted root.json",
        follows,
    )
    r.status("nothing is left staged", "Staged changes: 0")


def _first_hex64(words: Sequence[str]) -> str:
    return next((w for w in words if len(w) == 64), "")


def play_missing_keyholder(r: Rehearsal, _ctx: DrillContext) -> None:
    r.prepare(("alice", "bob", "carol"), threshold=2)
    request = r.export("init")
    sig_a = r.sign("alice", request, "init")
    r.run(
        r.online,
        "publish with alice's signatures only (bob and carol are away)",
        "ceremony-online",
        "publish",
        str(sig_a),
        code=1,
        says=("1 more",),
        never=("Published",),
    )
    r.status(
        "status keeps alice's signatures and names what is missing",
        *("1 of 2 signatures", "needs", "not published on the server yet"),
    )
    sig_c = r.sign("carol", request, "init")
    r.publish_from("carol comes back: publish her signatures alone (alice's were kept)", str(sig_c))
    r.notary_list("the notary client lists the release", "app-1.0")


def _no_file(path: Path, _outcome: Outcome) -> str | None:
    return f"{path.name} was written" if path.exists() else None


def softhsm_module() -> Path | None:
    """SoftHSM2's PKCS#11 module, where Debian puts it, if installed."""
    found = [Path("/usr/lib/softhsm/libsofthsm2.so"), *Path("/usr/lib").glob("*/softhsm/*.so")]
    return next((p for p in found if p.exists()), None)


def give_token(r: Rehearsal, who: str) -> bool:
    """Give `who` a fresh SoftHSM2 token (a stand-in for their HSM or smart card)."""
    module, util = softhsm_module(), shutil.which("softhsm2-util")
    if module is None or util is None:
        r.record(
            "drill", "SoftHSM2 is installed", "softhsm2-util --version", "found", "", 0.0,
            "SoftHSM2 is not installed (Debian package softhsm2): the token is not rehearsed",
        )  # fmt: skip
        return False
    machine = r.keyholder(who)
    tokens = r.work / f"{who}-token"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = tokens / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    pin, so_pin = secrets.token_hex(4), secrets.token_hex(8)
    r.secrets_seen.extend((pin, so_pin))
    machine.env.update(
        {
            "SOFTHSM2_CONF": str(conf),
            "CEREMONY_PKCS11_MODULE": str(module),
            "CEREMONY_PKCS11_PIN": pin,
            "DRILL_TOKEN": f"pkcs11:token=drill-{who}",
        }
    )
    r.run(
        machine, f"{who} initialises a token (SoftHSM2 stands in for the hardware)",
        util, "--init-token", "--free", "--label", f"drill-{who}", "--pin", pin,
        "--so-pin", so_pin,
    )  # fmt: skip
    return True


def play_wrong_passphrase(r: Rehearsal, _ctx: DrillContext) -> None:
    if not give_token(r, "bob"):
        return
    r.prepare(("alice", "bob"), threshold=2)
    request = r.export("init")
    bad = secrets.token_urlsafe(12)
    bad_pin = secrets.token_hex(4)
    r.secrets_seen.extend((bad, bad_pin))
    for who, title, env, word in (
        ("alice", "alice signs with a wrong passphrase", {
            "NOTARY_TARGETS_PASSPHRASE": bad, "NOTARY_ROOT_PASSPHRASE": bad}, "passphrase"),
        ("bob", "bob signs with a wrong token PIN", {"CEREMONY_PKCS11_PIN": bad_pin}, "PIN"),
    ):  # fmt: skip
        out = r.usb / f"init.{who}.sig.json"
        r.run(
            r.keyholder(who),
            title,
            "ceremony",
            "sign",
            str(request),
            "--out",
            str(out),
            "--yes",
            *r.expect_keys(who, new_repository=True),
            env=env,
            code=(1, 4),
            says=(word,),
            check=partial(_no_file, out),
        )
    sig_b = r.sign("bob", request, "init")
    sig_a = r.sign("alice", request, "init")
    r.publish(sig_a, sig_b)
    r.notary_list("the notary client lists the release", "app-1.0")


def play_qr_loss(r: Rehearsal, _ctx: DrillContext) -> None:
    r.prepare(("alice",))
    r.stage_list("bulk", 25)
    frames = _qr_export(r, "bulk", "--preset", "robust")
    caps = r.usb / "bulk-captures"
    r.note(
        "alice (offline machine)",
        f"the camera misses {int(QR_LOSS * 100)} % of the frames",
        f"drop {int(QR_LOSS * 100)} % of the frames; blur, shrink and JPEG the rest",
        lambda: capture(frames, caps, QR_LOSS, 1),
    )
    first = r.run(
        r.keyholder("alice"),
        "alice reviews the request from the captured frames",
        "ceremony",
        "review",
        "--qr",
        str(caps),
        "--full",
        code=(0, 1),
        expected="exit 0 with the 25 targets, or the reader asks for more frames",
        check=lambda o: (
            None
            if o.code == 0 or "scan more frames" in o.output
            else "neither decoded nor asked for more frames"
        ),
    )
    if first.code != 0:
        r.note(
            "alice (offline machine)",
            "the loop plays again: a second pass of the camera",
            f"capture the loop again, missing another {int(QR_LOSS * 100)} %",
            lambda: capture(frames, caps, QR_LOSS, 2),
        )
        _qr_review(r, "alice", "alice reviews the request from both passes", caps, "pkg/007.tar.gz")
    elif "pkg/007.tar.gz" not in first.output:
        r.record(
            "alice (offline machine)",
            "the review shows the targets",
            "",
            "",
            "",
            0.0,
            "the review does not list pkg/007.tar.gz",
        )
    shot = _qr_sign(r, "alice", caps, "bulk")
    _publish_qr(r, shot)
    r.notary_list("the notary client lists the new targets", "pkg/000.tar.gz", "pkg/024.tar.gz")


def play_conflict(r: Rehearsal, _ctx: DrillContext) -> None:
    r.setup(("alice", "bob"), threshold=1, signers=("alice",))
    second = r.online_machine("operator-2", r.server_url)
    r.stage_file("app-2.0", "release 2.0\n")
    request = r.export("release")
    sig_a = r.sign("alice", request, "release")
    r.stage_file("hotfix", "hotfix\n", machine=second)
    other = r.export("hotfix", machine=second)
    sig_b = r.sign("bob", other, "hotfix")
    r.publish(sig_b, machine=second)
    r.run(
        r.online,
        "publish alice's signatures: the server changed since the export",
        "ceremony-online",
        "publish",
        str(sig_a),
        code=(1, 3),
        never=("Published",),
        expected="refused: the server moved on since the export; nothing uploaded",
    )
    r.notary_list(
        "the server serves the hotfix, not the refused release",
        "hotfix",
        trust="client-mid",
        absent=("app-2.0",),
    )
    r.status("the staged release is still there", "Staged changes: 1")
    again = r.export("release-again")
    sig = r.sign("alice", again, "release-again")
    r.publish(sig)
    r.notary_list("the notary client lists both", "app-1.0", "hotfix", "app-2.0")


def play_server_down(r: Rehearsal, ctx: DrillContext) -> None:
    proxy = ctx.proxy()
    via = f"https://127.0.0.1:{proxy.port}"
    r.online = r.online_machine("operator", via)
    r.prepare(("alice",))
    r.stage_list("release", 30)  # an upload of several KB: the relay tells it from the GETs
    request = r.export("init")
    sig = r.sign("alice", request, "init")
    r.note(
        "network",
        "the server will go down during the upload",
        "arm the relay in front of the server: let the upload through, drop the answer, "
        "then refuse every connection",
        proxy.cut_on_upload,
    )
    r.run(
        r.online,
        "publish: the server goes down mid-publish",
        "ceremony-online",
        "publish",
        str(sig),
        code=3,
        never=("Published",),
        expected="exit 3 (environment): the server could not be reached; signatures kept",
        check=lambda _: None if proxy.went_down.is_set() else "the relay never cut the upload",
    )
    r.run(
        r.online,
        "the request and its signatures are kept",
        "ceremony-online",
        "requests",
        "list",
        r.gun,
        says=("1 signatures document",),
    )
    r.note("network", "the server is back", "the relay listens again", proxy.up)
    r.run(
        r.online,
        "publish again once the server is back",
        "ceremony-online",
        "publish",
        str(sig),
        check=lambda o: (
            None
            if ("Published" in o.output or "already published" in o.output)
            else "neither published nor found it already published"
        ),
        expected="exit 0: published, or found already published (the upload had arrived)",
    )
    r.notary_list("the notary client lists the release", "app-1.0", "pkg/029.tar.gz", server=via)


def play_expired(r: Rehearsal, _ctx: DrillContext) -> None:
    faketime = shutil.which("faketime")
    if faketime is None:
        r.record(
            "drill",
            "faketime is installed",
            "faketime --version",
            "found",
            "",
            0.0,
            "faketime is not installed (Debian package faketime)",
        )
        return
    r.setup(("alice",))
    later = [faketime, "-f", FAKE_LATER]
    year = datetime.now(UTC).year
    r.run(
        r.online,
        "three years later: status says targets and the server's timestamp expired (exit 1)",
        "ceremony-online",
        "status",
        r.gun,
        wrap=later,
        code=1,
        says=("expire",),
    )
    r.run(
        r.online,
        "stage a refresh of the expiring roles",
        "ceremony-online",
        "refresh",
        r.gun,
        wrap=later,
        says=("staged",),
    )
    request = r.usb / "refresh.request.json"
    r.run(
        r.online,
        "export the refresh request (the timestamp looks frozen from the moved clock: "
        "acknowledged)",
        "ceremony-online",
        "export",
        r.gun,
        "--out",
        str(request),
        "--accept-expired-timestamp",
        wrap=later,
        says=("words:",),
    )
    out = r.usb / "refresh.alice.sig.json"
    r.run(
        r.keyholder("alice"),
        "alice's review flags the expired base; sign refuses without it",
        "ceremony",
        "sign",
        str(request),
        "--out",
        str(out),
        "--yes",
        wrap=later,
        code=1,
        says=("--accept timestamp", "--accept snapshot"),
    )
    r.run(
        r.keyholder("alice"),
        "alice acknowledges the expired timestamp and snapshot, and signs",
        "ceremony",
        "sign",
        str(request),
        "--out",
        str(out),
        "--yes",
        "--accept",
        "timestamp",
        "--accept",
        "snapshot",
        wrap=later,
    )
    r.run(
        r.online,
        "publish the refresh",
        "ceremony-online",
        "publish",
        str(out),
        "--accept-expired-timestamp",
        wrap=later,
        says=("Published",),
    )
    r.run(
        r.online,
        "targets now expires three years after the (moved) clock",
        "ceremony-online",
        "status",
        r.gun,
        wrap=later,
        code=1,
        expected=f"exit 1 (the timestamp, seen from the moved clock); targets v2 expires in {year + 6}",
        check=lambda o: (
            None
            if re.search(rf"targets\s+v2\s+expires {year + 6}-", o.output)
            else f"targets v2 does not expire in {year + 6}"
        ),
    )
    r.notary_list("the notary client (real clock) lists the repository", "app-1.0")


def play_abandoned(r: Rehearsal, _ctx: DrillContext) -> None:
    r.setup(("alice",))
    r.stage_file("app-2.0", "release 2.0\n")
    first = r.export("first")
    first_id = json.loads(first.read_text())["id"]
    sig_first = r.sign("alice", first, "first")
    r.run(
        r.online,
        "the operator gives up the first request (it is never published)",
        "ceremony-online",
        "requests",
        "cancel",
        r.gun,
        first_id,
    )
    r.stage_file("app-2.1", "release 2.1\n")
    second = r.export("second")
    r.run(
        r.keyholder("alice"),
        "alice signs the new request: refused until she names the old one",
        "ceremony",
        "sign",
        str(second),
        "--out",
        str(r.usb / "second.alice.sig.json"),
        "--yes",
        code=1,
        says=(first_id,),
    )
    sig = r.sign("alice", second, "second", "--abandon", first_id)
    r.publish(sig)
    r.run(
        r.online,
        "the abandoned request's signatures cannot be published any more",
        "ceremony-online",
        "publish",
        str(sig_first),
        code=(1,),
        never=("Published",),
    )
    r.notary_list(
        "the notary client lists the second request's releases", "app-1.0", "app-2.0", "app-2.1"
    )


SCENARIOS: dict[str, Scenario] = {
    "full": Scenario(
        "The whole path: three keyholders make keys, the repository needs 2 of 3 targets "
        "signatures, requests and signatures cross the air gap as QR images; then release 1.1 "
        "together with a root rotation, which a client that trusted the old root follows.",
        (
            "every command exits 0",
            "the real notary client lists each release",
            "the client that trusted root v1 follows to root v2",
        ),
        play_full,
    ),
    "missing-keyholder": Scenario(
        "Two of three targets keyholders must sign; only one is present.",
        (
            "publish exits 1, says how many more signatures are needed, uploads nothing",
            "status keeps the signatures collected and names the missing keys",
            "the second keyholder's signatures alone complete it later",
        ),
        play_missing_keyholder,
    ),
    "wrong-passphrase": Scenario(
        "Two keyholders must sign: alice's key file gets a wrong passphrase, bob's token "
        "(SoftHSM2) a wrong PIN, both from the environment.",
        (
            "sign fails with one sentence naming the passphrase or PIN, writes no signatures "
            "file, and never retries the PIN",
            "neither the wrong nor the right passphrase or PIN appears in the output",
            "with the right passphrase and PIN the ceremony completes",
        ),
        play_wrong_passphrase,
    ),
    "qr-loss": Scenario(
        "The request crosses as an animated QR code; the camera misses 30 % of the frames "
        "and every capture is blurred, shrunk and JPEG-compressed.",
        (
            "the offline half rebuilds the request from what it captured (or asks for more "
            "frames, and a second pass of the loop completes it)",
            "the signatures code, also degraded, publishes",
        ),
        play_qr_loss,
    ),
    "conflict": Scenario(
        "A second operator publishes a hotfix after the first exported a release.",
        (
            "publishing the stale release is refused and uploads nothing",
            "the staged release is kept; a new export and signature publish it on top",
        ),
        play_conflict,
    ),
    "server-down": Scenario(
        "The server goes down in the middle of a publish (a relay in front of it drops the "
        "connection after the upload left, before the answer came back).",
        (
            "publish exits 3 (environment) and keeps the request and signatures",
            "once the server is back, publishing the same signatures completes "
            "(or finds them already published)",
        ),
        play_server_down,
    ),
    "expired": Scenario(
        f"The online and offline machines run {FAKE_LATER[1:]} ahead (faketime): the "
        "repository's targets and the server's timestamp have expired.",
        (
            "status warns about the expiry; refresh stages a re-signing",
            "sign refuses until the expired timestamp is acknowledged",
            "the refreshed targets expire three years after the moved clock",
        ),
        play_expired,
    ),
    "abandoned": Scenario(
        "A request is signed but never published; the operator cancels it and exports another.",
        (
            "sign refuses the new request until the abandoned one is named (--abandon)",
            "the abandoned request's signatures cannot be published afterwards",
        ),
        play_abandoned,
    ),
}


def _tools_line() -> str:
    try:
        from importlib.metadata import version

        ours = version("notary-ceremony")
    except Exception:  # noqa: BLE001 - a version string is only informative
        ours = "unknown"
    return f"notary-ceremony {ours}; notary-server {shutil.which('notary-server')}"


def run_drill(options: DrillOptions, say: Callable[[str], None]) -> DrillResult:
    """Run the named scenarios against one throwaway server; write drill.md and drill.html."""
    for tool in ("notary-server", "notary"):
        if shutil.which(tool) is None:
            raise EnvironmentFailure(
                f"The drill needs `{tool}`: install the Debian package notary."
            )
    options.report.mkdir(parents=True, exist_ok=True)
    work = (
        options.report / "work"
        if options.keep
        else Path(tempfile.mkdtemp(prefix="ceremony-drill-"))
    )
    started = datetime.now(UTC).replace(microsecond=0).isoformat()
    t0 = time.monotonic()
    records: list[ScenarioRecord] = []
    secrets_seen: list[str] = []
    try:
        with memory_server(work / "server") as server:
            ctx = DrillContext(server)
            say(f"drill: notary-server at {server.url} (memory store, throwaway)")
            try:
                records.extend(_play_all(options, work, ctx, secrets_seen, say))
            finally:
                for proxy in ctx.proxies:
                    proxy.close()
            server_line = f"{server.url} (notary-server, memory store, throwaway TLS certificate)"
    finally:
        if not options.keep:
            shutil.rmtree(work, ignore_errors=True)
    drill = DrillRecord(started, server_line, _tools_line(), tuple(records), time.monotonic() - t0)
    md, page = options.report / "drill.md", options.report / "drill.html"
    atomic_write(md, markdown(drill).encode(), mode=0o644)
    atomic_write(page, html_page(drill).encode(), mode=0o644)
    passed, total = drill.checks
    return DrillResult(md, page, passed, total)


def _play_all(
    options: DrillOptions,
    work: Path,
    ctx: DrillContext,
    secrets_seen: list[str],
    say: Callable[[str], None],
) -> list[ScenarioRecord]:
    """The scenarios in order, or `jobs` at a time; Ctrl-C stops each at its next step."""
    if options.jobs <= 1:
        return [_play(n, work, ctx, secrets_seen, say) for n in options.scenarios]
    with ThreadPoolExecutor(max_workers=options.jobs) as pool:
        futures = [pool.submit(_play, n, work, ctx, secrets_seen, say) for n in options.scenarios]
        try:
            return [f.result() for f in futures]
        except BaseException:
            ctx.stopping.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _play(
    name: str,
    work: Path,
    ctx: DrillContext,
    secrets_seen: list[str],
    say: Callable[[str], None],
) -> ScenarioRecord:
    scenario = SCENARIOS[name]
    r = Rehearsal(name, work / name, ctx.server.url, ctx.server.ca, secrets_seen, ctx.stopping)
    t0 = time.monotonic()
    error = ""
    say(f"drill: scenario {name} …")
    try:
        scenario.play(r, ctx)
    except StepFailed as exc:
        error = str(exc)
    except EnvironmentFailure as exc:
        error = exc.message
    seconds = time.monotonic() - t0
    verdict = "FAIL" if error or not all(s.passed for s in r.steps) else "PASS"
    say(f"drill: scenario {name}: {verdict} ({len(r.steps)} steps, {seconds:.1f} s)")
    return ScenarioRecord(name, scenario.summary, scenario.expected, tuple(r.steps), seconds, error)
