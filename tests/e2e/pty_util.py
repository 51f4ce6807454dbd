"""Run a CLI on a pseudo-terminal, as an operator at a keyboard would, and read what it shows."""

from __future__ import annotations

import fcntl
import os
import select
import subprocess
import termios
import time
from collections.abc import Sequence


class PtyProcess:
    """A subprocess whose stdin, stdout and stderr are one pty, with the pty as its terminal."""

    def __init__(self, cmd: Sequence[str], env: dict[str, str]) -> None:
        self.master, slave = os.openpty()
        env = {"COLUMNS": "200", "LINES": "50", "TERM": "xterm", **env}
        self.proc = subprocess.Popen(
            list(cmd),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
            preexec_fn=_make_controlling_terminal,  # the pty becomes /dev/tty (getpass)
        )
        os.close(slave)
        self.output = ""
        self._cursor = 0

    def read_until(self, text: str, timeout: float = 60) -> str:
        """Read until `text` shows after the previous match (or fail with all that was shown);
        returns the output from the previous match to the end of this one."""
        deadline = time.monotonic() + timeout
        while (found := self.output.find(text, self._cursor)) < 0:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{text!r} never appeared; output so far:\n{self.output}"
            self._read(min(remaining, 0.5))
        start, self._cursor = self._cursor, found + len(text)
        return self.output[start : self._cursor]

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def finish(self, timeout: float = 60) -> int:
        """Wait for the exit code, collecting the rest of the output."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._read(0.2)
        try:
            code = self.proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"still running; output so far:\n{self.output}") from None
        for _ in range(20):
            if not self._read(0.05):
                break
        os.close(self.master)
        return code

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # the child closed the pty
            return False
        self.output += chunk.decode("utf-8", "replace")
        return bool(chunk)


def _make_controlling_terminal() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
