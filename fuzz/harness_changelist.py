"""The notary changelist importer (online.changelist.translate).

Two input forms: raw change files joined by a separator (byte mutations reach the
file bytes), or `{"files": [{"name", "change"}]}` with each change's base64 `data`
held decoded, so the JSON mutator reaches inside it; the harness encodes it back
as notary writes it. Properties of an import: every change it produces writes a
JSON form that reads back to the same change.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from ceremony.core.changes import read_change
from fuzz.driver import REFUSED, Target, expect, json_mutator, refused
from fuzz.seeds import SEPARATOR
from online.changelist import translate

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def _files(data: bytes) -> list[tuple[str, bytes]]:
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("files"), list):
        out = []
        for i, entry in enumerate(doc["files"]):
            if not isinstance(entry, dict):
                continue
            name = entry.get("name") if isinstance(entry.get("name"), str) else f"{i:04d}.change"
            change = entry.get("change")
            try:
                if isinstance(change, dict) and not isinstance(change.get("data"), str | None):
                    inner = json.dumps(change["data"]).encode("utf-8", "surrogatepass")
                    change = {**change, "data": base64.b64encode(inner).decode()}
                blob = json.dumps(change).encode("utf-8", "surrogatepass")
            except (ValueError, TypeError, RecursionError):
                continue  # the harness could not write it: not the importer's concern
            out.append((name, blob))
        return out
    return [(f"{i:04d}_x.change", part) for i, part in enumerate(data.split(SEPARATOR))]


def check(data: bytes) -> None:
    files = _files(data)
    changes = refused(lambda: translate(files, NOW))
    if changes is REFUSED:
        return
    for change in changes:
        written: Any = change.to_dict()
        again = refused(lambda w=written: read_change(json.loads(json.dumps(w, default=_raw)))[0])
        expect(
            again is not REFUSED and again == change, f"{type(change).__name__} does not round-trip"
        )


def _raw(value: Any) -> Any:
    from ceremony.core.canonical import RawJSON

    if isinstance(value, RawJSON):
        return value.value
    raise TypeError(type(value).__name__)


TARGET = Target(
    "changelist",
    check,
    "notary changelists (online.changelist.translate)",
    json_mutator,
)
