"""The one check every reader makes of the path it is handed (`fsutil.read_regular_file`):
what each kind of not-a-file becomes for an operator's input, a file found in a walked
folder, and one of the tool's own home files. A FIFO must never be waited on: each call
runs under a bound thread join, so a blocking open would fail the test instead of hanging.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from ceremony.core.errors import CeremonyError, HomeDamaged, MalformedInput, UsageError
from ceremony.edge.fsutil import read_home_file_bytes, read_input
from tests.hostile.corpus import special

Reader = Callable[[Path], bytes | None]
READERS: dict[str, Reader] = {
    "named": lambda p: read_input(p, "request"),
    "listed": lambda p: read_input(p, "notary change file", listed=True),
    "home": lambda p: read_home_file_bytes(p, "online home file"),
}
# (kind of path, reader) -> (error class, words the sentence says)
EXPECTED: dict[tuple[str, str], tuple[type[CeremonyError], str]] = {
    ("fifo", "named"): (MalformedInput, "is a FIFO (named pipe), not a regular file"),
    ("fifo", "listed"): (MalformedInput, "is a FIFO (named pipe), not a regular file"),
    ("fifo", "home"): (HomeDamaged, "is a FIFO (named pipe), not a regular file"),
    ("device", "named"): (MalformedInput, "is a device, not a regular file"),
    ("symlink-to-device", "home"): (HomeDamaged, "is a device, not a regular file"),
    ("symlink-loop", "named"): (MalformedInput, "is a symbolic link loop"),
    ("symlink-loop", "home"): (HomeDamaged, "is a symbolic link loop"),
    ("directory", "named"): (UsageError, "is a directory, not a regular file"),
    ("directory", "listed"): (MalformedInput, "is a directory, not a regular file"),
    ("directory", "home"): (HomeDamaged, "is a directory, not a regular file"),
    ("dangling-symlink", "named"): (UsageError, "does not exist"),
    ("dangling-symlink", "home"): (HomeDamaged, "does not exist"),
}


def _bounded(call: Callable[[], object]) -> object:
    box: list[object] = []

    def run() -> None:
        try:
            box.append(call())
        except CeremonyError as exc:  # handed back to the test; anything else fails the thread
            box.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(10)
    assert box, "the reader blocked on the path"
    return box[0]


@pytest.mark.parametrize(("kind", "reader"), list(EXPECTED), ids=lambda v: str(v))
def test_each_kind_of_not_a_file_is_named_in_one_sentence(
    tmp_path: Path, kind: str, reader: str
) -> None:
    path = special(kind, tmp_path, "input.json")
    outcome = _bounded(lambda: READERS[reader](path))
    error, words = EXPECTED[(kind, reader)]
    assert type(outcome) is error, outcome
    assert isinstance(outcome, CeremonyError)
    assert str(path) in outcome.message and words in outcome.message, outcome.message


def test_a_home_file_that_is_absent_is_none_and_a_regular_file_is_read(tmp_path: Path) -> None:
    assert read_home_file_bytes(tmp_path / "staged.json", "online home file") is None
    (tmp_path / "staged.json").write_bytes(b"{}")
    assert read_home_file_bytes(tmp_path / "staged.json", "online home file") == b"{}"


def test_a_file_over_the_cap_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    with path.open("wb") as out:
        out.truncate(2 * 1024 * 1024)  # sparse: costs nothing to make
    with pytest.raises(MalformedInput, match="larger than 1048576 bytes"):
        read_input(path, "request", cap=1024 * 1024)


def test_a_fifo_with_a_writer_waiting_is_still_refused(tmp_path: Path) -> None:
    """Even with a writer on the other end, a FIFO is not a file to read."""
    path = tmp_path / "pipe"
    os.mkfifo(path)
    writer = os.open(path, os.O_RDWR | os.O_NONBLOCK)  # holds both ends: nobody blocks
    try:
        os.write(writer, b"{}")
        outcome = _bounded(lambda: read_input(path, "request"))
        assert isinstance(outcome, MalformedInput), outcome
    finally:
        os.close(writer)
