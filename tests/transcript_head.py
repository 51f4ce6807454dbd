"""The line every recorded `ceremony` command ends with on stderr: the transcript's new head."""

from __future__ import annotations

import re

HEAD_LINE = re.compile(r"^transcript: line \d+, head (?:\S+ ){7}\S+\n", re.MULTILINE)


def without_head(stderr: str) -> str:
    """stderr without the transcript head line, for tests that check every other line."""
    return HEAD_LINE.sub("", stderr)
