"""Shares typed at a real terminal (a pseudo-terminal): each word checked as it is entered,
each share's checksum as soon as it is complete, nothing echoed."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from pathlib import Path

from tests.custody.helpers import CEREMONY, GUN, NEW_PASSPHRASE, ceremony, env, sheet_words, sheets


class Terminal:
    """The operator's side of a pseudo-terminal: wait for a prompt, then type."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.seen = b""
        self._at = 0

    def expect(self, text: str, timeout: float = 60) -> None:
        needle = text.encode()
        deadline = time.monotonic() + timeout
        while needle not in self.seen[self._at :]:
            ready, _, _ = select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, f"no {text!r} on the terminal; it shows:\n{self.seen.decode()}"
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:  # the program ended
                chunk = b""
            assert chunk, f"the program ended before {text!r}:\n{self.seen.decode()}"
            self.seen += chunk
        self._at = self.seen.index(needle, self._at) + len(needle)

    def type(self, line: str) -> None:
        os.write(self.fd, line.encode() + b"\n")


def test_shares_typed_at_the_prompt(tmp_path: Path) -> None:
    home = tmp_path / "home"
    key_id = ceremony(home, "key", "generate", "targets", "--gun", GUN).stdout.strip()
    ceremony(
        home, "key", "backup", key_id, "--shares", "4", "--threshold", "3",
        "--out", str(tmp_path / "sheets"),
    )  # fmt: skip
    first, second, third, _ = (sheet_words(s) for s in sheets(tmp_path / "sheets"))
    (home / "private" / f"{key_id}.key").unlink()

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [str(CEREMONY), "--home", str(home), "key", "restore", "--role", "targets",
         "--gun", GUN, "--expect-key", key_id],
        stdin=slave, stdout=subprocess.PIPE, stderr=slave,
        env=env(NOTARY_TARGETS_PASSPHRASE=NEW_PASSPHRASE, TERM="dumb"),
        start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    term = Terminal(master)
    try:
        # Share 1: ten words at once, then a mistyped word, re-asked at once.
        term.expect("Share 1, word 1 of 33")
        term.type(" ".join(first[:10]))
        term.expect("Share 1, word 11 of 33")
        term.type("qwertyx " + first[11])
        term.expect("Word 11 is not on the SLIP-39 word list")
        term.expect("Share 1, word 11 of 33")
        term.type(" ".join(first[10:]))
        term.expect("Share 1 checks out (share 1 of the set; 3 needed)")
        # Share 1 again: refused as a repeat, the next share is asked for.
        term.expect("Share 2, word 1 of 33")
        term.type(" ".join(first))
        term.expect("That is share 1 of the set again")
        # Share 2 with two words swapped: its checksum fails, it is asked for again.
        swapped = list(second)
        i = next(i for i in range(10, 32) if swapped[i] != swapped[i + 1])
        swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
        term.expect("Share 2, word 1 of 33")
        term.type(" ".join(swapped))
        term.expect("Share 2 fails its checksum")
        term.expect("Share 2, word 1 of 33")
        term.type(" ".join(second))
        term.expect("Share 2 checks out")
        term.expect("Share 3, word 1 of 33")
        term.type(" ".join(third))
        term.expect("Share 3 checks out")
        term.expect("Share passphrase (press Enter if the shares have none)")
        term.type("")
        term.expect("Restored targets key from 3 share(s)")
        assert proc.stdout is not None
        out = proc.stdout.read().decode()
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert out.strip() == key_id
    shown = term.seen.decode()
    for words in (first, second, third):  # words are typed hidden: none shows
        assert " ".join(words[:3]) not in shown and " ".join(words[10:13]) not in shown
