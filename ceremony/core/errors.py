"""Errors that carry the sentence the operator reads.

Every failure a user can cause or meet is a `CeremonyError`. Its `message` is a
single sentence saying what is wrong and what to do; its `exit_code` is the
documented process exit status. Both CLIs translate these in one place
(`ceremony.cli_support.run_app`), so no traceback ever reaches the operator.

Exit codes: 0 success; 1 input rejected (verification failed, tampered, stale,
policy); 2 usage; 3 environment (server unreachable, token, disk); 4 aborted by
the operator.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import ClassVar

_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"})  # Zs: but the space
_PLAIN_ASCII = re.compile(r"[ -\[\]-~]*").fullmatch  # printable ASCII but the backslash


def printable(text: str) -> str:
    """`text` safe to show an operator: control, format and bidi characters escaped.

    Names in metadata (targets, delegations, certificate subjects) come from
    whoever wrote the metadata. Shown raw, a carriage return, an ANSI escape or a
    right-to-left override could make a review screen say something other than
    what is signed. Backslashes are doubled so an escape is never ambiguous.
    """
    if _PLAIN_ASCII(text):  # the usual name: nothing to escape (and no loop per character)
        return text
    return escape_where(text, lambda ch: ch != " " and unicodedata.category(ch) in _HIDDEN)


def escape_where(text: str, hidden: Callable[[str], bool]) -> str:
    """`text` with a backslash doubled and each `hidden` character written as its escape."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif not hidden(ch):
            out.append(ch)
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return "".join(out)


def clipped(value: object, limit: int = 60) -> str:
    """`repr(value)` for a message, cut to `limit` characters: hostile input can be megabytes."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 1]}… ({len(text)} characters)"


MAX_MESSAGE = 1000
"""Characters of an operator sentence: one quoting a hostile name of megabytes is cut short."""


def _bounded(message: str) -> str:
    """`message` cut in the middle if too long, so its start (what) and end (what to do) stay."""
    if len(message) <= MAX_MESSAGE:
        return message
    head, tail = MAX_MESSAGE * 3 // 5, MAX_MESSAGE // 3
    return f"{message[:head]} \u2026[{len(message) - head - tail} characters cut]\u2026 {message[-tail:]}"


class CeremonyError(Exception):
    """Base of every error meant for the operator."""

    exit_code: ClassVar[int] = 1

    def __init__(self, message: str) -> None:
        message = _bounded(printable(message))  # messages quote names from untrusted files
        super().__init__(message)
        self.message = message

    def diagnostics(self) -> str:
        """The sentence shown to the operator."""
        return self.message


class InputRejected(CeremonyError):
    """Input is wrong or hostile: malformed, tampered, stale, or against policy."""

    exit_code = 1


class MalformedInput(InputRejected):
    """Bytes that do not parse as what they claim to be."""


class VerificationFailed(InputRejected):
    """Signatures, hashes, thresholds, versions or expiry do not check out."""


class UsageError(CeremonyError):
    """The command line asks for something that cannot be done as asked."""

    exit_code = 2


class EnvironmentFailure(CeremonyError):
    """The world failed: server unreachable, token missing, disk full."""

    exit_code = 3


class Aborted(CeremonyError):
    """The operator declined, or no operator was there to confirm."""

    exit_code = 4


class HomeDamaged(EnvironmentFailure):
    """A file of the tool's own home is damaged: an interrupted write, a failing disk, an edit.

    The same in both halves (exit 3, like any other failure of the machine's storage).
    """
