"""Bad input never escapes as anything but a one-sentence CeremonyError.

Hypothesis mutates valid documents (byte flips, truncation, spliced JSON values,
replaced fields) and feeds them to every parser an operator's file reaches:
requests, signatures, public keys, Notary metadata, key files, and the offline
review itself. Any other exception type is a traceback waiting to happen.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ceremony.core.changes import AddTarget, InitRepository, SetExpiry
from ceremony.core.documents import (
    PublicKeyEntry,
    PublicKeysDocument,
    Request,
    RoleSignatures,
    SignaturesDocument,
)
from ceremony.core.errors import CeremonyError
from ceremony.core.gotime import GoTime
from ceremony.core.metadata import Envelope, FileMeta, parse_any
from ceremony.core.plan import plan
from ceremony.offline.review import review_request
from ceremony.signing.certificates import make_root_certificate
from ceremony.signing.keyfile import decode_key_file, encode_key_file
from ceremony.signing.private import PrivateKey, sign

NOW = datetime(2030, 1, 1, tzinfo=UTC)
GUN = "example.com/fuzz/app"
SETTINGS = settings(
    max_examples=int(__import__("os").environ.get("FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _build() -> dict[str, bytes]:
    root_private = PrivateKey.generate_ecdsa()
    root_key = make_root_certificate(root_private, GUN, NOW)
    targets_private = PrivateKey.generate_ecdsa()
    targets_key = targets_private.public_key()
    server = PrivateKey.generate_ecdsa().public_key()
    changes = [
        InitRepository((root_key,), 1, (targets_key,), 1, server, server),
        AddTarget("targets", "app<&>", FileMeta.for_bytes(b"app")),
        SetExpiry("root", GoTime.from_datetime(NOW + timedelta(days=3650))),
        SetExpiry("targets", GoTime.from_datetime(NOW + timedelta(days=1095))),
    ]
    result = plan({}, changes)
    request = Request.build(
        gun=GUN,
        created=GoTime.from_datetime(NOW),
        nonce="ab" * 16,
        base=[],
        changes=changes,
        plan=result,
    )
    targets = result.roles["targets"]
    signature = sign(targets_private, targets_key, targets.signed_bytes)
    envelope = Envelope.create(targets.body, (signature,))
    sigs = SignaturesDocument(
        request.id, request.digest, GUN, (RoleSignatures("targets", targets.digest, (signature,)),)
    )
    pubkeys = PublicKeysDocument(
        GUN, (PublicKeyEntry("root", root_private.canonical_id, root_key),)
    )
    keyfile = encode_key_file(
        targets_private, role="targets", gun=GUN, passphrase="fuzz-passphrase"
    )
    return {
        "request": request.to_bytes(),
        "signatures": sigs.to_bytes(),
        "pubkeys": pubkeys.to_bytes(),
        "metadata": envelope.to_bytes(),
        "keyfile": keyfile,
    }


DOCS = _build()


def review(data: bytes) -> object:
    return review_request(Request.from_bytes(data), None, lambda _d: None, NOW)


PARSERS: dict[str, Any] = {
    "request": review,
    "signatures": SignaturesDocument.from_bytes,
    "pubkeys": PublicKeysDocument.from_bytes,
    "metadata": parse_any,
    "keyfile": lambda data: decode_key_file(data, "fuzz-passphrase"),
}


def only_operator_errors(parse: Any, data: bytes) -> None:
    try:
        parse(data)
    except CeremonyError as exc:
        assert exc.message.strip() and "\n" not in exc.message
    # Anything else (KeyError, TypeError, ValueError, ...) fails the test with its traceback.


@pytest.mark.parametrize("kind", sorted(DOCS))
def test_valid_documents_parse(kind: str) -> None:
    PARSERS[kind](DOCS[kind])


@pytest.mark.parametrize("kind", sorted(DOCS))
@SETTINGS
@given(data=st.data())
def test_byte_mutations(kind: str, data: st.DataObject) -> None:
    original = bytearray(DOCS[kind])
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        at = data.draw(st.integers(0, max(len(original) - 1, 0)))
        if op == "flip" and original:
            original[at] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "cut":
            del original[at:]
        elif op == "insert":
            original[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        elif original:
            del original[at : at + data.draw(st.integers(1, 16))]
    only_operator_errors(PARSERS[kind], bytes(original))


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


@pytest.mark.parametrize("kind", ["request", "signatures", "pubkeys", "metadata"])
@SETTINGS
@given(data=st.data())
def test_structural_mutations(kind: str, data: st.DataObject) -> None:
    doc = json.loads(DOCS[kind])
    paths = [p for p in _paths(doc) if p]
    path = data.draw(st.sampled_from(paths))
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if data.draw(st.booleans()):
        parent[path[-1]] = data.draw(JSON_VALUES)
    elif isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent.pop(path[-1])
    only_operator_errors(PARSERS[kind], json.dumps(doc, separators=(",", ":")).encode())


@SETTINGS
@given(data=st.data())
def test_reidentified_request_mutations_reach_the_review(data: st.DataObject) -> None:
    """An attacker who fixes the content id gets past the first check; the rest must hold."""
    doc = json.loads(DOCS["request"])
    paths = [p for p in _paths(doc) if p and p[0] not in ("id", "media_type")]
    path = data.draw(st.sampled_from(paths))
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = data.draw(JSON_VALUES)
    content = {k: v for k, v in doc.items() if k != "id"}
    try:
        doc["id"] = Request.content_id(content)
    except ValueError:
        return  # not representable in canonical JSON (a float, a huge integer): refused earlier
    only_operator_errors(
        review, json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    )
