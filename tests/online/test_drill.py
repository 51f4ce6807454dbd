"""`ceremony-online drill`: every fault scenario runs and passes, and the report says so.

The default scenario (`full`) is run by `runbooks/drill.md`, which
`tests/test_runbooks.py` executes; here the fault scenarios run in one drill (one server),
and the report is checked: both files, every step with its command, output, timing and
verdict, no secret, nothing external in the HTML page. A drill whose client is broken
must fail and say where.
"""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

from online.drill import SCENARIOS
from online.drill_report import DrillRecord, ScenarioRecord, StepRecord, html_page, markdown

BIN = Path(sys.executable).parent
FAULTS = [name for name in SCENARIOS if name != "full"]


def drill(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "ceremony-online"), "drill", *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=900,
        env=env,
    )


def test_every_fault_scenario_passes_and_is_reported(tmp_path: Path) -> None:
    report = tmp_path / "report"
    args = [a for name in FAULTS for a in ("--scenario", name)]
    proc = drill(*args, "--jobs", "3", "--report", str(report))
    md = (report / "drill.md").read_text()
    assert proc.returncode == 0, proc.stderr + md[:20000]
    assert "Traceback" not in proc.stderr
    page = (report / "drill.html").read_text()
    assert md.startswith("# Ceremony drill: PASS")
    for name in FAULTS:
        assert f"## Scenario `{name}`: PASS" in md
        assert f"Scenario <code>{name}</code>: " in page
    assert "FAIL" not in md and 'class="FAIL"' not in page
    # each step: command, output with its exit code, timing, verdict
    steps = re.findall(r"^### (\S+) (\d+)\. (.*): (PASS|FAIL)$", md, re.M)
    assert len(steps) > 60
    assert md.count("- time: ") == len(steps) and md.count("(exit ") >= len(steps) - 20
    # what the faults must show
    assert "--accept timestamp" in md  # expired
    assert "1 more" in md  # missing keyholder
    assert "PIN for token" in md and "does not open the root key" in md  # wrong secrets
    assert "scan more frames" in md or "frames shown" in md  # qr-loss camera passes
    # one self-contained printable page: no script, no external resource
    assert page.startswith("<!DOCTYPE html>") and "@media print" in page
    assert not re.search(r"<script|<link|src=|https?://(?!127\.0\.0\.1)", page)
    # the homes and keys were temporary
    assert not (report / "work").exists()


def test_unknown_scenario_is_a_usage_error(tmp_path: Path) -> None:
    proc = drill("--scenario", "nope", "--report", str(tmp_path / "r"))
    assert proc.returncode == 2
    assert "no scenario 'nope'" in proc.stderr and "missing-keyholder" in proc.stderr


def test_a_broken_notary_client_fails_the_drill_and_the_report_says_where(
    tmp_path: Path,
) -> None:
    fake = tmp_path / "bin" / "notary"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'No targets present in this repository.'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    env = dict(os.environ, PATH=f"{fake.parent}:{os.environ['PATH']}")
    report = tmp_path / "report"
    proc = drill("--scenario", "wrong-passphrase", "--report", str(report), env=env)
    assert proc.returncode == 1, proc.stderr
    assert "The drill failed" in proc.stderr
    md = (report / "drill.md").read_text()
    assert md.startswith("# Ceremony drill: FAIL")
    assert "the notary client does not list app-1.0" in md
    assert 'class="FAIL"' in (report / "drill.html").read_text()


def test_report_escapes_output_and_fences() -> None:
    step = StepRecord(1, "alice", "a <b> step", "echo '```'", "exit 0", "<script>```", 0.5, True)
    bad = StepRecord(2, "bob", "fails", "false", "exit 0", "", 0.1, False, "exit 1, expected 0")
    record = DrillRecord(
        "2026-01-01T00:00:00+00:00",
        "https://127.0.0.1:1",
        "tools",
        (ScenarioRecord("x", "summary", ("e",), (step, bad), 0.6),),
        0.6,
    )
    assert record.checks == (1, 2) and not record.passed
    page = html_page(record)
    assert "<script>" not in page and "&lt;script&gt;" in page
    text = markdown(record)
    assert "````text\n<script>```\n````" in text
    assert "**problem:** exit 1, expected 0" in text


def test_an_interrupted_drill_stops_its_server_and_exits_4(tmp_path: Path) -> None:
    from tests.online.test_local_server import processes_mentioning

    report = tmp_path / "report"
    proc = subprocess.Popen(
        [str(BIN / "ceremony-online"), "drill", "--keep", "--report", str(report)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    assert "notary-server at" in proc.stderr.readline()
    deadline = time.monotonic() + 60
    while not list((report / "work" / "full").glob("alice/private/*.key")):
        assert time.monotonic() < deadline, "the drill never made alice's first key"
        time.sleep(0.1)
    assert processes_mentioning(str(report / "work" / "server"))
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 4, err
    assert "The drill was interrupted" in err and "Traceback" not in err
    assert processes_mentioning(str(report)) == []
    assert not (report / "drill.md").exists()
