"""A rich progress bar for QR scans, driven by the `ProgressCallback` of `ceremony.qr.scan`.

Presentation only: the CLI opens `progress_bar()` around `scan_paths` or `scan_webcam`
and passes the yielded callback. `describe_progress` gives the same facts as one line for
logs and non-terminal output.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, TextColumn
from rich.progress import Progress as RichProgress

from ceremony.qr.frames import Progress
from ceremony.qr.scan import ProgressCallback


def describe_progress(progress: Progress) -> str:
    """One line: blocks recovered out of K, and how many frames were read or unusable."""
    blocks = f"{progress.rank}/{progress.k} blocks" if progress.k else "waiting for a frame"
    unusable = progress.corrupt + progress.rejected
    text = f"{blocks}, {progress.frames} QR frames read"
    if unusable:
        text += f", {unusable} damaged"
    if progress.foreign:
        text += f", {progress.foreign} not for this transfer"
    return text


@contextmanager
def progress_bar(
    console: Console | None = None, *, description: str = "Reading QR frames"
) -> Iterator[ProgressCallback]:
    """Show a bar of rank/K on stderr (by default) while the block runs; yields the callback."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[summary]}"),
    )
    with RichProgress(*columns, console=console or Console(stderr=True, emoji=False)) as bar:
        task = bar.add_task(description, total=None, summary="waiting for a frame")

        def update(progress: Progress) -> None:
            bar.update(
                task,
                completed=progress.rank,
                total=progress.k or None,
                summary=describe_progress(progress),
            )

        yield update
