"""Files at the edge: inputs read with a cap, atomic private writes, one lock per home.

A crash never leaves half a file, a secret is never world-readable, and a file an
operator names is read whole only up to a size no document of ours reaches.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import os
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Literal

from ceremony.core.errors import CeremonyError, HomeDamaged, MalformedInput, UsageError

MAX_INPUT = 64 * 1024 * 1024  # larger than any signatures, key or public keys document of ours
MAX_BULK_INPUT = 1024 * 1024 * 1024  # a request or metadata file of a 10⁶-target repository

WRITE_HOOK_ENV = "CEREMONY_TEST_WRITE_HOOK"  # TEST ONLY: see `write_point`
_HOOK_LOCK = threading.Lock()
_HOOK: dict[str, int] = {}  # the hook's write count and its targets, read once per process


def write_point(stage: str, path: Path, *, can_fail: bool) -> None:
    """TEST ONLY: a numbered point just before or after a durable write, for crash tests.

    Inert (one environment lookup) unless `CEREMONY_TEST_WRITE_HOOK` names a folder. Then
    each point appends "N STAGE PATH" to FOLDER/points; at the point numbered in
    FOLDER/pause-at the process writes FOLDER/paused and sleeps until it is killed; at
    the point numbered in FOLDER/fail-at, if it comes before the write (`can_fail`), it
    raises ENOSPC as a full disk would. It can only pause or fail a write, like SIGSTOP or
    a full disk can: it never skips a write, nor a check, nor changes what is written.
    """
    folder = os.environ.get(WRITE_HOOK_ENV)
    if not folder:
        return
    hook = Path(folder)
    with _HOOK_LOCK:
        if not _HOOK:
            for name in ("pause-at", "fail-at"):
                try:
                    _HOOK[name] = int((hook / name).read_text().strip() or 0)
                except (OSError, ValueError):
                    _HOOK[name] = 0
        _HOOK["count"] = number = _HOOK.get("count", 0) + 1
        line = f"{number} {stage} {path}\n"
        with open(hook / "points", "a", encoding="utf-8") as points:
            points.write(line)
        if number == _HOOK["pause-at"]:
            (hook / "paused").write_text(line, encoding="utf-8")
            while True:  # until the harness kills the process
                time.sleep(60)
    if number == _HOOK["fail-at"] and can_fail:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def atomic_write(path: Path, data: bytes, *, mode: int = 0o600, sweep_stale: bool = False) -> None:
    """Write `data` to `path` atomically: a temp file (created with `mode`) fsynced and renamed.

    The temp file is flock-ed while it is written, so `sweep_temporaries` can tell one
    left by a killed writer from a live one. With `sweep_stale` (an output file in an
    operator's folder, which no home lock sweeps), a stale temp file of the same name (an
    earlier write killed midway) is removed once this write is in place.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _locked_temporary(path)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
            write_point("temp-written", path, can_fail=True)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    finally:
        os.close(fd)
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    write_point("renamed", path, can_fail=False)
    if sweep_stale:
        _remove_stale(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))


def _locked_temporary(path: Path) -> tuple[int, str]:
    """A new temp file next to `path`, open and flock-ed (held until it is closed)."""
    while True:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.stat(tmp).st_ino == os.fstat(fd).st_ino:
                return fd, tmp
        except FileNotFoundError:
            pass
        os.close(fd)  # a sweeper took it for stale between its creation and our lock: again


def _remove_stale(temporaries: Iterable[Path]) -> int:
    """Remove the temp files no live writer holds (their writer was killed); how many went."""
    removed = 0
    for tmp in temporaries:
        with contextlib.suppress(OSError):
            fd = os.open(tmp, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    continue
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live writer's
                tmp.unlink()  # while holding its lock: its writer (if any) retries
                removed += 1
            finally:
                os.close(fd)
    return removed


def sweep_temporaries(folder: Path, *, keep: tuple[str, ...] = ()) -> int:
    """Remove the temp files `atomic_write` leaves when a process is killed mid-write.

    A live writer's temp file is flock-ed and left alone. Temp files for the names in
    `keep` are left alone too. Returns how many were removed.
    """
    if not folder.is_dir():
        return 0
    stale = (
        tmp
        for tmp in folder.rglob(".*.tmp")
        if tmp.name[1:].removesuffix(".tmp").rsplit(".", 1)[0] not in keep  # .NAME.XXXX.tmp
    )
    return _remove_stale(stale)


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
