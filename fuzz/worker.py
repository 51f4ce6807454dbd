"""Run one harness under atheris until a number of iterations or seconds is reached.

    python -m fuzz.worker NAME --runs N [--seconds S] --seed S --work DIR --seeds DIR

The ceremony and online packages are imported under atheris' instrumentation, so
libFuzzer is guided by their coverage. The summary (`DIR/NAME.json`) is rewritten
as the run goes; the runner reads it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from pathlib import Path

import atheris

from fuzz.driver import Tally, Target


def load(name: str) -> Target:
    with atheris.instrument_imports(include=["ceremony", "online", "tomllib"]):
        module = importlib.import_module(f"fuzz.harness_{name}")
    target: Target = module.TARGET
    return target


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    parser.add_argument("--runs", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--seeds", type=Path, required=True)
    parser.add_argument("--timeout", type=int, default=20)
    parser.add_argument("--rss-limit-mb", type=int, default=2048)
    args = parser.parse_args()

    target = load(args.name)
    corpus = args.work / "corpus" / args.name
    crashes = args.work / "crashes" / args.name
    corpus.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    tally = Tally(args.name, args.runs, crashes, args.work / f"{args.name}.json")
    tally.write()
    deadline = time.monotonic() + args.seconds if args.seconds else None

    def one(data: bytes) -> None:
        tally.iterations += 1
        try:
            target.check(data)
        except Exception as exc:  # noqa: BLE001 - any exception but a CeremonyError is a crash
            tally.record(exc, data)
        count = tally.iterations
        if count >= args.runs or (
            deadline is not None and count % 64 == 0 and time.monotonic() > deadline
        ):
            tally.write(finished=True)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)  # libFuzzer would go on; the count is ours
        if count % 2000 == 0:
            tally.write()

    libfuzzer = [
        sys.argv[0],
        f"-seed={args.seed}",
        f"-max_len={target.max_len}",
        f"-timeout={args.timeout}",
        f"-rss_limit_mb={args.rss_limit_mb}",
        f"-artifact_prefix={crashes}/",
        "-use_value_profile=1",
        "-reload=0",
        str(corpus),
        str(args.seeds / args.name),
    ]
    if target.mutator is not None:
        atheris.Setup(libfuzzer, one, custom_mutator=target.mutator)
    else:
        atheris.Setup(libfuzzer, one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
