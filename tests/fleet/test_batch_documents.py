"""The batch documents: strict, one digest over every inner request, routing by media type."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from ceremony.core.batch import BatchRequest, BatchSignatures, media_type_of
from ceremony.core.canonical import encode_canonical
from ceremony.core.changes import InitRepository
from ceremony.core.documents import (
    BATCH_REQUEST_MEDIA_TYPE,
    BATCH_SIGNATURES_MEDIA_TYPE,
    Request,
    SignaturesDocument,
)
from ceremony.core.errors import MalformedInput, VerificationFailed
from ceremony.signing.certificates import make_root_certificate
from ceremony.signing.private import PrivateKey
from tests.attacker import forge

NOW = datetime(2026, 12, 4, tzinfo=UTC)


def request(gun: str) -> Request:
    root = PrivateKey.generate_ecdsa()
    keys = [PrivateKey.generate_ecdsa().public_key() for _ in range(3)]
    change = InitRepository(
        (make_root_certificate(root, gun, NOW),), 1, (keys[0],), 1, keys[1], keys[2]
    )
    return forge(gun, None, [change], now=NOW)


def test_a_batch_round_trips_and_its_digest_covers_every_inner_request() -> None:
    batch = BatchRequest((request("example.com/a"), request("example.com/b")))
    data = batch.to_bytes()
    assert media_type_of(data) == BATCH_REQUEST_MEDIA_TYPE
    again = BatchRequest.from_bytes(data)
    assert again.digest == batch.digest and [r.id for r in again.requests] == [
        r.id for r in batch.requests
    ]
    other = BatchRequest((batch.requests[0], request("example.com/b")))
    assert other.digest != batch.digest


def test_an_edited_batch_or_inner_request_is_refused() -> None:
    batch = BatchRequest((request("example.com/a"), request("example.com/b")))
    doc = json.loads(batch.to_bytes())
    doc["requests"].pop()
    with pytest.raises(VerificationFailed, match="altered after export"):
        BatchRequest.from_bytes(encode_canonical(doc))
    doc = json.loads(batch.to_bytes())
    doc["requests"][0]["created"] = "2030-01-01T00:00:00Z"
    with pytest.raises(VerificationFailed, match="does not match its id"):
        BatchRequest.from_bytes(encode_canonical(doc))
    with pytest.raises(MalformedInput, match="twice"):
        BatchRequest((batch.requests[0], batch.requests[0]))
    with pytest.raises(MalformedInput, match="not a batch request"):
        BatchRequest.from_bytes(batch.requests[0].to_bytes())


def test_batch_signatures_round_trip_and_name_the_skipped() -> None:
    inner = SignaturesDocument("a" * 32, "b" * 64, "example.com/a", ())
    document = BatchSignatures("c" * 32, "d" * 64, (inner,), ("example.com/b",))
    data = document.to_bytes()
    assert media_type_of(data) == BATCH_SIGNATURES_MEDIA_TYPE
    assert media_type_of(b"not json") is None
    parsed = BatchSignatures.from_bytes(data)
    assert parsed == document
    with pytest.raises(MalformedInput, match="twice"):
        BatchSignatures("c" * 32, "d" * 64, (inner, inner))
