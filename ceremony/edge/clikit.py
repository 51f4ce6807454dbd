"""The one place where errors become a sentence and an exit code.

Both CLIs (`ceremony`, `ceremony-online`) run through `run_app`. Operator-facing
errors print their own sentence; click's usage errors exit 2; Ctrl-C exits 4;
anything unexpected prints one line naming the exception type (never its text,
which might hold a secret) and exits 1. Set `CEREMONY_DEBUG=1` to see tracebacks.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from ceremony.core.errors import CeremonyError

if TYPE_CHECKING:
    from rich.console import Console

    err_console: Console  # made on first use (module __getattr__): rich costs `--help` time

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2
EXIT_ENVIRONMENT = 3
EXIT_ABORTED = 4

WIDE = 4096


def _err() -> Console:
    """The error console, made on first use: rich costs `--help` a third of its time."""
    console: Console | None = globals().get("err_console")
    if console is None:
        from rich.console import Console

        console = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
        globals()["err_console"] = console
    return console


def __getattr__(name: str) -> Any:
    if name == "err_console":
        return _err()
    raise AttributeError(name)


def output_console(*, stderr: bool = False) -> Console:
    """A console that never cuts ids or digests: off a terminal (pipe, file, log) it is very wide."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else WIDE
    # No markup, highlighting or :emoji: codes: names from metadata are shown as they are.
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=width, emoji=False)


def write_lines(lines: Iterable[str]) -> None:
    """Write many lines straight to stdout (no rich rendering: 10⁶ rows take seconds in rich).

    Callers pass text already made safe to show (`printable`). A reader that stops early
    (`| head`) ends the output quietly.
    """
    stream = sys.stdout
    try:
        batch: list[str] = []
        for line in lines:
            batch.append(line)
            if len(batch) >= 4096:
                stream.write("\n".join(batch) + "\n")
                batch.clear()
        if batch:
            stream.write("\n".join(batch) + "\n")
        stream.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())  # so the interpreter's final flush stays quiet
        sys.exit(EXIT_OK)


def new_app(help_text: str) -> typer.Typer:
    """A typer app that never shows locals in tracebacks (keys and passphrases live there)."""
    return typer.Typer(
        help=help_text,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        pretty_exceptions_show_locals=False,
        add_completion=False,
        rich_markup_mode=None,
    )


@dataclass(frozen=True, slots=True)
class Overview:
    """What `--help` (or no arguments) shows, drawn without importing a single command.

    Importing every command module (cryptography, Pillow, httpx, ...) took most of a
    second; the overview needs only each command's name and summary. A test holds the
    overview's text equal to the full app's, so the two cannot drift apart.
    """

    commands: tuple[tuple[str, str], ...]  # (name, help text), in `--help` order
    value_options: frozenset[str]  # the app's global options that take a value

    def wanted(self, argv: Sequence[str]) -> bool:
        """Whether `argv` asks for the overview: no command name, and --help or nothing."""
        skip = False
        for arg in argv:
            if skip:
                skip = False
            elif arg in self.value_options:
                skip = True
            elif not arg.startswith("-"):
                return False  # a command: the full app
        return not argv or "--help" in argv

    def draw(self, app: typer.Typer) -> None:
        """Register a stand-in for each command on `app` (which has its callback already)."""
        for name, help_text in self.commands:
            app.command(name, help=help_text)(_stand_in)


def _stand_in() -> None:
    """Never run: `Overview.wanted` sends every command line that names a command elsewhere."""


def fail(error: CeremonyError) -> NoReturn:
    _err().print(f"error: {error.diagnostics()}", markup=False)
    sys.exit(error.exit_code)


def run_app(app: typer.Typer, argv: list[str] | None = None) -> NoReturn:
    """Run a typer app, translating every failure once."""
    debug = os.environ.get("CEREMONY_DEBUG") == "1"
    try:
        # typer/click handle their own usage errors (exit 2) in standalone mode.
        app(args=argv, standalone_mode=True)
    except SystemExit:
        raise
    except CeremonyError as exc:
        if debug:
            raise
        fail(exc)
    except KeyboardInterrupt:
        _err().print("error: interrupted; nothing was written.")
        sys.exit(EXIT_ABORTED)
    except OSError as exc:
        if debug:
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        _err().print(
            f"error: the system refused a file or device operation{where}: {exc.strerror}.",
            markup=False,
        )
        sys.exit(EXIT_ENVIRONMENT)
    except Exception as exc:
        if debug:
            raise
        _err().print(
            f"error: internal error ({type(exc).__name__}); nothing was changed. "
            "Re-run with CEREMONY_DEBUG=1 and report the output.",
            markup=False,
        )
        sys.exit(EXIT_REJECTED)
    sys.exit(EXIT_OK)
