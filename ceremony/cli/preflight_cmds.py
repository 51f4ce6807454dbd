"""`ceremony preflight`: check that this machine is air-gapped and fit to hold keys."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from ceremony.cli import home_of
from ceremony.core.errors import InputRejected
from ceremony.core.gotime import utc_now
from ceremony.core.words import digest_words
from ceremony.edge.clikit import output_console
from ceremony.offline import transcript
from ceremony.offline.preflight import ROOT_ENV, run_preflight

out = output_console()
err = output_console(stderr=True)


def preflight(
    ctx: typer.Context,
    allow_network: Annotated[
        bool,
        typer.Option(
            "--allow-network",
            help="Report network, wireless and bluetooth findings without failing (drills only).",
        ),
    ] = False,
) -> None:
    """Check the network, radios, clock, transcript, permissions and installed software.

    Exits 1 when the machine is not air-gapped (unless --allow-network) or another check fails.
    What was found, with every installed distribution's version and hash, goes into the
    transcript.
    """
    now = utc_now()
    home = home_of(ctx)
    root = Path(os.environ.get(ROOT_ENV) or "/")
    report = run_preflight(home, root, now)
    transcript.note(details={"preflight": report.to_dict(allow_network=allow_network)})
    say = out.print
    say(f"Air-gap preflight of {home}" + (f" (system root {root})" if str(root) != "/" else ""))
    for check in report.checks:
        mark = "ok  " if check.ok else ("WARN" if allow_network and check.network else "FAIL")
        say(f"  {mark}  {check.name}: {check.detail}", markup=False)
    say("Software (recorded in the transcript):", markup=False)
    for item in report.software:
        hashes = f"RECORD sha256 {item.record_sha256}"
        if item.wheel_sha256:
            hashes += f", wheel sha256 {item.wheel_sha256}"
        say(f"  {item.name} {item.version}  {hashes}", markup=False)
    if report.bundle_sha256 is not None:
        say(
            f"Installed from the offline bundle whose requirements.txt has SHA-256 "
            f"{report.bundle_sha256}\n  words: "
            f"{digest_words(bytes.fromhex(report.bundle_sha256), 8)}",
            markup=False,
        )
    if allow_network and not report.air_gapped:
        err.print(
            "warning: this machine is NOT air-gapped; --allow-network lets it pass for a drill.",
            markup=False,
        )
    failed = report.failures(allow_network=allow_network)
    if failed:
        names = ", ".join(c.name for c in failed)
        hint = (
            "; fix them, or for a drill only, re-run with --allow-network"
            if any(c.network for c in failed)
            else "; fix them before the ceremony"
        )
        raise InputRejected(f"This machine is not ready to hold keys: {names} failed{hint}.")
    say("Preflight passed.", markup=False)
