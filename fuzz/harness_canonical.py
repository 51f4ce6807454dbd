"""The canonical JSON reader: the fast (orjson) path and the strict reference agree.

Properties: both parsers accept the same inputs and read the same value; the
canonical encoding of an accepted value is written the same by both encoders, is
read back as the same value, and is a fixed point (so a canonical input is
re-encoded to exactly its own bytes).
"""

from __future__ import annotations

from ceremony.core.canonical import encode_canonical, parse_json, reference_encode, reference_parse
from fuzz.driver import REFUSED, Target, expect, json_mutator, refused


def check(data: bytes) -> None:
    fast = refused(lambda: parse_json(data))
    slow = refused(lambda: reference_parse(data))
    expect((fast is REFUSED) == (slow is REFUSED), "the fast and reference parsers disagree")
    if fast is REFUSED:
        return
    again = encode_canonical(fast)
    expect(again == reference_encode(fast), "the fast and reference encoders disagree")
    expect(again == reference_encode(slow), "the two parsers read different values")
    expect(encode_canonical(parse_json(again)) == again, "canonical form is not a fixed point")
    if parse_json(data) is not None and again == data:
        expect(reference_parse(again) == fast, "a canonical input does not read back")


TARGET = Target(
    "canonical",
    check,
    "canonical/strict JSON (ceremony.core.canonical.parse_json vs reference_parse)",
    json_mutator,
)
