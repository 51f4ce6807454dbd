"""The public keys document (offline -> online at a key ceremony): accepted documents round-trip."""

from __future__ import annotations

from ceremony.core.documents import PublicKeysDocument
from fuzz.driver import REFUSED, Target, expect, json_mutator, refused


def check(data: bytes) -> None:
    doc = refused(lambda: PublicKeysDocument.from_bytes(data))
    if doc is REFUSED:
        return
    written = doc.to_bytes()
    again = refused(lambda: PublicKeysDocument.from_bytes(written))
    expect(
        again is not REFUSED and again == doc,
        "a written public keys document reads back differently",
    )
    expect(again.to_bytes() == written, "the public keys document is not a fixed point")


TARGET = Target(
    "public_keys",
    check,
    "public keys documents (ceremony.core.documents.PublicKeysDocument.from_bytes)",
    json_mutator,
)
