"""Batch documents: one request and one signatures document for many repositories.

A batch request carries, per repository, exactly the request a single-repository
export makes (full or thin); the offline half verifies and reviews each on its own,
with every trust rule. What the batch adds is only the envelope and one digest that
covers every inner request: SHA-256 over the canonical list of (GUN, request id,
request digest), each inner digest itself covering its thin form. Both halves show
that digest as words, once for the whole batch. A full and a thin export of one
batch have the same id and digest.

A batch signatures document carries one signatures document per repository signed
and names the repositories the keyholder skipped (`--skip`), so the online half
reports them rather than losing them silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ceremony.core.canonical import encode_canonical
from ceremony.core.documents import (
    BATCH_REQUEST_MEDIA_TYPE,
    BATCH_SIGNATURES_MEDIA_TYPE,
    Request,
    SignaturesDocument,
    open_document,
    sha256_hex,
)
from ceremony.core.errors import MalformedInput, VerificationFailed
from ceremony.core.fields import Fields
from ceremony.core.gun import check_gun

MAX_BATCH = 10_000  # repositories in one batch


def media_type_of(data: bytes) -> str | None:
    """The media type a document declares at its top level, or None (not JSON, none given).

    This only routes a file to the right strict parser, which checks everything again.
    """
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    media = value.get("media_type") if isinstance(value, dict) else None
    return media if isinstance(media, str) else None


def _digest_of(entries: Iterable[tuple[str, str, str]]) -> str:
    listing = [{"digest": d, "gun": g, "id": i} for g, i, d in entries]
    return sha256_hex(
        encode_canonical({"media_type": BATCH_REQUEST_MEDIA_TYPE, "requests": listing})
    )


def _check_unique(guns: Sequence[str], what: str) -> None:
    seen: set[str] = set()
    for gun in guns:
        if gun in seen:
            raise MalformedInput(f"The {what} names {gun} twice: export each repository once.")
        seen.add(gun)


@dataclass(frozen=True, slots=True)
class BatchRequest:
    """One request per repository, in the order exported."""

    requests: tuple[Request, ...]

    def __post_init__(self) -> None:
        if not self.requests:
            raise MalformedInput("The batch request carries no request.")
        if len(self.requests) > MAX_BATCH:
            raise MalformedInput(f"The batch request carries more than {MAX_BATCH} requests.")
        _check_unique([r.gun for r in self.requests], "batch request")

    @property
    def digest(self) -> str:
        """Covers every inner request (each by its digest): read aloud once for the batch."""
        return _digest_of((r.gun, r.id, r.digest) for r in self.requests)

    @property
    def id(self) -> str:
        return self.digest[:32]

    @property
    def thin(self) -> bool:
        return any(r.thin for r in self.requests)

    def to_bytes(self, *, thin: bool = False) -> bytes:
        return encode_canonical(
            {
                "id": self.id,
                "media_type": BATCH_REQUEST_MEDIA_TYPE,
                "requests": [r.to_dict(thin=thin) for r in self.requests],
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> BatchRequest:
        """Every inner request parsed exactly as a single request file is (`Request.from_bytes`)."""
        f = Fields(open_document(data, BATCH_REQUEST_MEDIA_TYPE), "The batch request")
        f.text("media_type")
        claimed = f.hex("id", 32)
        raw = f.array("requests")
        f.done()
        requests = []
        for inner in raw:
            if not isinstance(inner, dict):
                raise MalformedInput("The batch request holds an entry that is not a request.")
            # An inner request that is not thin carries its base whole; one that is, only digests.
            requests.append(Request.from_bytes(encode_canonical(inner)))
        batch = cls(tuple(requests))
        if batch.id != claimed:
            raise VerificationFailed(
                "The batch request's content does not match its id: it was altered after "
                "export; export it again."
            )
        return batch


@dataclass(frozen=True, slots=True)
class BatchSignatures:
    """The signatures made offline for a batch: one document per repository signed."""

    batch_id: str
    batch_digest: str
    documents: tuple[SignaturesDocument, ...]
    skipped: tuple[str, ...] = ()  # GUNs the keyholder named with --skip

    def __post_init__(self) -> None:
        if len(self.documents) > MAX_BATCH:
            raise MalformedInput(f"The batch signatures carry more than {MAX_BATCH} documents.")
        _check_unique([d.gun for d in self.documents], "batch signatures document")

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch_digest": self.batch_digest,
            "batch_id": self.batch_id,
            "documents": [d.to_dict() for d in self.documents],
            "media_type": BATCH_SIGNATURES_MEDIA_TYPE,
            "skipped": list(self.skipped),
        }

    def to_bytes(self) -> bytes:
        return encode_canonical(self.to_dict())

    @property
    def digest(self) -> str:
        return sha256_hex(self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> BatchSignatures:
        f = Fields(open_document(data, BATCH_SIGNATURES_MEDIA_TYPE), "The batch signatures")
        f.text("media_type")
        batch_id, batch_digest = f.hex("batch_id", 32), f.hex("batch_digest", 64)
        skipped = tuple(check_gun(g, "the batch signatures") for g in f.strings("skipped"))
        raw = f.array("documents")
        f.done()
        documents = []
        for inner in raw:
            if not isinstance(inner, dict):
                raise MalformedInput(
                    "The batch signatures hold an entry that is not a signatures document."
                )
            documents.append(SignaturesDocument.from_bytes(encode_canonical(inner)))
        return cls(batch_id, batch_digest, tuple(documents), skipped)
