"""Key liveness: a challenge each key signs to prove it (and its passphrase or PIN) still works.

The challenge is built on the offline machine and is domain-separated::

    b"notary-ceremony liveness v1\\x00" + TIME + b"\\x00" + NONCE

TIME is the offline clock in UTC (`2026-01-02T03:04:05Z`); NONCE is optional raw
bytes chosen by the online side (at most 64), to show a proof is fresh. Whatever
the nonce, the message starts with the fixed prefix, so it is never JSON (not a
`{`, not a JSON literal) and never a TUF body: Notary signs and verifies the
canonical `signed` object, which always starts with `{"_type"`. A signature over
a challenge therefore never verifies over a root or targets body; an attacker who
picks the nonce gains no signature it could publish.

Which keys are proven, and whether each role's threshold is reachable with them,
is computed here from the roles the caller read from published metadata.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from ceremony.core.errors import MalformedInput, VerificationFailed
from ceremony.core.keys import canonical_key_id, key_fingerprint, verify_signature
from ceremony.core.metadata import Key, Signature

LIVENESS_PREFIX = b"notary-ceremony liveness v1\x00"
MAX_NONCE_BYTES = 64
_TIME = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$")


def liveness_time(now: datetime) -> str:
    """The challenge's time: `now` in UTC, to the second."""
    if now.tzinfo is None:
        raise ValueError("`now` must be timezone-aware")
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_time(text: str, where: str) -> str:
    """A challenge time as `liveness_time` writes it, or MalformedInput naming `where`."""
    if not _TIME.match(text):
        raise MalformedInput(f"{where} has a malformed time.")
    try:
        datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError as exc:
        raise MalformedInput(f"{where} has a time outside the calendar.") from exc
    return text


def check_nonce(text: str, where: str) -> bytes:
    """A nonce given as lowercase or uppercase hex (empty: none); its raw bytes."""
    if len(text) % 2 or not re.fullmatch(r"[0-9a-fA-F]*", text):
        raise MalformedInput(f"{where} is not an even number of hex digits.")
    raw = bytes.fromhex(text)
    if len(raw) > MAX_NONCE_BYTES:
        raise MalformedInput(f"{where} is longer than {MAX_NONCE_BYTES} bytes.")
    return raw


def challenge(when: str, nonce: bytes) -> bytes:
    """The bytes each key signs: the fixed prefix, the time, a NUL, the nonce."""
    if len(nonce) > MAX_NONCE_BYTES:
        raise MalformedInput(f"A liveness nonce is at most {MAX_NONCE_BYTES} bytes.")
    return LIVENESS_PREFIX + when.encode("ascii") + b"\x00" + nonce


# ---------------------------------------------------------------------------
# checking proofs against the keys a repository lists


@dataclass(frozen=True, slots=True)
class RoleKeysListed:
    """A role as the published metadata lists it: its keys (metadata keys) and threshold."""

    role: str
    keys: tuple[Key, ...]
    threshold: int


@dataclass(frozen=True, slots=True)
class ProvenKey:
    """A listed key and the newest time a valid proof shows it working (None: not proven)."""

    fingerprint: str
    canonical_id: str
    roles: tuple[str, ...]
    proven_at: str | None


@dataclass(frozen=True, slots=True)
class RoleLiveness:
    role: str
    threshold: int
    proven: int
    listed: int

    @property
    def reachable(self) -> bool:
        return self.proven >= self.threshold


@dataclass(frozen=True, slots=True)
class LivenessAssessment:
    keys: tuple[ProvenKey, ...]
    roles: tuple[RoleLiveness, ...]
    foreign: tuple[str, ...]  # canonical ids proven that no role lists

    @property
    def unreachable(self) -> tuple[RoleLiveness, ...]:
        return tuple(r for r in self.roles if not r.reachable)


@dataclass(frozen=True, slots=True)
class ProofSet:
    """One proof document's time, nonce and signatures (keyid = the key's canonical id)."""

    source: str  # for messages: the file it came from
    when: str
    nonce: bytes
    signatures: tuple[Signature, ...]


def assess(roles: Sequence[RoleKeysListed], proofs: Iterable[ProofSet]) -> LivenessAssessment:
    """Which listed keys the proofs prove, and per role whether the threshold is reachable.

    A signature by a listed key that does not verify over its challenge is refused
    (VerificationFailed), whatever else the proofs show. A proof document that
    proves no listed key at all is refused too: it was made for other keys.
    """
    by_id: dict[str, Key] = {}
    key_roles: dict[str, list[str]] = {}
    for spec in roles:
        for key in spec.keys:
            try:
                cid = canonical_key_id(key)
            except MalformedInput:
                continue
            by_id.setdefault(cid, key)
            key_roles.setdefault(cid, []).append(spec.role)
    proven: dict[str, str] = {}
    foreign: list[str] = []
    for proof in proofs:
        message = challenge(proof.when, proof.nonce)
        others = [sig.keyid for sig in proof.signatures if sig.keyid not in by_id]
        foreign.extend(others)
        matched = 0
        for sig in proof.signatures:
            signer = by_id.get(sig.keyid)
            if signer is None:
                continue
            if not verify_signature(signer, sig, message):
                raise VerificationFailed(
                    f"The liveness proof {proof.source} has a signature by key "
                    f"{key_fingerprint(signer)[:16]}… that does not verify: it was altered or "
                    "made for another challenge; make a new one with `ceremony key check`."
                )
            matched += 1
            proven[sig.keyid] = max(proof.when, proven.get(sig.keyid, proof.when))
        if not matched:
            raise VerificationFailed(
                f"The liveness proof {proof.source} proves no key this repository lists "
                f"(it proves {', '.join(k[:12] for k in others) or 'nothing'}): "
                "make the proof with the repository's own keys."
            )
    keys = tuple(
        ProvenKey(key_fingerprint(key), cid, tuple(dict.fromkeys(key_roles[cid])), proven.get(cid))
        for cid, key in by_id.items()
    )
    role_states = []
    for spec in roles:
        ids = set()
        for key in spec.keys:
            try:
                ids.add(canonical_key_id(key))
            except MalformedInput:
                continue
        role_states.append(
            RoleLiveness(spec.role, spec.threshold, len(ids & proven.keys()), len(ids))
        )
    return LivenessAssessment(
        keys,
        tuple(role_states),
        tuple(dict.fromkeys(foreign)),
    )
