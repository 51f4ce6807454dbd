"""Files at the edge: inputs read with a cap, atomic private writes, one lock per home.

A crash never leaves half a file, a secret is never world-readable, and a file an
operator names is read whole only up to a size no document of ours reaches.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

from ceremony.core.errors import CeremonyError, HomeDamaged, MalformedInput, UsageError

MAX_INPUT = 64 * 1024 * 1024  # larger than any signatures, key or public keys document of ours
MAX_BULK_INPUT = 1024 * 1024 * 1024  # a request or metadata file of a 10⁶-target repository


def atomic_write(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Write `data` to `path` atomically: a temp file (created with `mode`) fsynced and renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def sweep_temporaries(folder: Path, *, keep: tuple[str, ...] = ()) -> int:
    """Remove the temp files `atomic_write` leaves when a process is killed mid-write.

    Call it only while holding the lock under which every write into `folder` happens:
    then no temp file there belongs to a live writer. Temp files for the names in
    `keep` (written outside that lock) are left alone. Returns how many were removed.
    """
    removed = 0
    if not folder.is_dir():
        return 0
    for tmp in folder.rglob(".*.tmp"):
        with contextlib.suppress(OSError):
            target = tmp.name[1:].removesuffix(".tmp").rsplit(".", 1)[0]  # .NAME.XXXX.tmp
            if tmp.is_file() and not tmp.is_symlink() and target not in keep:
                tmp.unlink()
                removed += 1
    return removed


def private_dir(path: Path) -> Path:
    """Create (if needed) a directory readable only by its owner."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


_HELD: dict[str, int] = {}  # lock files this process holds, with how many holders


@contextlib.contextmanager
def locked(lock_file: Path, *, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on `lock_file` (created 0600): one writer at a time per home.

    If another process holds it, `on_wait` is called once (to say so) and the
    call blocks until the lock is free. Re-entrant within a process (an export
    that saves a request holds the lock once). Released on exit, and by the
    kernel if the process dies.
    """
    key = f"{threading.get_ident()}:{os.path.abspath(lock_file)}"  # re-entrant per thread
    if _HELD.get(key):
        _HELD[key] += 1
        try:
            yield
        finally:
            _HELD[key] -= 1
        return
    private_dir(lock_file.parent)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        _HELD[key] = 1
        try:
            yield
        finally:
            del _HELD[key]
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _not_a_file(info: os.stat_result) -> str | None:
    """What a path is when it is not a regular file ("a directory", "a FIFO", ...), else None."""
    mode = info.st_mode
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


# what `read_regular_file` found wrong; "on-a-file": a folder on the path is a file
Flaw = Literal["missing", "on-a-file", "directory", "other"]

_OPEN_FLAWS = {
    errno.ENOENT: "does not exist",
    errno.ENOTDIR: "does not exist (a folder on its path is a file)",
    errno.ELOOP: "is a symbolic link loop, not a file",
    errno.ENAMETOOLONG: "has a name too long for this system",
}

_OPEN_KINDS: dict[int, Flaw] = {errno.ENOENT: "missing", errno.ENOTDIR: "on-a-file"}


def read_regular_file(
    path: Path,
    what: str,
    *,
    cap: int,
    fault: Callable[[str, Flaw], CeremonyError],
) -> bytes:
    """`path` read whole if it is a regular file of at most `cap` bytes.

    The one place every reader checks what it is handed: a FIFO is never waited on
    (opened non-blocking and looked at before any read), a device is never read
    (`/dev/zero` would fill memory), a folder or a symbolic link loop is named as
    such. Any flaw becomes `fault(sentence, flaw)`: the caller decides whether it is
    a usage error, a rejected input or a damaged home.
    """

    def check(info: os.stat_result) -> None:
        kind = _not_a_file(info)
        if kind is not None:
            flaw: Flaw = "directory" if kind == "a directory" else "other"
            raise fault(f"The {what} {path} is {kind}, not a regular file", flaw)
        if info.st_size > cap:
            raise fault(
                f"The {what} {path} is larger than {cap} bytes, too large to be one", "other"
            )

    try:
        check(os.stat(path))  # before opening: a device is never even opened
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        said = _OPEN_FLAWS.get(exc.errno or 0)
        if said is None:
            raise
        found: Flaw = _OPEN_KINDS.get(exc.errno or 0, "other")
        raise fault(f"The {what} {path} {said}", found) from None
    try:
        info = os.fstat(fd)
        check(info)  # what was opened, should it have been swapped since the look
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as handle:
            # read(cap + 1) would reserve `cap` bytes up front (1 GiB for a request) for a file
            # of a few KB; read what is there, plus one byte to notice a file that grew meanwhile.
            data = handle.read(min(cap, info.st_size) + 1)
    finally:
        os.close(fd)
    if len(data) > info.st_size:
        raise fault(f"The {what} {path} grew while it was read; read it again when whole", "other")
    return data


def read_input(path: Path, what: str, *, cap: int = MAX_INPUT, listed: bool = False) -> bytes:
    """A file the operator names (a request, signatures, keys, a list), read whole up to `cap`.

    A missing file or a folder the operator named is a usage error (exit 2), as click
    says it of its own arguments; anything else that is not a regular file (a FIFO, a
    device, a symbolic link loop) or is longer than `cap` is a rejected input (exit 1),
    named in one sentence and never waited on. `listed`: the file was found in a folder
    the tool walks (a changelist, a trust dir), so every flaw is the input's (exit 1).
    """

    def fault(sentence: str, flaw: Flaw) -> CeremonyError:
        if flaw in ("missing", "on-a-file", "directory") and not listed:
            return UsageError(f"{sentence}.")
        return MalformedInput(f"{sentence}; refusing to read it.")

    return read_regular_file(path, what, cap=cap, fault=fault)


class _Absent(CeremonyError):
    """A home file that is simply not there (yet): not a flaw."""


def read_home_file_bytes(path: Path, what: str, *, cap: int = MAX_BULK_INPUT) -> bytes | None:
    """One of the tool's own home files, None if absent; anything but a regular file of at
    most `cap` bytes means the home is damaged (`HomeDamaged`, exit 3), never a hang."""

    def fault(sentence: str, flaw: Flaw) -> CeremonyError:
        if flaw == "missing" and not os.path.islink(path):
            return _Absent(sentence)
        return HomeDamaged(
            f"{sentence}: the home is damaged; restore it from a backup or move it aside."
        )

    try:
        return read_regular_file(path, what, cap=cap, fault=fault)
    except _Absent:
        return None
