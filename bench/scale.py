"""Side by side with the real Notary 0.7 CLI at every repository size (the performance issue's
table), on this machine, against local notary-servers (memory store, TLS).

Every figure is the wall time of whole commands, process start included. The two sides run
alternately, pair by pair, and each cell is the median of its pairs; a ratio is the median of
the pairs' ratios. Peak memory is the largest resident set of any one command (`wait4`).
"server" is notary-server's CPU time during our side of the work: the share of a publish that
no client can make faster.

    .venv/bin/python bench/scale.py [--pairs 3] [--large] [--only one-target,new-10k,verify-10k]

`--large` adds the 100,000-target cold verify at full size and one 1,000,000-target ceremony
(each step's time and peak memory; about ten minutes and 3 GiB of disk). `--only` runs only
the named rows (help, new-10k, verify-10k, one-target, verify-100k, 1m; the last three are the
`--large` ones) and prints the table without replacing the recorded results.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.notary_env import PASSPHRASE_ENV, NotaryServer, start_server  # noqa: E402

BIN = Path(sys.executable).parent
RESULTS = ROOT / "bench" / "scale-results.md"
ROWS = ("help", "new-10k", "verify-10k", "one-target", "verify-100k", "1m")


@dataclass
class Run:
    """Whole commands run one after another: their summed wall time and largest peak."""

    seconds: float = 0.0
    peak_kib: int = 0
    server_cpu: float = 0.0
    cpu: float = 0.0  # the command's own CPU time (user + system): steadier than wall time

    def add(self, other: Run) -> None:
        self.seconds += other.seconds
        self.peak_kib = max(self.peak_kib, other.peak_kib)
        self.server_cpu += other.server_cpu
        self.cpu += other.cpu


def installed_env() -> dict[str, str]:
    """This environment, but with Python's bytecode cache on, as in an installed copy (pip
    compiles every module at install time): PYTHONDONTWRITEBYTECODE would make each of our
    commands compile every module of ours again, a cost no installation pays."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def command(cmd: Sequence[str], env: dict[str, str], server: NotaryServer | None = None) -> Run:
    """Run one command to completion; its wall time, peak RSS and the server's CPU time."""
    pid = server.local.processes[0].pid if server is not None else None
    before = cpu_seconds(pid) if pid is not None else 0.0
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(cmd), env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            out.seek(0)
            raise SystemExit(f"{' '.join(cmd)} failed:\n{out.read().decode()[-3000:]}")
    after = cpu_seconds(pid) if pid is not None else 0.0
    return Run(seconds, usage.ru_maxrss, after - before, usage.ru_utime + usage.ru_stime)


def sequence(steps: Sequence[Sequence[str]], env: dict[str, str], server: NotaryServer) -> Run:
    total = Run()
    for step in steps:
        total.add(command(step, env, server))
    return total


def target_list(path: Path, count: int, seed: int, prefix: str = "pkg") -> Path:
    rng = random.Random(seed)
    with path.open("w") as f:
        for i in range(count):
            f.write(
                f"{prefix}/{i:07d}.tar.gz {rng.randbytes(32).hex()} {rng.randrange(1, 10**9)}\n"
            )
    return path


@dataclass
class Bench:
    """One notary-server, an offline and an online home, and a notary trust dir."""

    work: Path
    server: NotaryServer = field(init=False)
    env: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.server = start_server(self.work / "server")
        self.env = installed_env()
        self.env.update(PASSPHRASE_ENV)
        self.env.update(
            {
                "PATH": f"{BIN}:{self.env['PATH']}",
                "CEREMONY_HOME": str(self.work / "offline"),
                "CEREMONY_ONLINE_HOME": str(self.work / "online"),
                "CEREMONY_SERVER": self.server.url,
                "CEREMONY_TLS_CA": str(self.server.ca),
                "CI": "true",
            }
        )

    def stop(self) -> None:
        self.server.stop()

    def ours(self, *args: str) -> list[str]:
        return [str(BIN / args[0]), *args[1:]]

    def notary(self, *args: str) -> list[str]:
        return [
            "notary",
            "-s",
            self.server.url,
            "--tlscacert",
            str(self.server.ca),
            "-d",
            str(self.work / "notary"),
            *args,
        ]

    # -- our side ----------------------------------------------------------

    def our_repository(self, gun: str) -> None:
        """Keys offline, and `init` staged online (not timed: the same for any change)."""
        pub = self.work / f"pub-{gun.replace('/', '_')}.json"
        for step in (
            self.ours("ceremony", "key", "generate", "root", "--gun", gun),
            self.ours("ceremony", "key", "generate", "targets", "--gun", gun),
            self.ours("ceremony", "key", "export-public", "--gun", gun, "--out", str(pub)),
            self.ours("ceremony-online", "init", gun, "--public-keys", str(pub)),
        ):
            command(step, self.env)

    def our_change(self, gun: str, stage: list[str], *, thin: bool = False) -> Run:
        tag = uuid.uuid4().hex[:8]
        request, signatures = self.work / f"req-{tag}.json", self.work / f"sig-{tag}.json"
        export = self.ours("ceremony-online", "export", gun, "--out", str(request))
        steps = [
            stage,
            export + (["--thin"] if thin else []),
            self.ours("ceremony", "sign", str(request), "--out", str(signatures), "--yes"),
            self.ours("ceremony-online", "publish", str(signatures)),
        ]
        run = sequence(steps, self.env, self.server)
        request.unlink()
        signatures.unlink()
        return run

    # -- notary's side -------------------------------------------------------

    def notary_repository(self, gun: str) -> None:
        command(self.notary("init", gun), self.env)
        command(self.notary("publish", gun), self.env)

    def write_changelist(self, gun: str, listing: Path) -> None:
        """The changelist files `notary add` would write, written directly (notary's best case)."""
        folder = self.work / "notary" / "tuf" / gun / "changelist"
        folder.mkdir(parents=True, exist_ok=True)
        stamp = time.time_ns()
        for i, line in enumerate(listing.read_text().splitlines()):
            name, digest, length = line.split()
            meta = {
                "length": int(length),
                "hashes": {"sha256": base64.b64encode(bytes.fromhex(digest)).decode()},
            }
            change = {
                "action": "create",
                "role": "targets",
                "type": "target",
                "path": name,
                "data": base64.b64encode(json.dumps(meta).encode()).decode(),
            }
            (folder / f"{stamp + i:020d}_{uuid.uuid4()}.change").write_text(json.dumps(change))


def ratio(pairs: Sequence[tuple[Run, Run]]) -> tuple[float, float, float, int, int, float]:
    ours = statistics.median(a.seconds for a, _ in pairs)
    theirs = statistics.median(b.seconds for _, b in pairs)
    r = statistics.median(a.seconds / b.seconds for a, b in pairs)
    peak_a = max(a.peak_kib for a, _ in pairs) // 1024
    peak_b = max(b.peak_kib for _, b in pairs) // 1024
    server = statistics.median(a.server_cpu for a, _ in pairs)
    return ours, theirs, r, peak_a, peak_b, server


def row(work: str, pairs: Sequence[tuple[Run, Run]], goal: str) -> str:
    ours, theirs, r, peak_a, peak_b, server = ratio(pairs)
    return (
        f"| {work} | {ours:.2f} s | {theirs:.2f} s | {r:.2f} | {goal} | "
        f"{peak_a} / {peak_b} MiB | {server:.2f} s |"
    )


def alternate(
    pairs: int, ours: Callable[[int], Run], theirs: Callable[[int], Run]
) -> list[tuple[Run, Run]]:
    out = []
    for i in range(pairs):
        a = ours(i)
        b = theirs(i)
        out.append((a, b))
        print(f"    pair {i + 1}: ours {a.seconds:.2f} s, notary {b.seconds:.2f} s", flush=True)
    return out


def new_targets(work: Path, pairs: int, count: int) -> list[str]:
    """`count` new targets in one change, vs notary with changelist files written directly, and
    vs one `notary add` per target (its per-add time sampled, then scaled to `count`)."""
    bench = Bench(work)
    try:
        listing = target_list(work / "list.txt", count, seed=count)

        def ours(i: int) -> Run:
            gun = f"bench.example.com/new{count}-{i}"
            bench.our_repository(gun)
            add = bench.ours("ceremony-online", "add", gun, "--from", str(listing))
            return bench.our_change(gun, add)

        def direct(i: int) -> Run:
            gun = f"bench.example.com/notary{count}-{i}"
            command(bench.notary("init", gun), bench.env)
            bench.write_changelist(gun, listing)
            return command(bench.notary("publish", gun), bench.env, bench.server)

        measured = alternate(pairs, ours, direct)
        sample = 100
        gun = "bench.example.com/notary-each"
        bench.notary_repository(gun)
        adds: list[Run] = []
        for line in listing.read_text().splitlines()[:sample]:
            name, digest, _ = line.split()
            blob = work / "blob"
            blob.write_bytes(digest.encode())
            adds.append(command(bench.notary("add", gun, name, str(blob)), bench.env))
        per_add = statistics.median(a.seconds for a in adds)
        each = [
            (a, Run(per_add * count + b.seconds, max(x.peak_kib for x in [*adds, b]), 0.0))
            for a, b in measured
        ]
        return [
            row(
                f"{count:,} new targets, whole change, vs one `notary add` per target + publish "
                f"({sample} adds timed, {per_add * 1000:.0f} ms each, scaled)",
                each,
                "≤ 0.05",
            ),
            row(
                f"{count:,} new targets, whole change, vs notary with changelist files written "
                "directly + publish",
                measured,
                "≤ 1.0",
            ),
        ]
    finally:
        bench.stop()


def big_repository(
    work: Path, pairs: int, count: int, *, changes: bool = True, verify: bool = True
) -> list[str]:
    """One-target changes on a `count`-target repository (both sides), then cold verify."""
    bench = Bench(work)
    try:
        listing = target_list(work / "big.txt", count, seed=7)
        ours_gun, notary_gun = f"bench.example.com/big{count}", f"bench.example.com/nbig{count}"
        bench.our_repository(ours_gun)
        bench.our_change(
            ours_gun, bench.ours("ceremony-online", "add", ours_gun, "--from", str(listing))
        )
        command(bench.notary("init", notary_gun), bench.env)
        bench.write_changelist(notary_gun, listing)
        command(bench.notary("publish", notary_gun), bench.env)

        def ours(thin: bool) -> Callable[[int], Run]:
            def one(i: int) -> Run:
                blob = work / f"one-{thin}-{i}.bin"
                blob.write_bytes(os.urandom(64))
                add = bench.ours("ceremony-online", "add", ours_gun, f"one-{thin}-{i}", str(blob))
                return bench.our_change(ours_gun, add, thin=thin)

            return one

        def theirs(thin: bool) -> Callable[[int], Run]:
            def one(i: int) -> Run:
                blob = work / f"n-{thin}-{i}.bin"
                blob.write_bytes(os.urandom(64))
                return sequence(
                    [
                        bench.notary("add", notary_gun, f"one-{thin}-{i}", str(blob)),
                        bench.notary("publish", notary_gun),
                    ],
                    bench.env,
                    bench.server,
                )

            return one

        if not changes:
            return [cold_verify(bench, ours_gun, pairs, count)] if verify else []
        rows = [
            row(
                f"one-target change on a {count:,}-target repository, end to end, vs "
                "`notary add` + `notary publish`",
                alternate(pairs, ours(False), theirs(False)),
                "≤ 0.5",
            ),
            row(
                "the same with `export --thin`",
                alternate(pairs, ours(True), theirs(True)),
                "≤ 0.5",
            ),
        ]
        if verify:
            rows.append(cold_verify(bench, ours_gun, pairs, count))
        return rows
    finally:
        bench.stop()


def cold_verify(bench: Bench, gun: str, pairs: int, count: int) -> str:
    folder = bench.work / "verify"
    folder.mkdir(exist_ok=True)
    for role in ("root", "targets", "snapshot", "timestamp"):
        (folder / f"{role}.json").write_bytes(bench.server.fetch(gun, f"{role}.json"))

    def ours(_: int) -> Run:
        return command(bench.ours("ceremony", "verify", str(folder), "--gun", gun), bench.env)

    def theirs(_: int) -> Run:
        shutil.rmtree(bench.work / "notary" / "tuf" / gun, ignore_errors=True)
        return command(bench.notary("list", gun), bench.env)

    return row(
        f"cold verify of a {count:,}-target repository (every target printed) vs `notary list` "
        "on a fresh trust dir",
        alternate(pairs, ours, theirs),
        "≤ 1.0",
    )


def cold_help(pairs: int) -> list[str]:
    env = dict(installed_env(), PATH=f"{BIN}:{os.environ['PATH']}")
    rows = []
    for name in ("ceremony", "ceremony-online"):
        measured = alternate(
            max(pairs, 10),
            lambda _, name=name: command([str(BIN / name), "--help"], env),
            lambda _: command(["notary", "--help"], env),
        )
        rows.append(row(f"`{name} --help`, cold, vs `notary --help`", measured, "≤ 0.15 s"))
    return rows


def large_ceremony(work: Path, count: int) -> list[str]:
    """One `count`-target ceremony: each step's time and peak memory (ours only)."""
    bench = Bench(work)
    try:
        gun = f"bench.example.com/huge{count}"
        listing = target_list(work / "huge.txt", count, seed=count)
        bench.our_repository(gun)
        request, signatures = work / "huge-req.json", work / "huge-sig.json"
        steps = {
            "stage": bench.ours("ceremony-online", "add", gun, "--from", str(listing)),
            "export": bench.ours("ceremony-online", "export", gun, "--out", str(request)),
            "review + sign": bench.ours(
                "ceremony", "sign", str(request), "--out", str(signatures), "--yes"
            ),
            "publish": bench.ours("ceremony-online", "publish", str(signatures)),
        }
        lines = [
            f"| {count:,} targets in one ceremony: step | seconds | CPU seconds | peak memory "
            "| server CPU |",
            "|---|---|---|---|---|",
        ]
        for name, step in steps.items():
            try:
                run = command(step, bench.env, bench.server)
            except SystemExit as failed:  # keep the table: say which step failed and why
                reason = str(failed).strip().splitlines()[-1][:160]
                lines.append(f"| {name} | failed: {reason} | | | |")
                print(f"    {name}: failed: {reason}", flush=True)
                return lines
            lines.append(
                f"| {name} | {run.seconds:.1f} | {run.cpu:.1f} | {run.peak_kib // 1024} MiB | "
                f"{run.server_cpu:.1f} s |"
            )
            print(
                f"    {name}: {run.seconds:.1f} s ({run.cpu:.1f} s CPU), "
                f"{run.peak_kib // 1024} MiB",
                flush=True,
            )
        folder = work / "huge-verify"
        folder.mkdir()
        for role in ("root", "targets", "snapshot", "timestamp"):
            (folder / f"{role}.json").write_bytes(bench.server.fetch(gun, f"{role}.json"))
        run = command(bench.ours("ceremony", "verify", str(folder), "--gun", gun), bench.env)
        lines.append(
            f"| cold verify | {run.seconds:.1f} | {run.cpu:.1f} | {run.peak_kib // 1024} MiB | |"
        )
        return lines
    finally:
        bench.stop()


def environment() -> str:
    notary = subprocess.run(["notary", "version"], capture_output=True, text=True)
    found = re.search(r"Version:[ \t]*(\S+)", notary.stdout + notary.stderr)
    version = found.group(1) if found else "0.7 (Debian's build prints no version)"
    load = os.getloadavg()[0]
    return (
        f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPUs, Python "
        f"{platform.python_version()}, notary {version}; load average {load:.1f} at the start."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3, help="alternated pairs per row")
    parser.add_argument("--large", action="store_true", help="the 100,000 and 1,000,000 rows")
    parser.add_argument("--only", default="", help="comma-separated rows: " + ", ".join(ROWS))
    arguments = parser.parse_args()
    only = {name for name in arguments.only.split(",") if name}
    if only - set(ROWS):
        parser.error(f"--only takes {', '.join(ROWS)}")
    wanted = only or {*ROWS[:3], *(ROWS[3:] if arguments.large else ())}
    header = [
        "| work | ours | notary | ratio ours / notary | goal | peak memory ours / notary "
        "| server CPU (ours) |",
        "|---|---|---|---|---|---|---|",
    ]
    rows: list[str] = []
    extra: list[str] = []
    with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp:
        work = Path(tmp)
        if "help" in wanted:
            print("cold start", flush=True)
            rows += cold_help(arguments.pairs)
        if "new-10k" in wanted:
            print("10,000 new targets", flush=True)
            rows += new_targets(work / "new", arguments.pairs, 10_000)
        if "verify-10k" in wanted:
            print("10,000-target repository", flush=True)
            rows += big_repository(work / "b10k", arguments.pairs, 10_000, changes=False)
        if wanted & {"one-target", "verify-100k"}:
            print("100,000-target repository", flush=True)
            rows += big_repository(
                work / "b100k",
                arguments.pairs,
                100_000,
                changes="one-target" in wanted,
                verify="verify-100k" in wanted,
            )
        if "1m" in wanted:
            print("1,000,000 targets", flush=True)
            extra = large_ceremony(work / "huge", 1_000_000)
    text = "\n".join(
        [
            "# Scale: ours vs the notary CLI",
            "",
            environment(),
            f"Medians of {arguments.pairs} alternated pairs (10 for cold start); wall time of "
            "whole commands.",
            "",
            *header,
            *rows,
            "",
            *extra,
            "",
        ]
    )
    print(text)
    if not only:
        RESULTS.write_text(text)


if __name__ == "__main__":
    main()
