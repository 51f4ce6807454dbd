"""The signatures document (offline -> online): accepted documents round-trip."""

from __future__ import annotations

from ceremony.core.documents import SignaturesDocument
from fuzz.driver import REFUSED, Target, expect, json_mutator, refused


def check(data: bytes) -> None:
    doc = refused(lambda: SignaturesDocument.from_bytes(data))
    if doc is REFUSED:
        return
    written = doc.to_bytes()
    again = refused(lambda: SignaturesDocument.from_bytes(written))
    expect(
        again is not REFUSED and again == doc,
        "a written signatures document reads back differently",
    )
    expect(again.to_bytes() == written, "the signatures document is not a fixed point")


TARGET = Target(
    "signatures",
    check,
    "signatures documents (ceremony.core.documents.SignaturesDocument.from_bytes)",
    json_mutator,
)
