"""The one place where errors become a sentence and an exit code.

Both CLIs (`ceremony`, `ceremony-online`) run through `run_app`. Operator-facing
errors print their own sentence; click's usage errors exit 2; Ctrl-C exits 4;
anything unexpected prints one line naming the exception type (never its text,
which might hold a secret) and exits 1. Set `CEREMONY_DEBUG=1` to see tracebacks.
"""

from __future__ import annotations

import gc
import inspect
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, Protocol, cast

import typer
import typer.main
from typer.core import TyperArgument

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


JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON (for scripts) instead of text.")
]
"""The `--json` flag every list or report command takes."""


def print_json(value: object) -> None:
    """Write `value` as indented JSON on stdout (ids and digests in full, keys sorted)."""
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def new_app(help_text: str) -> typer.Typer:
    """A typer app that never shows locals in tracebacks (keys and passphrases live there)."""
    return typer.Typer(
        help=help_text,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        pretty_exceptions_show_locals=False,
        add_completion=True,
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
        return self.command(argv) is None and (not argv or "--help" in argv)

    def command(self, argv: Sequence[str]) -> str | None:
        """The command `argv` names (its first word that is neither an option nor a global
        option's value), or None."""
        skip = False
        for arg in argv:
            if skip:
                skip = False
            elif arg in self.value_options:
                skip = True
            elif not arg.startswith("-"):
                return arg
        return None

    def draw(self, app: typer.Typer) -> None:
        """Register a stand-in for each command on `app` (which has its callback already)."""
        for name, help_text in self.commands:
            app.command(name, help=help_text)(_stand_in)


def _stand_in() -> None:
    """Never run: `Overview.wanted` sends every command line that names a command elsewhere."""


def fail(error: CeremonyError) -> NoReturn:
    _err().print(f"error: {error.diagnostics()}", markup=False)
    sys.exit(error.exit_code)


def tidy_help(command: Any) -> None:
    """Help for people, not for Python: every parameter gets a plain metavar (FILE, PATH, N,
    TEXT, or the argument's name) instead of a type such as `<list[Path]>`, and every
    command's one-line summary is its whole first sentence, never cut with "...".
    """
    for param in getattr(command, "params", ()):
        if isinstance(param, TyperArgument):
            if param.metavar is None:
                many = param.nargs != 1
                param.metavar = str(param.name).upper() + ("..." if many else "")
            param.__class__ = _PlainArgument
        elif getattr(param, "metavar", None) is None and not getattr(param, "is_flag", False):
            param.metavar = _metavar_for(param)
    help_text = getattr(command, "help", None)
    if help_text and getattr(command, "short_help", None) is None:
        first = inspect.cleandoc(help_text).split("\n\n", 1)[0].replace("\n", " ")
        command.short_help = first
    for sub in getattr(command, "commands", {}).values():
        tidy_help(sub)


class _PlainArgument(TyperArgument):
    """An argument shown as `GUN` or `[FILE]` in usage lines, without a Python type."""

    def display_type_rich(self, ctx: Any) -> str | None:  # noqa: ARG002 - click passes ctx=
        return None

    def _usage_display_name(self) -> str:
        name = self.display_name_raw
        return name if self.required else f"[{name}]"


def _metavar_for(param: Any) -> str:
    descriptor = getattr(param, "type_descriptor", None)
    choices = getattr(descriptor, "choices", None) if descriptor is not None else None
    if choices:
        return "[" + "|".join(str(getattr(c, "value", c)) for c in choices) + "]"
    annotation = str(getattr(descriptor, "annotation", ""))
    if "Path" in annotation:
        return "PATH"
    if "int" in annotation:
        return "N"
    return "TEXT"


def version_callback(value: bool) -> None:
    """`--version`: the package version, then exit."""
    if value:
        import importlib.metadata  # here only: a fortieth of a second of every start-up

        try:
            version = importlib.metadata.version("notary-ceremony")
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        typer.echo(f"notary-ceremony {version}")
        raise typer.Exit()


VersionOption = Annotated[
    bool,
    typer.Option(
        "--version", help="Print the version and exit.", callback=version_callback, is_eager=True
    ),
]


INTERRUPTED = "error: interrupted; nothing was written."
_TYPER_INTERRUPT_CODE = 130
"""typer turns a KeyboardInterrupt into this exit code; no command returns it itself."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one run of a CLI ended: its exit code, and the sentence it printed if it failed."""

    code: int
    error: str | None = None
    # Set only when click refused the command line (a usage error): the subcommands it had
    # recognised, so that a recorder can leave out the words the command never accepted.
    command_path: tuple[str, ...] | None = None


# The cyclic collector's thresholds for one command. A command reading 10⁵–10⁶ targets
# makes millions of small dicts and strings, none of them in a cycle (reference counting
# frees them); at Python's default (700, 10, 10) the collector walks them again and again,
# which took half the time of reading a 1,000,000-target request. It still runs, rarely.
GC_THRESHOLDS = (100_000, 50, 100)


def run_app(
    app: typer.Typer,
    argv: list[str] | None = None,
    *,
    prepare: Callable[[], None] | None = None,
    finish: Callable[[Outcome], int] | None = None,
) -> NoReturn:
    """Run a typer app, translating every failure once, and exit.

    `prepare` registers the commands (inside the run, so Ctrl-C there is an interruption
    like any other); `finish` sees how the command ended after its output is printed (the
    offline half records it in the ceremony transcript) and returns the exit status.
    """
    gc.set_threshold(*GC_THRESHOLDS)
    outcome = run_once(app, argv, prepare=prepare)
    sys.exit(finish(outcome) if finish is not None else outcome.code)


def _said(sentence: str, code: int) -> Outcome:
    _err().print(f"error: {sentence}", markup=False)
    return Outcome(code, sentence)


def run_once(
    app: typer.Typer, argv: list[str] | None = None, *, prepare: Callable[[], None] | None = None
) -> Outcome:
    """Run a typer app once: print its errors as one sentence each, and say how it ended.

    Ctrl-C (and Ctrl-D at a prompt) ends as an interruption (exit 4, "interrupted; nothing
    was written.") wherever it comes: in `prepare`, in a prompt (click turns those into
    `Abort`), or mid-command (typer turns those into exit 130). A command whose normal stop
    is Ctrl-C catches KeyboardInterrupt itself. Click runs outside its standalone mode so
    that its usage errors are reported too, shown exactly as standalone click shows them.
    """
    debug = os.environ.get("CEREMONY_DEBUG") == "1"
    try:
        if prepare is not None:
            prepare()
        command = typer.main.get_command(app)
        tidy_help(command)
        result = command.main(args=argv, standalone_mode=False)
    except SystemExit as exc:
        return Outcome(exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1))
    except typer.Abort:
        return _interrupted()
    except CeremonyError as exc:
        if debug:
            raise
        return _said(exc.diagnostics(), exc.exit_code)
    except KeyboardInterrupt:
        return _interrupted()
    except Exception as exc:
        usage = _click_error(exc)
        if usage is None:
            if debug:
                raise
            return _unexpected(exc)
        usage.show()  # exactly what standalone click shows
        path = _command_path(exc)
        if type(exc).__name__ == "NoArgsIsHelpError":  # a group without its subcommand
            return Outcome(usage.exit_code, "no subcommand was given; the help was shown.", path)
        return Outcome(usage.exit_code, usage.format_message(), path)
    if result == _TYPER_INTERRUPT_CODE:
        return _interrupted()
    # Outside standalone mode click returns the status of an `Exit` (e.g. after --help).
    return Outcome(result if isinstance(result, int) else EXIT_OK)


class _ClickError(Protocol):
    exit_code: int

    def show(self) -> None: ...

    def format_message(self) -> str: ...


def _click_error(exc: Exception) -> _ClickError | None:
    """Click's own errors (usage errors), from click or the copy typer vendors."""
    if any(c.__name__ == "ClickException" for c in type(exc).__mro__):
        return cast(_ClickError, exc)
    return None


def _command_path(exc: Exception) -> tuple[str, ...]:
    """The subcommands click had recognised when it refused the command line (root left out)."""
    names: list[str] = []
    ctx = getattr(exc, "ctx", None)
    while ctx is not None and getattr(ctx, "parent", None) is not None:
        names.append(str(ctx.info_name))
        ctx = ctx.parent
    return tuple(reversed(names))


def _unexpected(exc: Exception) -> Outcome:
    """Anything else: an OS refusal is named; any other exception by its type only."""
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return _said(
            f"the system refused a file or device operation{where}: {exc.strerror}.",
            EXIT_ENVIRONMENT,
        )
    return _said(
        f"internal error ({type(exc).__name__}); nothing was changed. "
        "Re-run with CEREMONY_DEBUG=1 and report the output.",
        EXIT_REJECTED,
    )


def _interrupted() -> Outcome:
    """The one answer to Ctrl-C: a new line (the prompt may be mid-line), the sentence, exit 4."""
    try:
        _err().print()
        _err().print(INTERRUPTED, markup=False)
    except (KeyboardInterrupt, OSError):  # a second Ctrl-C or a closed stderr: still exit 4
        pass
    return Outcome(EXIT_ABORTED, "interrupted; nothing was written.")
