"""The signing request (online -> offline).

A request is a content address: almost any edit breaks its id, so byte mutations
alone stop at the id check. Each input is therefore read twice: as it is, and
"repaired" (the digests of carried base files and the id recomputed, then written
canonically), which takes mutations past the id to every field's own check.

Properties of an accepted request: its canonical bytes are the input, it reads
back equal from them, and its thin form keeps its id and digest.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from ceremony.core.canonical import encode_canonical
from ceremony.core.documents import Request
from fuzz.driver import REFUSED, Target, expect, json_mutator, refused

_ALWAYS_CARRIED = ("snapshot", "timestamp")


def _thin_entry(entry: Any) -> Any:
    if isinstance(entry, dict) and entry.get("role") not in _ALWAYS_CARRIED:
        return {k: v for k, v in entry.items() if k != "data"}
    return entry


def repaired(data: bytes) -> bytes | None:
    """The input with its base digests and id recomputed (None if it is not such an object)."""
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict):
            return None
        base = doc.get("base")
        if isinstance(base, list):
            for entry in base:
                if isinstance(entry, dict) and isinstance(entry.get("data"), str):
                    raw = base64.b64decode(entry["data"], validate=True)
                    entry["sha256"] = hashlib.sha256(raw).hexdigest()
        content = {k: v for k, v in doc.items() if k != "id"}
        if isinstance(base, list):
            content["base"] = [_thin_entry(e) for e in base]
        doc["id"] = hashlib.sha256(encode_canonical(content)).hexdigest()[:32]
        return encode_canonical(doc)
    except (ValueError, TypeError, RecursionError, binascii.Error):
        return None  # the harness's own repair gave up: the raw input was still tried


def _properties(request: Request, data: bytes) -> None:
    written = request.to_bytes(thin=request.thin)
    expect(written == data, "an accepted request is not its own canonical bytes")
    again = refused(lambda: Request.from_bytes(written))
    expect(again is not REFUSED and again == request, "a request reads back differently")
    thin = request.thinned()
    thin_bytes = thin.to_bytes(thin=True)
    back = refused(lambda: Request.from_bytes(thin_bytes))
    expect(back is not REFUSED, "the thin form of an accepted request is refused")
    expect(back.id == request.id and back.digest == request.digest, "thinning changes the id")


def check(data: bytes) -> None:
    request = refused(lambda: Request.from_bytes(data))
    if request is not REFUSED:
        _properties(request, data)
    fixed = repaired(data)
    if fixed is not None and fixed != data:
        request = refused(lambda: Request.from_bytes(fixed))
        if request is not REFUSED:
            _properties(request, fixed)


TARGET = Target(
    "request",
    check,
    "signing requests (ceremony.core.documents.Request.from_bytes, raw and id-repaired)",
    json_mutator,
    max_len=65536,
)
