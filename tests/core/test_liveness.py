"""The liveness challenge is domain-separated: no nonce turns it into metadata a key would sign.

Whatever nonce the online side (or an attacker controlling it) picks, the message
never starts with `{`, never parses as JSON, and a signature over it never
verifies over any canonical body. Also: the proof document's strict parser, and
the threshold arithmetic `check-liveness` reports.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ceremony.core.canonical import encode_canonical, parse_json
from ceremony.core.documents import LIVENESS_MEDIA_TYPE, LivenessProof
from ceremony.core.errors import CeremonyError, MalformedInput, VerificationFailed
from ceremony.core.keys import verify_signature
from ceremony.core.liveness import (
    LIVENESS_PREFIX,
    MAX_NONCE_BYTES,
    ProofSet,
    RoleKeysListed,
    assess,
    challenge,
    liveness_time,
)
from ceremony.core.metadata import FileMeta, Signature, body_bytes
from ceremony.signing.private import PrivateKey, sign
from tests.core.repos import OfflineRepo

SETTINGS = settings(
    max_examples=int(__import__("os").environ.get("FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
NONCES = st.binary(max_size=MAX_NONCE_BYTES)
TIMES = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)
).map(liveness_time)
REPO = OfflineRepo(gun="example.com/liveness/app")
KEYS = {
    "ecdsa": PrivateKey.generate_ecdsa(),
    "ed25519": PrivateKey(ed25519.Ed25519PrivateKey.generate()),
    "rsa": PrivateKey(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
}


def _bodies(nonce: bytes) -> list[bytes]:
    """Canonical bodies a key might be tricked into signing, some carrying the nonce itself."""
    text = nonce.decode("latin-1")
    attacker_targets = {
        text or "x": FileMeta.for_bytes(nonce),
        LIVENESS_PREFIX.decode("latin-1") + text: FileMeta.for_bytes(b""),
    }
    return [
        body_bytes(REPO.root_body()),
        body_bytes(REPO.targets_body()),
        body_bytes(REPO.targets_body(version=2, targets=attacker_targets)),
        encode_canonical({"nonce": text}),
    ]


@SETTINGS
@given(when=TIMES, nonce=NONCES)
def test_a_challenge_is_never_json_nor_a_body(when: str, nonce: bytes) -> None:
    message = challenge(when, nonce)
    assert message.startswith(LIVENESS_PREFIX)
    assert not message.lstrip().startswith((b"{", b"["))
    with pytest.raises(ValueError):
        json.loads(message)
    with pytest.raises(MalformedInput):
        parse_json(message)
    assert all(not body.startswith(LIVENESS_PREFIX) for body in _bodies(nonce))


@pytest.mark.parametrize("kind", sorted(KEYS))
@SETTINGS
@given(when=TIMES, nonce=NONCES)
def test_a_liveness_signature_never_verifies_over_a_body(
    kind: str, when: str, nonce: bytes
) -> None:
    private = KEYS[kind]
    key = private.public_key()
    message = challenge(when, nonce)
    signature = sign(private, key, message)
    assert verify_signature(key, signature, message)  # the check can fail: it verifies here
    for body in _bodies(nonce):
        assert not verify_signature(key, signature, body)


def test_time_and_nonce_are_bound() -> None:
    private = KEYS["ecdsa"]
    key = private.public_key()
    when = liveness_time(datetime(2030, 5, 6, 7, 8, 9, tzinfo=UTC))
    assert when == "2030-05-06T07:08:09Z"
    signature = sign(private, key, challenge(when, b"\x01\x02"))
    assert not verify_signature(key, signature, challenge(when, b"\x01\x03"))
    later = liveness_time(datetime(2030, 5, 6, 7, 8, 10, tzinfo=UTC))
    assert not verify_signature(key, signature, challenge(later, b"\x01\x02"))
    with pytest.raises(MalformedInput):
        challenge(when, b"x" * (MAX_NONCE_BYTES + 1))


# ---------------------------------------------------------------------------
# the proof document


def _proof(nonce: bytes = b"\xab\xcd") -> LivenessProof:
    when = "2030-01-02T03:04:05Z"
    private = KEYS["ecdsa"]
    signature = sign(private, private.public_key(), challenge(when, nonce))
    return LivenessProof(when, nonce.hex(), (signature,))


def test_proof_round_trip() -> None:
    proof = _proof()
    data = proof.to_bytes()
    assert json.loads(data)["media_type"] == LIVENESS_MEDIA_TYPE
    assert LivenessProof.from_bytes(data) == proof
    assert proof.challenge == challenge(proof.when, b"\xab\xcd")


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda d: d.update(extra=1), "unexpected fields"),
        (lambda d: d.update(when="2030-01-02 03:04:05"), "malformed time"),
        (lambda d: d.update(when="2030-02-30T03:04:05Z"), "outside the calendar"),
        (lambda d: d.update(nonce="abc"), "even number of hex digits"),
        (lambda d: d.update(nonce="ABCD"), "lowercase"),
        (lambda d: d.update(nonce="00" * (MAX_NONCE_BYTES + 1)), "longer than"),
        (lambda d: d.update(signatures=[]), "between 1 and"),
        (lambda d: d.update(signatures=d["signatures"] * 2), "two signatures by one key"),
        (lambda d: d["signatures"][0].update(keyid="zz"), "malformed key id"),
        (
            lambda d: d.update(media_type="application/vnd.notary-ceremony.request.v1+json"),
            "signing request",
        ),
        (lambda d: d.pop("when"), "lacks the field"),
    ],
)
def test_proof_parser_is_strict(change: object, words: str) -> None:
    doc = json.loads(_proof().to_bytes())
    change(doc)  # type: ignore[operator]
    with pytest.raises(MalformedInput) as caught:
        LivenessProof.from_bytes(json.dumps(doc).encode())
    assert words in caught.value.message and "\n" not in caught.value.message


@SETTINGS
@given(data=st.data())
def test_proof_byte_mutations_give_one_sentence(data: st.DataObject) -> None:
    original = bytearray(_PROOF_BYTES)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(original) - 1))
        if data.draw(st.booleans()):
            original[at] ^= 1 << data.draw(st.integers(0, 7))
        else:
            del original[at : at + data.draw(st.integers(1, 16))]
    try:
        LivenessProof.from_bytes(bytes(original))
    except CeremonyError as exc:
        assert exc.message.strip() and "\n" not in exc.message


_PROOF_BYTES = _proof().to_bytes()


# ---------------------------------------------------------------------------
# what check-liveness reports


def _signed(private: PrivateKey, when: str, nonce: bytes = b"") -> Signature:
    return sign(private, private.public_key(), challenge(when, nonce))


def test_assess_counts_proven_keys_per_role_by_canonical_id() -> None:
    when = "2030-01-02T03:04:05Z"
    a, b, c = REPO.root_keys[0], REPO.new_root_key(), REPO.keys["targets"]
    roles = [
        RoleKeysListed("root", (a.key, b.key), 2),  # certificates: matched by canonical id
        RoleKeysListed("targets", (c.key,), 1),
    ]
    proofs = [ProofSet("p.json", when, b"", (_signed(a.private, when), _signed(c.private, when)))]
    result = assess(roles, proofs)
    root, targets = result.roles
    assert (root.proven, root.listed, root.reachable) == (1, 2, False)
    assert (targets.proven, targets.reachable) == (1, True)
    assert [r.role for r in result.unreachable] == ["root"]
    proven = {k.canonical_id: k.proven_at for k in result.keys}
    assert proven[a.private.canonical_id] == when and proven[b.private.canonical_id] is None

    later = (datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC) + timedelta(days=1)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    second = ProofSet("q.json", later, b"", (_signed(b.private, later), _signed(a.private, later)))
    result = assess(roles, [*proofs, second])
    assert not result.unreachable
    assert {k.canonical_id: k.proven_at for k in result.keys}[a.private.canonical_id] == later


def test_assess_refuses_a_bad_signature_and_a_proof_of_other_keys() -> None:
    when = "2030-01-02T03:04:05Z"
    held = REPO.keys["targets"]
    roles = [RoleKeysListed("targets", (held.key,), 1)]
    wrong = _signed(held.private, "2030-01-02T03:04:06Z")
    with pytest.raises(VerificationFailed, match="does not verify"):
        assess(roles, [ProofSet("p.json", when, b"", (wrong,))])
    stranger = PrivateKey.generate_ecdsa()
    with pytest.raises(VerificationFailed, match="proves no key this repository lists"):
        assess(roles, [ProofSet("s.json", when, b"", (_signed(stranger, when),))])
    mixed = ProofSet("m.json", when, b"", (_signed(held.private, when), _signed(stranger, when)))
    assert assess(roles, [mixed]).foreign == (stranger.canonical_id,)
