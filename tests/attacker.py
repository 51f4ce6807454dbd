"""A compromised online machine, for tests of the offline half.

Whoever controls the online machine, the USB stick or the QR channel holds all the
online half holds and our whole library. So this helper rebuilds requests exactly as
`ceremony-online export` does, from any metadata the server ever served and with any
changes, and recomputes every unkeyed digest and the request id. Only keyed checks
(signatures, the offline trust state, acknowledgements by name) can stop it; the tests
built on it show that they do.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ceremony.core.canonical import encode_canonical
from ceremony.core.changes import Change
from ceremony.core.documents import Request
from ceremony.core.metadata import parse_any
from ceremony.core.verify import parse_files
from online.client.config import ServerConfig
from online.client.fetch import fetch_repository
from online.client.http import TrustServer
from online.flow import build_request
from tests.notary_env import NotaryServer


def capture(server: NotaryServer, gun: str) -> dict[str, bytes]:
    """Every file the server serves for `gun` right now (every root version too)."""
    with TrustServer(ServerConfig(url=server.url, tls_ca=server.ca)) as client:
        fetched = fetch_repository(
            client, gun, datetime.now(UTC), full_root_chain=True, expired_ok=True
        )
    assert fetched is not None, f"{gun} is not on the server"
    return dict(fetched.files)


def forge(
    gun: str,
    files: Mapping[str, bytes] | None,
    changes: Sequence[Change],
    *,
    now: datetime | None = None,
    exported: Mapping[str, int] | None = None,
) -> Request:
    """A request for `changes` on `files`, built exactly as the online half builds one."""
    request, _ = build_request(
        gun=gun,
        files=parse_files(files) if files is not None else None,
        changes=changes,
        now=now or datetime.now(UTC),
        nonce=secrets.token_hex(16),
        exported=exported,
    )
    return request


def changes_of(request: Path) -> list[Change]:
    """The changes an honest request carries (without the expiries the export added)."""
    from ceremony.core.changes import SetExpiry, SetVersion

    parsed = Request.from_bytes(request.read_bytes())
    return [c for c in parsed.changes if not isinstance(c, SetExpiry | SetVersion)]


def write(path: Path, request: Request, *, thin: bool = False) -> Path:
    path.write_bytes(request.to_bytes(thin=thin))
    return path


def reidentify(doc: dict[str, Any]) -> None:
    """After editing a request document by hand: fix the base digests and the content id."""
    for entry in doc["base"]:
        if "data" in entry:
            data = base64.b64decode(entry["data"])
            entry["sha256"] = hashlib.sha256(data).hexdigest()
            entry["body_sha256"] = hashlib.sha256(parse_any(data).signed_map_bytes).hexdigest()
    thin = json.loads(json.dumps(doc))
    for entry in thin["base"]:
        if entry["role"] not in ("snapshot", "timestamp"):  # these travel even in a thin request
            entry.pop("data", None)
    thin.pop("id")
    doc["id"] = Request.content_id(thin)


def edit(request: Path, out: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    """Edit a request document with `change`, recompute every digest and the id, write it."""
    doc = json.loads(request.read_bytes())
    change(doc)
    reidentify(doc)
    out.write_bytes(encode_canonical(doc))
    return out


def with_changes(request: Request, changes: Sequence[Change]) -> Request:
    """The same base and creation time with other changes, replanned and re-identified."""
    from ceremony.core.plan import plan
    from online.flow import base_envelopes

    result = plan({r: e.body for r, e in base_envelopes(request.base).items()}, changes)
    return Request.build(
        gun=request.gun,
        created=_created(request),
        nonce=secrets.token_hex(16),
        base=request.base,
        changes=changes,
        plan=result,
    )


def _created(request: Request) -> Any:
    from ceremony.core.gotime import GoTime

    return GoTime.parse(request.created)


def thin_entry(request: Request, role: str, body_sha256: str) -> Request:
    """A thin request whose `role` base entry names another body by digest."""
    base = tuple(
        replace(b, data=None, body_sha256=body_sha256) if b.role == role else b
        for b in request.base
    )
    draft = replace(request, base=base)
    return replace(draft, id=Request.content_id(draft._content()))
