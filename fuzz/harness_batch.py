"""Batch documents (fleet ceremonies): the batch request and the batch signatures.

Properties of an accepted document: it reads back equal from the bytes it writes.
"""

from __future__ import annotations

from ceremony.core.batch import BatchRequest, BatchSignatures
from fuzz.driver import REFUSED, Target, expect, json_mutator, refused


def check(data: bytes) -> None:
    batch = refused(lambda: BatchRequest.from_bytes(data))
    if batch is not REFUSED:
        written = batch.to_bytes(thin=batch.thin)
        again = refused(lambda: BatchRequest.from_bytes(written))
        expect(again is not REFUSED and again == batch, "a batch request reads back differently")
    sigs = refused(lambda: BatchSignatures.from_bytes(data))
    if sigs is not REFUSED:
        written = sigs.to_bytes()
        again = refused(lambda: BatchSignatures.from_bytes(written))
        expect(again is not REFUSED and again == sigs, "batch signatures read back differently")


TARGET = Target(
    "batch",
    check,
    "batch requests and signatures (ceremony.core.batch.BatchRequest / BatchSignatures.from_bytes)",
    json_mutator,
    max_len=65536,
)
