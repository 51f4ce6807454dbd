"""The liveness proof (offline -> online before a ceremony): accepted proofs round-trip."""

from __future__ import annotations

from ceremony.core.documents import LivenessProof
from fuzz.driver import REFUSED, Target, expect, json_mutator, refused


def check(data: bytes) -> None:
    proof = refused(lambda: LivenessProof.from_bytes(data))
    if proof is REFUSED:
        return
    written = proof.to_bytes()
    again = refused(lambda: LivenessProof.from_bytes(written))
    expect(
        again is not REFUSED and again == proof, "a written liveness proof reads back differently"
    )
    expect(again.challenge == proof.challenge, "the challenge changes on a round trip")


TARGET = Target(
    "liveness",
    check,
    "liveness proofs (ceremony.core.documents.LivenessProof.from_bytes)",
    json_mutator,
)
