"""A short, bounded fuzz of every parser with a fixed seed (about a minute in all).

Each parser's harness (`fuzz/harness_<name>.py`) runs under atheris in its own
process for a fixed number of iterations from the seeds `fuzz.seeds` builds; the
test fails on any crash: an exception other than a one-sentence `CeremonyError`,
a broken round-trip property, a hang or a memory blow-up. `make fuzz` is the long
run of the same harnesses.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fuzz import NAMES
from fuzz.seeds import write

ROOT = Path(__file__).resolve().parent.parent

# Iterations per parser: about five seconds each on one core (the slow ones decrypt
# key files or decode whole QR scans per input).
RUNS = {
    "canonical": 6000,
    "metadata": 8000,
    "request": 2000,
    "signatures": 6000,
    "public_keys": 5000,
    "keyfile": 600,
    "qr_frame": 6000,
    "fountain": 400,
    "changelist": 6000,
    "policy": 6000,
    "online_config": 3000,
    "liveness": 4000,
    "batch": 1000,
    "trust_state": 3000,
}


def test_every_parser_has_a_short_run() -> None:
    assert set(RUNS) == set(NAMES)


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz-seeds")
    counts = write(folder)
    assert all(counts[name] > 0 for name in NAMES), counts
    return folder


@pytest.mark.parametrize("name", NAMES)
def test_short_fuzz(name: str, seeds: Path, tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "fuzz.worker", name, "--runs", str(RUNS[name]), "--seed", "1",
        "--work", str(tmp_path), "--seeds", str(seeds), "--timeout", "60",
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    summary_path = tmp_path / f"{name}.json"
    assert summary_path.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads(summary_path.read_text())
    tracebacks = "\n\n".join(
        Path(path).with_suffix(".txt").read_text() for path in summary["signatures"].values()
    )
    assert done.returncode == 0 and summary["finished"], done.stderr[-3000:]
    assert summary["crashes"] == 0, tracebacks
    assert summary["iterations"] == RUNS[name]


def test_the_contract_flags_what_is_not_a_clean_refusal(tmp_path: Path) -> None:
    """The driver's contract can fail: a foreign exception escapes, a bad sentence is caught."""
    from ceremony.core.errors import MalformedInput
    from fuzz.driver import REFUSED, PropertyFailed, Tally, refused

    assert refused(lambda: (_ for _ in ()).throw(MalformedInput("Bad input."))) is REFUSED
    with pytest.raises(KeyError):
        refused(lambda: {}["missing"])
    for message in ("It holds fuzz-passphrase.", "no full stop", "   "):
        with pytest.raises(PropertyFailed):
            refused(lambda m=message: (_ for _ in ()).throw(MalformedInput(m)))

    class NoExitCode(MalformedInput):
        exit_code = 0

    with pytest.raises(PropertyFailed):
        refused(lambda: (_ for _ in ()).throw(NoExitCode("A refusal that exits 0.")))
    tally = Tally("demo", 10, tmp_path / "crashes", tmp_path / "demo.json")
    try:
        {}["missing"]
    except KeyError as exc:
        tally.record(exc, b"input")
        tally.record(exc, b"input again")
    tally.write(finished=True)
    summary = json.loads((tmp_path / "demo.json").read_text())
    assert summary["crashes"] == 1 and summary["crashing_inputs"] == 2
    assert (tmp_path / "crashes").iterdir()
