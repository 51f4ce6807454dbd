"""Ceremony timings against a local notary-server, beside the `notary` CLI where it has an equivalent.

Prints a markdown table. Each figure is the wall time of whole commands (process
start included), median of `--runs` runs, on this machine. The `notary` client
stages one target per process and signs with keys on the connected machine; we
stage in one process and sign offline, so the rows compare the operator's work,
not identical internals.

    .venv/bin/python bench/ceremony_bench.py [--targets 1000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.notary_env import PASSPHRASE, NotaryCli, start_server  # noqa: E402

BIN = Path(sys.executable).parent


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def run(env: dict[str, str], *cmd: str) -> None:
    proc = subprocess.run(
        cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=900
    )
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stdout}{proc.stderr}")


def one_round(work: Path, targets: int, seed: int, *, with_notary: bool = True) -> dict[str, float]:
    server = start_server(work / "server")
    try:
        gun = f"bench.example.com/app-{seed}"
        env = dict(os.environ)
        env.update(
            {
                "PATH": f"{BIN}:{env['PATH']}",
                "CEREMONY_HOME": str(work / "offline"),
                "CEREMONY_ONLINE_HOME": str(work / "online"),
                "CEREMONY_SERVER": server.url,
                "CEREMONY_TLS_CA": str(server.ca),
                "NOTARY_ROOT_PASSPHRASE": PASSPHRASE,
                "NOTARY_TARGETS_PASSPHRASE": PASSPHRASE,
            }
        )
        rng = random.Random(seed)
        files = []
        for i in range(targets):
            path = work / "files" / f"f{i}.bin"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(rng.randbytes(64))
            files.append(path)
        import hashlib

        listing = work / "list.txt"
        listing.write_text(
            "".join(
                f"pkg/{i:06d} {hashlib.sha256(p.read_bytes()).hexdigest()} 64\n"
                for i, p in enumerate(files)
            )
        )
        out: dict[str, float] = {}
        run(env, "ceremony", "key", "generate", "root", "--gun", gun)
        run(env, "ceremony", "key", "generate", "targets", "--gun", gun)
        run(env, "ceremony", "key", "export-public", "--gun", gun, "--out", str(work / "pub.json"))
        run(env, "ceremony-online", "init", gun, "--public-keys", str(work / "pub.json"))
        out["ours: stage targets"] = timed(
            lambda: run(env, "ceremony-online", "add", gun, "--from", str(listing))
        )
        req, sig = work / "r.json", work / "s.json"
        out["ours: export request"] = timed(
            lambda: run(env, "ceremony-online", "export", gun, "--out", str(req))
        )
        out["ours: review + sign offline"] = timed(
            lambda: run(env, "ceremony", "sign", str(req), "--out", str(sig), "--yes")
        )
        out["ours: publish + verify served"] = timed(
            lambda: run(env, "ceremony-online", "publish", str(sig))
        )

        if not with_notary:
            return out
        notary = NotaryCli(server, work / "notary-trust")
        ngun = gun + "-notary"
        notary.run("init", "-p", ngun)

        def notary_adds() -> None:
            for i, p in enumerate(files):
                notary.run("add", ngun, f"pkg/{i:06d}", str(p))

        out["notary: stage targets"] = timed(notary_adds)
        out["notary: publish"] = timed(lambda: notary.run("publish", ngun))
        cache = notary.metadata_dir(ngun)
        out["notary: list (warm cache)"] = timed(lambda: notary.run("list", ngun))
        out["ours: verify the notary cache"] = timed(
            lambda: run(env, "ceremony", "verify", str(cache), "--gun", ngun)
        )
        return out
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--large", type=int, default=20000, help="targets for the ours-only rows")
    args = parser.parse_args()
    rounds = []
    for seed in range(args.runs):
        work = Path(tempfile.mkdtemp(prefix="ceremony-bench-"))
        try:
            rounds.append(one_round(work, args.targets, seed))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    print(f"# Ceremony vs notary CLI, {args.targets} targets\n")
    print(
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"median of {args.runs} runs, wall seconds for whole commands.\n"
    )
    print("| step | seconds | per target (ms) |")
    print("|---|---|---|")
    for key in rounds[0]:
        med = statistics.median(r[key] for r in rounds)
        per = f"{1000 * med / args.targets:.2f}" if "stage" in key else ""
        print(f"| {key} | {med:.2f} | {per} |")
    if args.large:
        work = Path(tempfile.mkdtemp(prefix="ceremony-bench-"))
        try:
            large = one_round(work, args.large, 99, with_notary=False)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(
            f"\n{args.large} targets in one ceremony (ours only: `notary add` is one process per target):\n"
        )
        print("| step | seconds |")
        print("|---|---|")
        for key, value in large.items():
            print(f"| {key} | {value:.2f} |")


if __name__ == "__main__":
    main()
