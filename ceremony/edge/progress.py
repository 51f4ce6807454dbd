"""Signs of life for long work, on stderr: a rich progress display at a terminal, plain lines
otherwise (a pipe, a log, a test), so stdout stays the command's result.

A command opens one `Steps` and names each step as it starts (`step`), with a count when
it has one (`advance`). At a terminal every step shows a spinner, its count as a bar and
its elapsed time, and stays listed when the next begins. Off a terminal each step is one
line when it starts, and counted steps get a line with the count and time when they end.
"""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)


class Steps:
    """The steps of one command, shown as they happen (see the module docstring)."""

    def __init__(
        self, console: Console | None = None, *, live: bool | None = None, plain: bool = True
    ) -> None:
        """`plain=False`: show progress only at a terminal (for a command whose stderr a script
        reads as "empty, or one error line")."""
        self.console = console or Console(stderr=True, highlight=False, emoji=False)
        self.live = self.console.is_terminal if live is None else live
        self.plain = plain
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._text = ""
        self._total: int | None = None
        self._count = 0
        self._started = 0.0

    def __enter__(self) -> Steps:
        if self.live:
            self._progress = Progress(
                SpinnerColumn(finished_text="✓"),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=False,
            )
            self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._finish(ok=kind is None)
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def step(self, text: str, total: int | None = None) -> None:
        """Start a step (ending the one before); `total` items if it counts them."""
        self._finish(ok=True)
        self._text, self._total, self._count, self._started = text, total, 0, time.monotonic()
        if self._progress is not None:
            self._task = self._progress.add_task(text, total=total)
        elif self.plain:
            self.console.print(text, markup=False, highlight=False)

    def advance(self, count: int = 1) -> None:
        """`count` more items of the current step are done."""
        self._count += count
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, advance=count)

    def progress(self, done: int, total: int) -> None:
        """`done` of `total` items are done (a callback shape for loops that count)."""
        if self._total != total:
            self._total = total
            if self._progress is not None and self._task is not None:
                self._progress.update(self._task, total=total)
        self.advance(done - self._count)

    def _finish(self, *, ok: bool) -> None:
        if not self._text:
            return
        if self._progress is not None and self._task is not None:
            task = self._progress.tasks[self._task]
            total = task.total if task.total is not None else max(task.completed, 1)
            self._progress.update(
                self._task, total=total, completed=total if ok else task.completed
            )
        elif self._total is not None and ok and self.plain:
            seconds = time.monotonic() - self._started
            self.console.print(
                f"  {self._count} of {self._total} done in {seconds:.1f} s", markup=False
            )
        self._text = ""
        self._task = None
