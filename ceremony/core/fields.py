"""One strict reader for every JSON object the tool reads: metadata, documents, home files.

Each field is read by its type; `done()` refuses any field that was not read; every
problem is one sentence naming where it is. The error class is the caller's: input is
`MalformedInput` (exit 1), a home's own file is `HomeDamaged`.
"""

from __future__ import annotations

import re
from typing import Any

from ceremony.core.canonical import parse_json
from ceremony.core.errors import CeremonyError, HomeDamaged, MalformedInput

MAX_SAFE_INT = 2**53  # Go verifies through float64: larger integers lose precision
_HEX = re.compile(r"[0-9a-f]+")
_MISSING = object()


class Fields:
    """The fields of one JSON object, read once each."""

    __slots__ = ("_data", "_error", "_read", "where")

    def __init__(
        self, value: Any, where: str, *, error: type[CeremonyError] = MalformedInput
    ) -> None:
        if not isinstance(value, dict):
            raise error(f"{where} must be a JSON object.")
        self._data: dict[str, Any] = value
        self._read: set[str] = set()
        self._error = error
        self.where = where

    def fail(self, problem: str) -> CeremonyError:
        """An error for this object: `problem` completes "<where> ..."."""
        return self._error(f"{self.where} {problem}.")

    def has(self, key: str) -> bool:
        return key in self._data

    def raw(self, key: str) -> Any:
        """The value of a required field, of any type."""
        self._read.add(key)
        if key not in self._data:
            raise self.fail(f"lacks the field {key!r}")
        return self._data[key]

    def optional(self, key: str) -> Any:
        """The value of a field that may be absent (None then)."""
        self._read.add(key)
        return self._data.get(key)

    def _typed(self, key: str, kind: type, noun: str) -> Any:
        value = self.raw(key)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            if kind is int and isinstance(value, bool):
                raise self.fail(f"has {key!r} as true or false; it must be an integer")
            raise self.fail(f"has the wrong type for {key!r} (it must be {noun})")
        return value

    def text(self, key: str) -> str:
        text: str = self._typed(key, str, "a string")
        return text

    def flag(self, key: str) -> bool:
        flag: bool = self._typed(key, bool, "true or false")
        return flag

    def array(self, key: str) -> list[Any]:
        items: list[Any] = self._typed(key, list, "a list")
        return items

    def mapping(self, key: str) -> dict[str, Any]:
        mapping: dict[str, Any] = self._typed(key, dict, "an object")
        return mapping

    def integer(self, key: str, *, minimum: int = 0, maximum: int = MAX_SAFE_INT - 1) -> int:
        value: int = self._typed(key, int, "an integer")
        if not minimum <= value <= maximum:
            raise self.fail(f"has {key!r} out of range ({value})")
        return value

    def hex(self, key: str, length: int) -> str:
        value = self.raw(key)
        if not isinstance(value, str) or len(value) != length or not _HEX.fullmatch(value):
            raise self.fail(f"has a malformed {key!r}")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.raw(key)
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            raise self.fail(f"has {key!r} that is not a list of strings")
        return tuple(value)

    def object(self, key: str, where: str | None = None) -> Fields:
        """A nested object, read with the same rules."""
        return Fields(self.raw(key), where or f"{self.where}.{key}", error=self._error)

    def rest(self) -> dict[str, Any]:
        """The fields not read (kept as they are, where the format allows extra fields)."""
        return {k: v for k, v in self._data.items() if k not in self._read}

    def done(self) -> None:
        """Refuse any field that was not read."""
        extra = [k for k in self._data if k not in self._read]
        if extra:
            raise self.fail(f"has unexpected fields {sorted(extra)}")


def read_home_file(data: bytes, what: str) -> Fields:
    """The top object of one of the home's own files; any flaw is `HomeDamaged` naming it."""
    try:
        value = parse_json(data, what=what)
    except MalformedInput as exc:
        raise HomeDamaged(
            f"The {what} is damaged and cannot be read: restore it from a backup or move it aside."
        ) from exc
    return Fields(value, f"The {what}", error=HomeDamaged)
