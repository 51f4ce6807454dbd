"""`ceremony-online local-server` and `ceremony-online drill`: rehearsals on one machine.

`local-server` runs a throwaway notary-server (memory store, TLS, loopback) in the
foreground until Ctrl-C or SIGTERM, which are its normal stop (exit 0). `drill` runs a
whole ceremony, or a fault scenario, against the same kind of server with the real
`ceremony` and `ceremony-online` commands as subprocesses (`online.drill`).
"""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from ceremony.core.errors import Aborted, EnvironmentFailure, UsageError, VerificationFailed
from ceremony.edge.clikit import output_console
from online.drill import SCENARIOS, DrillOptions, run_drill
from online.localserver import start_memory_server, stop_processes, write_env_file

err = output_console(stderr=True)
_POLL = 0.2  # seconds between checks that the server is still running


def local_server(
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            metavar="DIR",
            help="Folder for the certificate, config, log and env file "
            "(default: a temporary folder, removed at the stop).",
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port", metavar="N", help="Port on 127.0.0.1 (default: a free one).", min=1, max=65535
        ),
    ] = None,
    production: Annotated[
        bool,
        typer.Option(
            "--production",
            help="The production shape instead: PostgreSQL, notary-signer over mutual TLS and "
            "notary-server (keeps its data in DIR across restarts).",
        ),
    ] = False,
) -> None:
    """Run a throwaway notary-server on 127.0.0.1 (memory store, TLS) until Ctrl-C.

    Prints CEREMONY_SERVER and CEREMONY_TLS_CA lines for `eval` and writes them to DIR/env.
    Everything it stores is lost at the stop: for rehearsals and tests only. With
    --production it runs what Docker DTR and Harbor deploy, keeping its data in DIR.

    Example: ceremony-online local-server --dir /tmp/srv, then in another shell
    eval "$(cat /tmp/srv/env)".
    """
    if production:
        _serve_production(directory, port)
        return
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    temporary = directory is None
    folder = (
        Path(tempfile.mkdtemp(prefix="ceremony-local-server-")) if directory is None else directory
    )
    try:
        server = start_memory_server(folder, port)
        try:
            env_file = write_env_file(server)
            sys.stdout.write(server.env_lines())
            sys.stdout.flush()
            err.print(
                f"notary-server (memory store: everything is lost at the stop) answers at "
                f"{server.url}; the lines above are in {env_file}. Stop it with Ctrl-C.",
                markup=False,
            )
            while not stop.is_set():
                code = next((p.returncode for p in server.processes if p.poll() is not None), None)
                if code is not None:
                    raise EnvironmentFailure(
                        f"notary-server stopped by itself (status {code}); its log is "
                        f"{folder / 'server.log'}."
                    )
                stop.wait(_POLL)
        finally:
            stop_processes(server.processes)
        err.print("notary-server stopped; its data is gone.", markup=False)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)


def _print_line(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _serve_production(directory: Path | None, port: int | None) -> None:
    from online.production import serve_production

    if port is not None:
        raise UsageError("--port applies to the memory server; --production chooses its ports.")
    temporary = directory is None
    folder = (
        Path(tempfile.mkdtemp(prefix="ceremony-production-")) if directory is None else directory
    )
    if temporary:
        folder.chmod(0o755)  # PostgreSQL runs as its own user and must reach its folder
    try:
        serve_production(folder, say=_print_line)
        err.print(
            "The production-shaped Notary stopped; every process it started ended.", markup=False
        )
    finally:
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)


def _interrupted(_signum: int, _frame: FrameType | None) -> None:
    raise Aborted(
        "The drill was interrupted; its server was stopped, its homes removed, and no report "
        "was written."
    )


def drill(
    scenario: Annotated[
        list[str] | None,
        typer.Option(
            "--scenario",
            metavar="NAME",
            help="Which rehearsal (repeatable): " + ", ".join(SCENARIOS) + ", or all. "
            "Default: full.",
        ),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            metavar="DIR",
            help="Folder for drill.md and drill.html (default: ./ceremony-drill).",
        ),
    ] = None,
    keep: Annotated[
        bool,
        typer.Option("--keep", help="Keep the homes and files of the rehearsal (in REPORT/work)."),
    ] = False,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs", metavar="N", help="Scenarios rehearsed at the same time.", min=1, max=16
        ),
    ] = 1,
) -> None:
    """Rehearse a whole ceremony on this machine, with nothing to set up, and report it.

    A throwaway notary-server, separate homes for the online machine and each keyholder,
    and the real `ceremony` and `ceremony-online` commands as subprocesses. Fault scenarios
    check what the tools say and keep. Exits 1 if any check fails.

    Example: ceremony-online drill --scenario all --report drill-report
    """
    asked = scenario or ["full"]
    names = list(SCENARIOS) if "all" in asked else list(dict.fromkeys(asked))
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise UsageError(
            f"There is no scenario {unknown[0]!r}: choose one of {', '.join(SCENARIOS)}, or all."
        )
    folder = report if report is not None else Path("ceremony-drill")
    # Ctrl-C and SIGTERM stop the drill in order: the server is stopped, the homes removed.
    previous = {s: signal.signal(s, _interrupted) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = run_drill(
            DrillOptions(scenarios=tuple(names), report=folder, keep=keep, jobs=jobs),
            say=lambda text: err.print(text, markup=False),
        )
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    err.print(
        f"Report: {result.markdown} and {result.html} ({result.passed} of {result.total} "
        "checks passed).",
        markup=False,
    )
    if result.passed != result.total:
        raise VerificationFailed(
            f"The drill failed {result.total - result.passed} of {result.total} checks; "
            f"see {result.markdown}."
        )
