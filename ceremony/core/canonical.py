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

Speed. Documents reach 10⁵–10⁶ targets, so both directions run in orjson (C) and
the pure-Python encoder and parser below are kept as the *reference*: property
tests hold the two byte-equal, and every case orjson does not write exactly as Go
does goes to the reference: a string holding 0x08 or 0x0C (orjson writes `\\b`,
`\\f`), an integer beyond 2⁵³, any type but the JSON ones, and a float (refused).
Parsing proves the absence of duplicate keys without a Python call per object:
the input must equal the canonical writer's output for the parsed value, and
anything else is read again by the strict reference parser.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ceremony.core.errors import MalformedInput

MAX_DEPTH = 254
"""Deepest nesting read or written: orjson writes no deeper, and Notary's documents nest
fewer than ten levels. A limit also keeps the recursive reference encoder off Python's."""
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_HTML = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


@dataclass(frozen=True, slots=True)
class RawJSON:
    """A JSON value copied through as Go copies a `*json.RawMessage`: key order kept."""

    value: Any


class Checked(dict[str, Any]):
    """A JSON object whose every value is already known to be plain JSON (no float, no
    foreign type): a parsed document's subtree, or one built from such. The encoder
    does not walk it again, which keeps re-encoding 10⁵ parsed targets at C speed."""

    __slots__ = ()


class CanonicalError(ValueError):
    """A value that canonical JSON cannot represent."""


# ---------------------------------------------------------------------------
# the reference encoder (pure Python, exact by construction)

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


def _encode(value: Any, out: list[str], *, raw: bool, depth: int = 1) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise CanonicalError(f"integer {value} is outside the 64-bit range")
        out.append(str(int(value)))
    elif isinstance(value, float):
        raise CanonicalError("floats are not allowed in canonical JSON")
    elif isinstance(value, str):
        out.append(_encode_str(value, html=raw))
    elif isinstance(value, RawJSON):
        _encode(value.value, out, raw=True, depth=depth)
    elif isinstance(value, Mapping):
        if depth > MAX_DEPTH:
            raise CanonicalError(f"the value nests deeper than {MAX_DEPTH} levels")
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
            _encode(value[k], out, raw=raw, depth=depth + 1)
        out.append("}")
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        if depth > MAX_DEPTH:
            raise CanonicalError(f"the value nests deeper than {MAX_DEPTH} levels")
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out, raw=raw, depth=depth + 1)
        out.append("]")
    else:
        raise CanonicalError(f"cannot encode a {type(value).__name__} in canonical JSON")


def reference_encode(value: Any) -> bytes:
    """The pure-Python canonical encoder: slow, and the definition `encode_canonical` meets."""
    out: list[str] = []
    try:
        _encode(value, out, raw=False)
    except RecursionError:
        raise CanonicalError(f"the value nests deeper than {MAX_DEPTH} levels") from None
    return "".join(out).encode("utf-8")


# ---------------------------------------------------------------------------
# the fast encoder

_PLAIN_LEAVES = frozenset({str, int, bool, type(None), Checked, RawJSON})
_FAST_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_STRICT_INTEGER


def _is_plain(value: Any) -> bool:
    """Whether `value` holds only types orjson writes as Go does (a loop, no call per node)."""
    stack = [value]
    pop, extend = stack.pop, stack.extend
    while stack:
        item = pop()
        kind = type(item)
        if kind is dict:
            extend(item.values())
        elif kind is list or kind is tuple:
            extend(item)
        elif kind not in _PLAIN_LEAVES:
            return False
    return True


def _raw_fragment(value: Any) -> orjson.Fragment:
    if type(value) is not RawJSON:
        raise TypeError  # orjson reports it; the reference encoder then names the problem
    out: list[str] = []
    _encode(value.value, out, raw=True)
    return orjson.Fragment("".join(out).encode("utf-8"))


def encode_canonical(value: Any) -> bytes:
    """Serialise `value` to the exact bytes Notary signs and hashes."""
    if _is_plain(value):
        try:
            out = orjson.dumps(value, default=_raw_fragment, option=_FAST_OPTIONS)
        except (orjson.JSONEncodeError, CanonicalError) as exc:
            if "recursion limit" in str(exc).lower():  # orjson's own depth limit, MAX_DEPTH
                raise CanonicalError(f"the value nests deeper than {MAX_DEPTH} levels") from None
            # a big integer, a non-string key, a bad RawJSON: the reference decides
        else:
            if b"\\b" not in out and b"\\f" not in out:  # rare: Go writes \u0008, \u000c
                return out
    return reference_encode(value)


_PART = 4096  # items of a large list or object encoded at a time by `canonical_parts`


def canonical_parts(value: Any, *, depth: int = 0) -> Iterator[bytes]:
    """`encode_canonical(value)` in pieces whose join is exactly those bytes.

    A list or object of more than a few thousand items is encoded that many items at a
    time, and a small object near the top is encoded key by key, so a document of 10⁶
    entries is never encoded whole next to its input (it holds 150 MB). Exact because the
    encoding is compositional: a list is its items' encodings between `[` and `]`, an
    object its `"key":value` pairs in key order between `{` and `}`, joined by `,`.
    """
    kind = type(value)
    if kind is list and len(value) > _PART:
        yield b"["
        for start in range(0, len(value), _PART):
            if start:
                yield b","
            yield encode_canonical(value[start : start + _PART])[1:-1]
        yield b"]"
    elif kind is dict and all(type(k) is str for k in value):
        keys = sorted(value)  # code point order, as the encoder sorts
        if len(keys) > _PART:
            yield b"{"
            for start in range(0, len(keys), _PART):
                if start:
                    yield b","
                part = {k: value[k] for k in keys[start : start + _PART]}
                yield encode_canonical(part)[1:-1]
            yield b"}"
        elif depth < 3:
            yield b"{"
            for i, key in enumerate(keys):
                yield (b',"' if i else b'"') + encode_canonical(key)[1:] + b":"
                yield from canonical_parts(value[key], depth=depth + 1)
            yield b"}"
        else:
            yield encode_canonical(value)
    else:
        yield encode_canonical(value)


def is_canonical_encoding(value: Any, data: bytes) -> bool:
    """Whether `data` is exactly `encode_canonical(value)`, compared piece by piece
    (`canonical_parts`), so the encoding never exists whole. False for a value that has
    no canonical encoding."""
    position = 0
    try:
        for part in canonical_parts(value):
            if not data.startswith(part, position):
                return False
            position += len(part)
    except (CanonicalError, TypeError, ValueError):
        return False
    return position == len(data)


def envelope_escape(canonical: bytes) -> bytes:
    """HTML-escape canonical bytes as Go's compact(escape=true) does inside the envelope.

    In canonical JSON the characters `<>&` and U+2028/2029 can only occur inside
    strings, so a byte-level replacement is exact.
    """
    if not any(c in canonical for c in _HTML_BYTES):  # memchr-speed; the usual body has none
        return canonical
    return (
        canonical.replace(b"<", b"\\u003c")
        .replace(b">", b"\\u003e")
        .replace(b"&", b"\\u0026")
        .replace("\u2028".encode(), b"\\u2028")
        .replace("\u2029".encode(), b"\\u2029")
    )


_HTML_BYTES = (b"<", b">", b"&", "\u2028".encode(), "\u2029".encode())


# ---------------------------------------------------------------------------
# parsing


def _no_float(text: str) -> Any:
    raise MalformedInput(
        f"the JSON holds a non-integer number ({text}), which Notary cannot verify"
    )


def _int64(text: str) -> int:
    number = int(text)
    if not INT64_MIN <= number <= INT64_MAX:
        raise MalformedInput(f"the JSON holds the integer {text}, beyond the 64-bit range")
    return number


def _no_constant(text: str) -> Any:
    raise MalformedInput(f"the JSON holds {text}, which is not valid JSON")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for k, v in pairs:
        if k in obj:
            raise MalformedInput(f"the JSON repeats the key {k!r} in one object")
        obj[k] = v
    return obj


def reference_parse(data: bytes, *, what: str = "document") -> Any:
    """The strict pure-Python parser: slow, and the definition `parse_json` meets.

    UTF-8 only, no duplicate keys, no floats, no integer beyond 64 bits, no NaN,
    no lone surrogate. Raises MalformedInput with one sentence naming `what`.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedInput(f"The {what} is not UTF-8 text.") from exc
    try:
        value = json.loads(
            text,
            parse_float=_no_float,
            parse_int=_int64,
            parse_constant=_no_constant,
            object_pairs_hook=_pairs,
        )
    except MalformedInput as exc:
        raise MalformedInput(f"The {what} is not acceptable: {exc.message}.") from exc
    except RecursionError:
        raise MalformedInput(f"The {what} nests deeper than {MAX_DEPTH} levels.") from None
    except ValueError as exc:
        # Not chained: a JSONDecodeError holds the whole text, which must not outlive this.
        raise MalformedInput(f"The {what} is not valid JSON ({exc}).") from None
    _check_strings(value, what)
    return value


def _check_strings(value: Any, what: str) -> None:
    """Refuse lone surrogates, which Go would silently replace (and so re-hash differently),
    and nesting deeper than MAX_DEPTH (the fast path's limit: both paths agree)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise MalformedInput(f"The {what} holds an invalid unicode escape.") from exc
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise MalformedInput(f"The {what} nests deeper than {MAX_DEPTH} levels.")
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


def parse_json_unchecked(data: bytes, *, what: str = "document") -> Any:
    """`parse_json` without its canonical re-encoding, for a reader that compares the
    canonical encoding of everything it read with `data` itself (`Request.from_bytes`),
    which proves what that check proves, once instead of twice. Such a reader must call
    `reference_parse` when that comparison or any of its checks fails, so that an input
    breaking the strict rules (a repeated key, a float) is named as `parse_json` names it.
    Input orjson refuses goes to `reference_parse` here."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return reference_parse(data, what=what)


def parse_json(
    data: bytes,
    *,
    what: str = "document",
    form: Callable[[Any], bytes | None] = encode_canonical,
) -> Any:
    """Parse JSON strictly, with the reference parser's exact rules and messages.

    `form` is how the input's writer encodes a value (canonical JSON unless said
    otherwise). orjson parses; when re-encoding the value with `form` gives back
    `data` byte for byte, the input can hold no duplicate key (the writer writes
    each key once), no float (the encoder refuses them) and nothing else the
    strict rules refuse, so it is accepted. Any other input, including every
    invalid one, is parsed again by `reference_parse`, which accepts or names the
    problem.
    """
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return reference_parse(data, what=what)
    if form is encode_canonical and len(data) > _COMPARE_IN_PARTS:
        if not is_canonical_encoding(value, data):  # the same check, without a second copy
            return reference_parse(data, what=what)
        return value
    try:
        again = form(value)
    except (CanonicalError, MalformedInput, KeyError, TypeError, ValueError):
        again = None
    if again != data:
        return reference_parse(data, what=what)
    return value


_COMPARE_IN_PARTS = 1 << 20  # bytes: a larger canonical input is compared piece by piece
