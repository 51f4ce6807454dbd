"""Every `ceremony` command ends with a line in the ceremony transcript.

`main` runs each command through `recording`: when the command has printed its output
and its error (if any), the line is appended under the transcript lock and the new head
is shown as words on stderr, for the witnesses' paper record. A line that cannot be
written does not hide the command's own result: that result was already printed, and the
failure to record it is reported after it (exit 3).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Sequence
from importlib import metadata
from pathlib import Path

from ceremony.core.errors import EnvironmentFailure
from ceremony.core.gotime import utc_now
from ceremony.edge.clikit import EXIT_ENVIRONMENT, Outcome, err_console
from ceremony.offline import transcript

DISTRIBUTION = "notary-ceremony"


def tool_version() -> str:
    try:
        return f"{DISTRIBUTION} {metadata.version(DISTRIBUTION)}"
    except metadata.PackageNotFoundError:
        return f"{DISTRIBUTION} (not installed)"


def records(args: Sequence[str]) -> bool:
    """False for what only prints help: no arguments, or `--help` anywhere before `--`."""
    if not args:
        return False
    options = args[: args.index("--")] if "--" in args else args
    return "--help" not in options


def home_from(args: Sequence[str], env_home: str | None, default: Path) -> Path:
    """The home the command uses: `--home` before the subcommand, CEREMONY_HOME, the default.

    The same order as the app's own `--home` option, read before the app runs so that
    usage errors are recorded in the right home too.
    """
    for i, arg in enumerate(args):
        if arg == "--home" and i + 1 < len(args):
            return Path(args[i + 1])
        if arg.startswith("--home="):
            return Path(arg.removeprefix("--home="))
        if not arg.startswith("-"):
            break  # the subcommand: global options come before it
    return Path(env_home) if env_home else default


def refused_argv(args: Sequence[str], command_path: Sequence[str]) -> tuple[list[str], list[str]]:
    """A command line click refused, as recorded: (the words kept, the words left out).

    Global options, the subcommands click recognised (or the first word, a mistyped command)
    and option names are kept; every other word after the command is left out, since the
    command never accepted it: share words typed as arguments must not reach the record.
    """
    kept: list[str] = []
    hidden: list[str] = []
    path = list(command_path)
    in_command = False
    for i, arg in enumerate(args):
        after_home = i > 0 and args[i - 1] == "--home" and not in_command
        if arg.startswith("-"):
            name, eq, value = arg.partition("=")
            if in_command and eq:
                kept.append(f"{name}={transcript.REDACTED}")
                hidden.append(value)
            else:
                kept.append(arg)
        elif after_home:
            kept.append(arg)
        elif path and arg == path[0]:
            kept.append(path.pop(0))
            in_command = True
        elif not in_command:
            kept.append(arg)  # not a command click knows: a mistyped command name
            in_command, path = True, []
        else:
            kept.append(transcript.REDACTED)
            hidden.append(arg)
    return kept, hidden


def scrub(sentence: str | None, hidden: Sequence[str]) -> str | None:
    """The sentence with every left-out word (3 characters or more) replaced.

    Whole words only: a share word such as "expect" is hidden where it stands, not inside
    "unexpected" in click's own sentence.
    """
    if sentence is None:
        return None
    for word in sorted({w for w in hidden if len(w) >= 3}, key=len, reverse=True):
        pattern = rf"(?<![\w]){re.escape(word)}(?![\w])"
        sentence = re.sub(pattern, transcript.REDACTED, sentence)
    return sentence


def _report_failure(error: EnvironmentFailure, outcome: Outcome) -> int:
    ended = (
        "this command itself succeeded (exit 0)"
        if outcome.code == 0
        else f"this command itself failed (exit {outcome.code}) as reported above"
    )
    err_console.print(
        f"error: {error.message.rstrip('.')}: {ended}, but it is NOT on the record; "
        "fix the home or free space, and write what happened on the paper record.",
        markup=False,
    )
    return EXIT_ENVIRONMENT


@contextlib.contextmanager
def recording(home: Path, args: Sequence[str]) -> Iterator[Callable[[Outcome], int]]:
    """A `finish` for `run_app` that appends the command's line and shows the new head."""
    with transcript.collecting() as notes:

        def finish(outcome: Outcome) -> int:
            if outcome.code != 0 and (home.exists() or home.is_symlink()) and not home.is_dir():
                # the command failed on this very home (a FIFO, a device, a file): its sentence
                # said so, and a second one that the home cannot hold the record adds nothing
                return outcome.code
            argv, error = list(args), outcome.error
            if outcome.command_path is not None:  # click refused the command line
                argv, hidden = refused_argv(args, outcome.command_path)
                error = scrub(error, hidden)
            try:
                appended = transcript.append(
                    home,
                    argv=argv,
                    exit_code=outcome.code,
                    error=error,
                    notes=notes,
                    tool=tool_version(),
                    now=utc_now(),
                )
            except EnvironmentFailure as exc:
                return _report_failure(exc, outcome)
            err_console.print(
                f"transcript: line {appended.seq}, head {appended.words}", markup=False
            )
            return outcome.code

        yield finish
