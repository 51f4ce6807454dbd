"""Notary metadata: envelopes of root, targets (and delegations), snapshot and timestamp.

Each input is read by `parse_any` (dispatching on `_type`) and by `parse_envelope`
for one fixed type. Properties of an accepted file: the typed body survives
`to_dict`/`from_dict`, and the envelope it writes reads back to the same body and
signatures and is a fixed point.
"""

from __future__ import annotations

from typing import Any

from ceremony.core.metadata import (
    Envelope,
    Root,
    Snapshot,
    Targets,
    Timestamp,
    parse_any,
    parse_envelope,
)
from fuzz.driver import REFUSED, Target, expect, json_mutator, refused

_TYPES = (Root, Targets, Snapshot, Timestamp)


def _properties(env: Envelope[Any]) -> None:
    body = env.body
    expect(type(body).from_dict(body.to_dict()) == body, "to_dict/from_dict is not a round trip")
    written = env.to_bytes()
    again = refused(lambda: parse_any(written))
    expect(again is not REFUSED, "the envelope written for an accepted file is refused")
    expect(again.body == body, "the written envelope reads back to another body")
    expect(again.signatures == env.signatures, "the written envelope has other signatures")
    expect(again.to_bytes() == written, "the written envelope is not a fixed point")
    expect(again.signed_bytes == env.signed_bytes, "signed bytes change on a round trip")
    # (`signed_map_bytes` may differ from `signed_bytes`: custom data holding <, >, & or
    # U+2028/2029 is HTML-escaped as Go's RawMessage, not in the re-canonicalised map;
    # `Envelope.is_go_fixed_point` reports exactly that.)


def check(data: bytes) -> None:
    env = refused(lambda: parse_any(data))
    if env is not REFUSED:
        _properties(env)
    kind = _TYPES[len(data) % len(_TYPES)]
    typed = refused(lambda: parse_envelope(data, kind))
    if typed is not REFUSED:
        expect(env is not REFUSED and typed.body == env.body, "typed and untyped parses differ")


TARGET = Target(
    "metadata",
    check,
    "Notary metadata envelopes (ceremony.core.metadata.parse_any / parse_envelope, typed from_dict)",
    json_mutator,
    max_len=65536,
)
