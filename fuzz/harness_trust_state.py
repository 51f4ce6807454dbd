"""The offline home's trust state file (HOME/trust/<gun>/state.json), a damaged-home reader.

A damaged file must be `HomeDamaged` (exit 3) with one sentence. Property of a
state read: it reads back equal from the bytes it writes.
"""

from __future__ import annotations

from ceremony.offline.trust import TrustState
from fuzz.driver import REFUSED, Target, expect, json_mutator, refused


def check(data: bytes) -> None:
    state = refused(lambda: TrustState.from_bytes(data))
    if state is REFUSED:
        return
    written = state.to_bytes()
    again = refused(lambda: TrustState.from_bytes(written))
    expect(again is not REFUSED, "a written trust state is refused")
    expect(again.to_bytes() == written, "the trust state is not a fixed point")
    expect(again.gun == state.gun and dict(again.versions) == dict(state.versions), "fields change")


TARGET = Target(
    "trust_state",
    check,
    "the offline trust state file (ceremony.offline.trust.TrustState.from_bytes)",
    json_mutator,
    max_len=65536,
)
