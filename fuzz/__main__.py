"""`make fuzz`: run every harness in turn and print iterations and crashes per parser.

    python -m fuzz [--runs N] [--seconds S] [--seed S] [--only a,b] [--work DIR]

Each parser runs in its own worker process (`fuzz.worker`) with the seeds of
`fuzz.seeds`; the corpus each run grows is kept under `--work` (default `.fuzz/`)
so the next run starts from it. Exit status 1 if any parser crashed: the inputs
and tracebacks are under `WORK/crashes/<parser>/`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from fuzz import NAMES
from fuzz.seeds import write as write_seeds


@dataclass(frozen=True)
class Outcome:
    name: str
    iterations: int
    crashes: int
    seconds: float
    note: str
    signatures: tuple[str, ...]


def run_one(
    name: str, *, runs: int, seconds: float, seed: int, work: Path, seeds: Path, timeout: int
) -> Outcome:
    """One worker; a worker that dies (a hang or memory blow-up libFuzzer caught) is a crash."""
    log = work / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    summary = work / f"{name}.json"
    summary.unlink(missing_ok=True)
    command = [
        sys.executable, "-m", "fuzz.worker", name,
        "--runs", str(runs), "--seconds", str(seconds), "--seed", str(seed),
        "--work", str(work), "--seeds", str(seeds), "--timeout", str(timeout),
    ]  # fmt: skip
    started = time.monotonic()
    with log.open("wb") as out:
        code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
    elapsed = time.monotonic() - started
    doc = json.loads(summary.read_text()) if summary.exists() else {}
    signatures = tuple(doc.get("signatures", {}))
    crashes = int(doc.get("crashes", 0))
    note = ""
    if code != 0 or not doc.get("finished"):
        artifacts = sorted((work / "crashes" / name).glob("*-*"))
        kinds = sorted({p.name.split("-")[0] for p in artifacts if "." not in p.name})
        crashes += 1
        note = f"worker ended with status {code} ({', '.join(kinds) or 'see ' + str(log)})"
        signatures += (note,)
    return Outcome(name, int(doc.get("iterations", 0)), crashes, elapsed, note, signatures)


def table(outcomes: list[Outcome]) -> str:
    lines = [f"{'parser':<15} {'iterations':>12} {'crashes':>8} {'seconds':>9}"]
    lines.extend(
        f"{o.name:<15} {o.iterations:>12,} {o.crashes:>8} {o.seconds:>9.0f}" for o in outcomes
    )
    total = sum(o.iterations for o in outcomes)
    lines.append(f"{'total':<15} {total:>12,} {sum(o.crashes for o in outcomes):>8}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description="Fuzz every parser (coverage-guided, atheris).")
    parser.add_argument("--runs", type=int, default=int(os.environ.get("FUZZ_RUNS", "1000000")))
    parser.add_argument(
        "--seconds", type=float, default=float(os.environ.get("FUZZ_SECONDS", "0")),
        help="stop each parser after this many seconds as well (0: no limit)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=int(os.environ.get("FUZZ_SEED", "1")))
    parser.add_argument("--only", default=os.environ.get("FUZZ_ONLY", ""))
    parser.add_argument("--work", type=Path, default=Path(os.environ.get("FUZZ_WORK", ".fuzz")))
    parser.add_argument("--timeout", type=int, default=20, help="seconds one input may take")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or list(NAMES)
    unknown = set(names) - set(NAMES)
    if unknown:
        parser.error(f"unknown parsers {sorted(unknown)}; choose among {', '.join(NAMES)}")
    seeds = args.work / "seeds"
    write_seeds(seeds)
    outcomes = []
    for name in names:
        outcome = run_one(
            name, runs=args.runs, seconds=args.seconds, seed=args.seed,
            work=args.work, seeds=seeds, timeout=args.timeout,
        )  # fmt: skip
        outcomes.append(outcome)
        print(f"{name}: {outcome.iterations:,} iterations, {outcome.crashes} crashes", flush=True)
    print()
    print(table(outcomes))
    for o in outcomes:
        for signature in o.signatures:
            print(f"CRASH {o.name}: {signature}")
    if any(o.crashes for o in outcomes):
        print(f"Crashing inputs and tracebacks: {args.work / 'crashes'}/<parser>/")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
