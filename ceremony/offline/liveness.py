"""`ceremony key check`: each key signs a liveness challenge, proving it and its secret still work.

The challenge (`ceremony.core.liveness.challenge`) is built here, offline, from
this machine's clock and an optional nonce from the online side; it can never be
mistaken for metadata. Each signature is verified right after it is made, as
every signature is (`ceremony.signing.signer.sign_metadata`). A key that fails
is reported with the reason and left out of the proof; the others still prove
themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ceremony.core.documents import LivenessProof
from ceremony.core.errors import EnvironmentFailure, InputRejected, UsageError
from ceremony.core.liveness import challenge
from ceremony.core.metadata import Signature
from ceremony.signing.keystore import KeyRecord, KeyStore
from ceremony.signing.signer import PassphraseSource


@dataclass(frozen=True, slots=True)
class KeyCheck:
    """One key's outcome: its signature over the challenge, or why it could not sign."""

    record: KeyRecord
    signature: Signature | None
    problem: str | None = None


def keys_to_check(store: KeyStore, key_ids: Sequence[str], gun: str | None) -> list[KeyRecord]:
    """The keys named (ids, fingerprints or prefixes), else every live key (serving `gun`)."""
    if key_ids:
        records = list({r.canonical_id: r for r in map(store.resolve, key_ids)}.values())
        for record in records:
            if record.retired is not None:
                raise InputRejected(
                    f"Key {record.canonical_id[:12]} was retired on {record.retired}; it has "
                    "nothing left to prove."
                )
        return records
    records = [r for r in store.records() if r.retired is None and (gun is None or gun in r.guns)]
    if not records:
        where = f" serving {gun}" if gun else ""
        raise UsageError(f"No live key{where} is in the store, so there is nothing to check.")
    return records


def check_keys(
    store: KeyStore,
    records: Sequence[KeyRecord],
    when: str,
    nonce: bytes,
    passphrase_for: PassphraseSource,
) -> list[KeyCheck]:
    """Sign the challenge for (`when`, `nonce`) with each key; a failure is kept as a reason."""
    message = challenge(when, nonce)
    results: list[KeyCheck] = []
    for record in records:
        path = store.file_of(record)
        if path is not None and not path.is_file():
            results.append(KeyCheck(record, None, f"its key file {path} is missing"))
            continue
        try:
            signer = store.signer_for(record.public, passphrase_for)
            if signer is None:
                results.append(KeyCheck(record, None, "its private half is not on this machine"))
                continue
            results.append(KeyCheck(record, signer.sign(message)))
        except (InputRejected, EnvironmentFailure) as exc:
            results.append(KeyCheck(record, None, exc.message.rstrip(".")))
        except OSError as exc:
            results.append(KeyCheck(record, None, f"its key cannot be read ({exc.strerror})"))
    return results


def proof_of(checks: Sequence[KeyCheck], when: str, nonce: bytes) -> LivenessProof | None:
    """The proof document for the keys that signed (None if none did)."""
    signatures = tuple(c.signature for c in checks if c.signature is not None)
    return LivenessProof(when, nonce.hex(), signatures) if signatures else None
