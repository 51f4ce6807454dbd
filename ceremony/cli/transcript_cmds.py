"""`ceremony transcript show | verify | export`: the record of every command run here."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ceremony.cli import home_of
from ceremony.core.errors import printable
from ceremony.edge.clikit import new_app, output_console
from ceremony.edge.fsutil import atomic_write
from ceremony.offline import transcript
from ceremony.offline.transcript import Chain, Entry

transcript_app = new_app(
    "The ceremony transcript: one hash-chained line per command run on this machine."
)
out = output_console()


def _line(entry: Entry) -> str:
    parts = [f"{entry.seq:>5}  {entry.time}  exit {entry.exit}  ceremony {' '.join(entry.argv)}"]
    if entry.request_id is not None:
        parts.append(f"request {entry.request_id} digest {entry.digest}")
    if entry.keys:
        parts.append(f"keys {', '.join(entry.keys)}")
    if entry.error:
        parts.append(f"error: {entry.error}")
    return "\n         ".join(printable(part) for part in parts)


def _head(chain: Chain) -> str:
    if chain.head is None:
        return "The transcript is empty."
    return f"head (line {len(chain.entries)}): {transcript.head_words(chain.head)}"


@transcript_app.command("show")
def show(ctx: typer.Context) -> None:
    """Print every line, after checking the whole chain."""
    chain = transcript.load_chain(home_of(ctx))
    for entry in chain.entries:
        out.print(_line(entry), markup=False)
    out.print(_head(chain), markup=False)


@transcript_app.command("verify")
def verify(
    ctx: typer.Context,
    expect_head: Annotated[
        str | None,
        typer.Option(
            "--expect-head",
            help="The head words written on the paper record (quoted): the transcript must "
            "hold that line, which catches lines cut off its end.",
        ),
    ] = None,
) -> None:
    """Check every line against its hash and its predecessor; exit 1 naming a broken line."""
    chain = transcript.load_chain(home_of(ctx))
    out.print(f"The transcript's {len(chain.entries)} line(s) form an intact chain.", markup=False)
    if expect_head is not None:
        position = transcript.check_expected_head(chain, expect_head)
        later = len(chain.entries) - position
        out.print(
            f"The head on the paper record is line {position}"
            + (f"; {later} line(s) were written after it." if later else ", the newest line."),
            markup=False,
        )
    out.print(_head(chain), markup=False)


@transcript_app.command("export")
def export(
    ctx: typer.Context,
    out_file: Annotated[Path, typer.Option("--out", help="Write a copy of the transcript here.")],
) -> None:
    """Copy the transcript (checked first) to FILE, e.g. for the ceremony's archive."""
    home = home_of(ctx)
    data = transcript.read_transcript(home)
    chain = transcript.verify_chain(data)
    atomic_write(out_file, data, mode=0o644)  # it holds no secret
    out.print(f"Exported {len(chain.entries)} line(s) to {out_file}.", markup=False)
    out.print(_head(chain), markup=False)
