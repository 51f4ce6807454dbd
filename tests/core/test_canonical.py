"""Canonical JSON and Go time against Go's rules (notary-formats.md §1, §2.2, §7.3).

The reference for canonical JSON is Python's `json.dumps(sort_keys=True,
separators=(",", ":"), ensure_ascii=False)` with the two escapes Go writes
differently (`\\b`, `\\f` -> `\\u0008`, `\\u000c`), which §1.1 says matches
Notary data exactly; key order is additionally checked against Go's byte-wise
UTF-8 sort.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ceremony.core.canonical import (
    INT64_MAX,
    INT64_MIN,
    CanonicalError,
    Checked,
    RawJSON,
    encode_canonical,
    envelope_escape,
    parse_json,
    reference_encode,
    reference_parse,
)
from ceremony.core.errors import MalformedInput
from ceremony.core.gotime import GoTime
from tests.core.repos import assert_one_sentence

SETTINGS = settings(max_examples=150, deadline=None)

# Characters with a rule of their own, mixed into otherwise arbitrary text.
SPECIAL = [chr(c) for c in range(0x20)] + list('"\\/<>&\x7f\u2028\u2029é☃\U0001f600\uff5e')
texts = st.text(
    alphabet=st.one_of(st.sampled_from(SPECIAL), st.characters(codec="utf-8")), max_size=12
)
int64 = st.integers(min_value=INT64_MIN, max_value=INT64_MAX)
scalars = st.none() | st.booleans() | int64 | texts
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=20,
)

_PY_ESCAPE = re.compile(r"\\(.)")


def go_reference(value: Any) -> bytes:
    """Python's compact sorted JSON, with Go's escapes for 0x08 and 0x0c."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # Every backslash in json.dumps output starts an escape, so a left-to-right scan is exact.
    fixes = {"b": "\\u0008", "f": "\\u000c"}
    return _PY_ESCAPE.sub(lambda m: fixes.get(m.group(1), m.group(0)), text).encode("utf-8")


def same(a: Any, b: Any) -> bool:
    """Equality that does not let True pass for 1 (Python's == does)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def sort_dicts(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: sort_dicts(value[k]) for k in sorted(value, key=lambda k: k.encode())}
    if isinstance(value, list):
        return [sort_dicts(v) for v in value]
    return value


def key_orders(data: bytes) -> list[list[str]]:
    orders: list[list[str]] = []

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        orders.append([k for k, _ in pairs])
        return dict(pairs)

    json.loads(data, object_pairs_hook=hook)
    return orders


# ---------------------------------------------------------------------------
# properties


@SETTINGS
@given(json_values)
def test_encoding_matches_go_reference(value: Any) -> None:
    assert encode_canonical(value) == go_reference(value)


@SETTINGS
@given(json_values)
def test_parse_inverts_encode(value: Any) -> None:
    encoded = encode_canonical(value)
    parsed = parse_json(encoded)
    assert same(parsed, sort_dicts(value))
    assert encode_canonical(parsed) == encoded  # a fixed point


@SETTINGS
@given(json_values)
def test_keys_sorted_bytewise_and_no_raw_controls(value: Any) -> None:
    encoded = encode_canonical(value)
    for order in key_orders(encoded):
        assert order == sorted(order, key=lambda k: k.encode("utf-8"))  # Go: sort.Strings
    assert not any(b < 0x20 for b in encoded)
    encoded.decode("utf-8")  # raw UTF-8, never invalid


@SETTINGS
@given(texts)
def test_envelope_escape_touches_exactly_five_characters(text: str) -> None:
    html = {
        "<": "\\u003c",
        ">": "\\u003e",
        "&": "\\u0026",
        "\u2028": "\\u2028",
        "\u2029": "\\u2029",
    }
    expected = "".join(html.get(c, c) for c in text).encode("utf-8")
    assert envelope_escape(text.encode("utf-8")) == expected


@SETTINGS
@given(json_values)
def test_envelope_escape_preserves_meaning(value: Any) -> None:
    escaped = envelope_escape(encode_canonical(value))
    for raw in (b"<", b">", b"&", "\u2028".encode(), "\u2029".encode()):
        assert raw not in escaped
    assert same(parse_json(escaped), sort_dicts(value))


@SETTINGS
@given(st.dictionaries(texts, int64, min_size=1, max_size=6), st.randoms())
def test_raw_json_keeps_key_order_and_html_escapes(value: dict[str, int], rnd: Any) -> None:
    keys = list(value)
    rnd.shuffle(keys)
    shuffled = {k: value[k] for k in keys}
    encoded = encode_canonical({"custom": RawJSON(shuffled)})
    assert key_orders(encoded)[0] == keys  # innermost object first: never re-sorted
    for raw in (b"<", b">", b"&"):
        assert raw not in encoded
    assert json.loads(encoded)["custom"] == shuffled


@SETTINGS
@given(st.text(max_size=4), int64, int64)
def test_duplicate_keys_refused(key: str, a: int, b: int) -> None:
    name = json.dumps(key)
    for doc in (f"{{{name}:{a},{name}:{b}}}", f'{{"x":[{{{name}:{a},{name}:{b}}}]}}'):
        with pytest.raises(MalformedInput) as err:
            parse_json(doc.encode())
        assert_one_sentence(err.value.message)


@SETTINGS
@given(st.integers(min_value=0xD800, max_value=0xDFFF))
def test_lone_surrogates_refused(code: int) -> None:
    for doc in (f'"\\u{code:04x}"', f'{{"\\u{code:04X}":1}}', f'["a\\u{code:04x}b"]'):
        with pytest.raises(MalformedInput) as err:
            parse_json(doc.encode())
        assert_one_sentence(err.value.message)


def test_surrogate_pair_accepted_and_written_raw() -> None:
    assert parse_json(b'"\\ud83d\\ude00"') == "\U0001f600"
    assert encode_canonical("\U0001f600") == '"\U0001f600"'.encode()


@SETTINGS
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_refused_both_ways(number: float) -> None:
    with pytest.raises(CanonicalError):
        encode_canonical({"n": number})
    with pytest.raises(MalformedInput) as err:
        parse_json(json.dumps({"n": number}).encode())  # repr always has "." or "e"
    assert_one_sentence(err.value.message)


# ---------------------------------------------------------------------------
# the fast codec against the reference (canonical.py keeps the pure-Python one as the definition)

# Anything a caller might pass: every JSON type, floats, big integers, tuples, RawJSON at
# any depth (with nested objects in their own order), Checked objects, and foreign types.
odd_scalars = (
    scalars
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.integers()
    | st.sampled_from([b"x", {1, 2}, object(), 1 + 2j])
)
any_values = st.recursive(
    odd_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(texts, inner, max_size=4)
        | st.dictionaries(texts, inner, max_size=3).map(RawJSON)
        | st.dictionaries(texts, inner, max_size=3).map(Checked)
        | st.dictionaries(st.integers(), inner, min_size=1, max_size=2)
    ),
    max_leaves=20,
)


def _holds_unencodable_checked(value: Any) -> bool:
    if isinstance(value, Checked):
        try:
            reference_encode(value)
        except CanonicalError:
            return True
    if isinstance(value, RawJSON):
        return _holds_unencodable_checked(value.value)
    if isinstance(value, dict):
        return any(_holds_unencodable_checked(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_holds_unencodable_checked(v) for v in value)
    return False


def _outcome(encode: Any, value: Any) -> bytes | str:
    try:
        return bytes(encode(value))
    except CanonicalError:
        return "refused"


@settings(max_examples=600, deadline=None)
@given(any_values)
def test_fast_encoder_equals_reference(value: Any) -> None:
    if _holds_unencodable_checked(value):
        return  # Checked promises encodable JSON inside; the fast path trusts that promise
    assert _outcome(encode_canonical, value) == _outcome(reference_encode, value)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_fast_encoder_on_plain_json_equals_reference(value: Any) -> None:
    assert encode_canonical(value) == reference_encode(value)
    assert encode_canonical(Checked(value) if isinstance(value, dict) else value) == (
        reference_encode(value)
    )


def _json_texts() -> st.SearchStrategy[bytes]:
    """Canonical encodings, then the edits a hostile or careless writer makes."""
    edits = st.sampled_from(
        [
            lambda b: b,
            lambda b: b + b" ",
            lambda b: b" " + b,
            lambda b: b.replace(b":", b": ", 1),
            lambda b: b.replace(b"{", b'{"k":1,', 1).replace(b"{", b'{"k":2,', 1),
            lambda b: b.replace(b"{", b'{"k":1,"k":1,', 1),
            lambda b: b.replace(b"1", b"1.0", 1),
            lambda b: b.replace(b"1", b"1e2", 1),
            lambda b: b.replace(b"0", b"-0", 1),
            lambda b: b.replace(b"2", b"18446744073709551616", 1),
            lambda b: b.replace(b"2", b"9223372036854775808", 1),
            lambda b: b.replace(b'"', b'"\\ud800', 1),
            lambda b: b.replace(b'"', b'"\\u0008', 1),
            lambda b: b.replace(b'"', b'"\\b', 1),
            lambda b: b.replace(b"null", b"NaN", 1),
            lambda b: b[:-1],
            lambda b: b + b"\xff",
            lambda b: b.replace(b"[", b"[" * 1200, 1),
        ]
    )
    return st.builds(lambda v, e: e(reference_encode(v)), json_values, edits)


def _parsed(parse: Any, data: bytes) -> tuple[str, Any]:
    try:
        return "ok", parse(data, what="text")
    except MalformedInput as exc:
        return "refused", exc.message


@settings(max_examples=600, deadline=None)
@given(_json_texts())
def test_fast_parser_equals_reference(data: bytes) -> None:
    fast, reference = _parsed(parse_json, data), _parsed(reference_parse, data)
    assert fast[0] == reference[0]
    if fast[0] == "ok":
        assert same(fast[1], reference[1])
    else:
        assert fast[1] == reference[1]


def test_duplicate_keys_found_in_canonical_looking_input() -> None:
    """The only fast proof of no duplicates is byte equality with the re-encoding."""
    with pytest.raises(MalformedInput, match="repeats the key"):
        parse_json(b'{"a":1,"a":1}')
    with pytest.raises(MalformedInput, match="repeats the key"):
        parse_json(b'{"a":{"b":1,"b":2},"c":3}')


# ---------------------------------------------------------------------------
# exact cases


@pytest.mark.parametrize("code", range(0x20))
def test_control_characters(code: int) -> None:
    short = {0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}
    expected = short.get(code, f"\\u{code:04x}")
    assert encode_canonical(chr(code)) == f'"{expected}"'.encode()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("\b\f", b'"\\u0008\\u000c"'),  # not Python's \b \f
        ("\x1b\x1f", b'"\\u001b\\u001f"'),  # lowercase hex
        ('"\\', b'"\\"\\\\"'),
        ("/\x7f", b'"/\x7f"'),
        ("<a&b>", b'"<a&b>"'),
        ("\u2028\u2029", '"\u2028\u2029"'.encode()),
        ("é☃\U0001f600", '"é☃\U0001f600"'.encode()),
        ({"b": 1, "a": 2, "_type": 3, "B": 4}, b'{"B":4,"_type":3,"a":2,"b":1}'),
        ({"\U0001f600": 1, "\uff5e": 2, "~": 3}, '{"~":3,"\uff5e":2,"\U0001f600":1}'.encode()),
        ({"k": [None, True, False, [], {}]}, b'{"k":[null,true,false,[],{}]}'),
        ((1, "x"), b'[1,"x"]'),
        (INT64_MAX, b"9223372036854775807"),
        (INT64_MIN, b"-9223372036854775808"),
        (0, b"0"),
    ],
)
def test_exact_encodings(value: Any, expected: bytes) -> None:
    assert encode_canonical(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        INT64_MAX + 1,
        INT64_MIN - 1,
        2**64,
        1.5,
        1.0,
        float("nan"),
        b"bytes",
        {1: "x"},
        {"s": {1, 2}},
    ],
)
def test_unencodable(value: Any) -> None:
    with pytest.raises(CanonicalError):
        encode_canonical(value)


def test_envelope_escape_exact() -> None:
    canonical = encode_canonical({"t": "a&b<c>\u2028\u2029é"})
    assert canonical == '{"t":"a&b<c>\u2028\u2029é"}'.encode()
    assert envelope_escape(canonical) == '{"t":"a\\u0026b\\u003cc\\u003e\\u2028\\u2029é"}'.encode()


@pytest.mark.parametrize(
    "doc",
    [
        b"1.5",
        b"1.0",
        b"1e3",
        b"-0.0",
        b'{"version":2.0}',
        b"NaN",
        b"[Infinity]",
        b"-Infinity",
        b'{"a":1,"a":1}',
        b'"\\udc00"',
        b"\xff\xfe",
        b'"\xc3"',
        b"{",
        b"",
        b'{"a":1} x',
    ],
)
def test_parse_refuses(doc: bytes) -> None:
    with pytest.raises(MalformedInput) as err:
        parse_json(doc, what="test document")
    assert "test document" in err.value.message
    assert_one_sentence(err.value.message)


# ---------------------------------------------------------------------------
# Go time (RFC3339Nano as Go writes it)


@pytest.mark.parametrize(
    ("written", "go_form"),
    [
        ("2029-11-22T03:39:26.336908583Z", "2029-11-22T03:39:26.336908583Z"),
        ("2116-07-03T17:56:36.027379879-05:00", "2116-07-03T17:56:36.027379879-05:00"),
        ("2030-01-01T00:00:00.500000Z", "2030-01-01T00:00:00.5Z"),  # the §7.3 trap
        ("2030-01-01T00:00:00.000000000Z", "2030-01-01T00:00:00Z"),
        ("2030-01-01T00:00:00.000000001Z", "2030-01-01T00:00:00.000000001Z"),
        ("2030-01-01T00:00:00.120Z", "2030-01-01T00:00:00.12Z"),
        ("2030-01-01T00:00:00+00:00", "2030-01-01T00:00:00Z"),
        ("2030-01-01T00:00:00-00:00", "2030-01-01T00:00:00Z"),
        ("2030-01-01T05:30:00.1+05:30", "2030-01-01T05:30:00.1+05:30"),
        ("2030-06-30T23:59:59.999999999-09:45", "2030-06-30T23:59:59.999999999-09:45"),
        ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z"),  # Go's zero time: 4-digit year
        ("0999-12-31T23:59:59.9+01:00", "0999-12-31T23:59:59.9+01:00"),
        ("9999-12-31T23:59:59.999999999Z", "9999-12-31T23:59:59.999999999Z"),
    ],
)
def test_go_time_form(written: str, go_form: str) -> None:
    parsed = GoTime.parse(written)
    assert parsed.format() == go_form
    assert str(parsed) == go_form
    assert GoTime.parse(go_form).format() == go_form


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2030-01-01",
        "2030-01-01T00:00:00",  # no zone
        "2030-01-01 00:00:00Z",
        "2030-01-01t00:00:00Z",
        "2030-01-01T00:00:00z",
        "2030-01-01T00:00:00.Z",
        "2030-01-01T00:00:00+0100",
        "2030-01-01T00:00:00+01",
        "2030-01-01T00:00:00Z\n",  # `$` would have allowed this
        " 2030-01-01T00:00:00Z",
        "٢٠٣٠-01-01T00:00:00Z",  # Arabic-Indic digits: `\d` without re.ASCII
        "2030-13-01T00:00:00Z",
        "2030-02-30T00:00:00Z",
        "2030-01-01T24:00:00Z",
        "2030-01-01T00:60:00Z",
        "2030-01-01T00:00:60Z",
        "2030-01-01T00:00:00+24:00",
        "2030-01-01T00:00:00+01:60",
        "12030-01-01T00:00:00Z",
        "0000-01-01T00:00:00Z",
    ],
)
def test_go_time_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        GoTime.parse(text)


offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59)


@st.composite
def go_strings(draw: st.DrawFn) -> tuple[str, datetime, int]:
    """A Go-form RFC3339Nano string (built independently of GoTime) and its instant."""
    base = draw(st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31)))
    base = base.replace(microsecond=0)
    nanos = draw(st.integers(min_value=0, max_value=999_999_999) | st.sampled_from([0, 5, 10**8]))
    minutes = draw(offsets | st.just(0))
    frac = f"{nanos:09d}".rstrip("0")
    zone = (
        "Z"
        if minutes == 0
        else f"{'+' if minutes > 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    )
    text = (
        f"{base.year:04d}-{base.month:02d}-{base.day:02d}T{base.hour:02d}:{base.minute:02d}:"
        f"{base.second:02d}{'.' + frac if frac else ''}{zone}"
    )
    instant = base.replace(tzinfo=timezone(timedelta(minutes=minutes)))
    return text, instant, nanos


@SETTINGS
@given(go_strings())
@example(("2030-01-01T00:00:00.1Z", datetime(2030, 1, 1, tzinfo=UTC), 100_000_000))
def test_go_form_round_trip(case: tuple[str, datetime, int]) -> None:
    text, instant, nanos = case
    parsed = GoTime.parse(text)
    assert parsed.format() == text
    assert parsed.nanos == nanos
    assert parsed.to_datetime() == (instant + timedelta(microseconds=nanos // 1000)).astimezone(UTC)


@SETTINGS
@given(go_strings(), st.integers(min_value=0, max_value=8))
def test_trailing_zeros_are_trimmed(case: tuple[str, datetime, int], pad: int) -> None:
    text, _, nanos = case
    head, dot, rest = text.partition(".")
    if not dot:  # a zero fraction written with 1..9 zeros, which Go drops with the dot
        padded = f"{text[:19]}.{'0' * (pad + 1)}{text[19:]}"
    else:
        trimmed = f"{nanos:09d}".rstrip("0")
        zone = rest[len(trimmed) :]
        padded = f"{head}.{trimmed.ljust(min(9, len(trimmed) + pad), '0')}{zone}"
    assert GoTime.parse(padded).format() == text


@SETTINGS
@given(go_strings(), st.integers(min_value=-2_000_000, max_value=2_000_000))
def test_before_is_strict_instant_order(case: tuple[str, datetime, int], shift_us: int) -> None:
    text, instant, nanos = case
    parsed = GoTime.parse(text)
    when = instant + timedelta(microseconds=nanos // 1000 + shift_us)
    # to the microsecond: `when` is strictly later exactly when shifted forwards
    # (sub-microsecond nanos never make an instant later than a whole microsecond after it).
    assert parsed.before(when) == (shift_us > 0)


def test_before_handles_extreme_years() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert GoTime.parse("0001-01-01T00:00:00+01:00").before(now)
    assert not GoTime.parse("9999-12-31T23:59:59.999999999-01:00").before(now)


def test_from_datetime_keeps_zone_and_micros() -> None:
    when = datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=timezone(timedelta(hours=-5)))
    assert GoTime.from_datetime(when).format() == "2030-01-02T03:04:05.123456-05:00"
    assert GoTime.from_datetime(when.astimezone(UTC)).format() == "2030-01-02T08:04:05.123456Z"
    with pytest.raises(ValueError):
        GoTime.from_datetime(datetime(2030, 1, 1))  # naive
