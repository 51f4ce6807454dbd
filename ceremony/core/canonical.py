"""Canonical JSON exactly as Notary 0.7 writes it (docker/go canonical/json).

Rules (notary-formats.md §1): no whitespace; object keys sorted by code point;
strings escape only `"`, `\\`, `\\n`, `\\r`, `\\t` and other bytes below 0x20 as
lowercase `\\u00xx`; everything else (including `<>&`, U+2028/2029 and non-ASCII)
raw UTF-8; integers in decimal; floats refused.

Two extra pieces mirror Go's pass-through of `json.RawMessage` values (only
`FileMeta.custom` in Notary): a `RawJSON` node is written in its original key
order with HTML escaping, never re-sorted.

The envelope (`{"signed":…,"signatures":[…]}`) is not canonical: it is the
canonical body with `<`, `>`, `&`, U+2028 and U+2029 escaped, see
`envelope_escape`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ceremony.core.errors import MalformedInput

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_HTML = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


@dataclass(frozen=True, slots=True)
class RawJSON:
    """A JSON value copied through as Go copies a `*json.RawMessage`: key order kept."""

    value: Any


class CanonicalError(ValueError):
    """A value that canonical JSON cannot represent."""


_NEEDS_ESCAPE = re.compile('[\x00-\x1f"\\\\]')
_NEEDS_ESCAPE_HTML = re.compile('[\x00-\x1f"\\\\<>&\u2028\u2029]')


def _escape_char(match: re.Match[str]) -> str:
    ch = match.group()
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    if ch < " ":
        return f"\\u{ord(ch):04x}"
    return _HTML[ch]


def _encode_str(text: str, *, html: bool) -> str:
    pattern = _NEEDS_ESCAPE_HTML if html else _NEEDS_ESCAPE
    if pattern.search(text) is None:  # the common case: nothing to escape
        return f'"{text}"'
    return '"' + pattern.sub(_escape_char, text) + '"'


def _encode(value: Any, out: list[str], *, raw: bool) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise CanonicalError(f"integer {value} is outside the 64-bit range")
        out.append(str(value))
    elif isinstance(value, float):
        raise CanonicalError("floats are not allowed in canonical JSON")
    elif isinstance(value, str):
        out.append(_encode_str(value, html=raw))
    elif isinstance(value, RawJSON):
        _encode(value.value, out, raw=True)
    elif isinstance(value, Mapping):
        keys = list(value.keys())
        for k in keys:
            if not isinstance(k, str):
                raise CanonicalError("object keys must be strings")
        out.append("{")
        for i, k in enumerate(keys if raw else sorted(keys)):
            if i:
                out.append(",")
            out.append(_encode_str(k, html=raw))
            out.append(":")
            _encode(value[k], out, raw=raw)
        out.append("}")
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out, raw=raw)
        out.append("]")
    else:
        raise CanonicalError(f"cannot encode a {type(value).__name__} in canonical JSON")


def encode_canonical(value: Any) -> bytes:
    """Serialise `value` to the exact bytes Notary signs and hashes."""
    out: list[str] = []
    _encode(value, out, raw=False)
    return "".join(out).encode("utf-8")


def envelope_escape(canonical: bytes) -> bytes:
    """HTML-escape canonical bytes as Go's compact(escape=true) does inside the envelope.

    In canonical JSON the characters `<>&` and U+2028/2029 can only occur inside
    strings, so a byte-level replacement is exact.
    """
    return (
        canonical.replace(b"<", b"\\u003c")
        .replace(b">", b"\\u003e")
        .replace(b"&", b"\\u0026")
        .replace("\u2028".encode(), b"\\u2028")
        .replace("\u2029".encode(), b"\\u2029")
    )


def _no_float(text: str) -> Any:
    raise MalformedInput(
        f"the JSON holds a non-integer number ({text}), which Notary cannot verify"
    )


def _no_constant(text: str) -> Any:
    raise MalformedInput(f"the JSON holds {text}, which is not valid JSON")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for k, v in pairs:
        if k in obj:
            raise MalformedInput(f"the JSON repeats the key {k!r} in one object")
        obj[k] = v
    return obj


def parse_json(data: bytes, *, what: str = "document") -> Any:
    """Parse JSON strictly: UTF-8 only, no duplicate keys, no floats, no NaN.

    Raises MalformedInput with one sentence naming `what` on any problem.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedInput(f"The {what} is not UTF-8 text.") from exc
    try:
        value = json.loads(
            text,
            parse_float=_no_float,
            parse_constant=_no_constant,
            object_pairs_hook=_pairs,
        )
    except MalformedInput as exc:
        raise MalformedInput(f"The {what} is not acceptable: {exc.message}.") from exc
    except (ValueError, RecursionError) as exc:
        raise MalformedInput(f"The {what} is not valid JSON ({exc}).") from exc
    _check_strings(value, what)
    return value


def _check_strings(value: Any, what: str) -> None:
    """Refuse lone surrogates, which Go would silently replace (and so re-hash differently)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise MalformedInput(f"The {what} holds an invalid unicode escape.") from exc
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
