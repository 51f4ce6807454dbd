"""The offline machine's trust state per GUN: what it verified, approved and signed.

Layout under the offline home: `trust/<gun-slug>/state.json` (canonical JSON:
the newest trusted root envelope, the newest version trusted per role, and the
requests signed here) and `trust/<gun-slug>/bodies/<sha256>.json` (canonical
`signed` bodies this machine verified or computed and signed, so a thin request
can refer to them by digest). Nothing here is secret.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ceremony.bundles import sha256_hex
from ceremony.canonical import encode_canonical, parse_json
from ceremony.errors import MalformedInput
from ceremony.fsutil import atomic_write, private_dir
from ceremony.metadata import Envelope, Root, parse_envelope

STATE_VERSION = 1


def gun_slug(gun: str) -> str:
    """A file-name-safe, reversible rendering of a GUN."""
    return re.sub(r"[^A-Za-z0-9._-]", lambda m: f"%{ord(m.group()):02X}", gun)


@dataclass(frozen=True, slots=True)
class SignedRecord:
    """A request this machine signed: when (by the request's own clock) and which bodies."""

    request_id: str
    digest: str
    created: str
    roles: Mapping[str, tuple[int, str]]  # role -> (version, body sha256)

    def to_dict(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "digest": self.digest,
            "roles": {r: {"body_sha256": d, "version": v} for r, (v, d) in self.roles.items()},
        }


@dataclass(frozen=True, slots=True)
class TrustState:
    gun: str
    root: Envelope[Root]
    versions: Mapping[str, int] = field(default_factory=dict)
    signed: Mapping[str, SignedRecord] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        return encode_canonical(
            {
                "format": STATE_VERSION,
                "gun": self.gun,
                "root": base64.b64encode(self.root.to_bytes()).decode("ascii"),
                "signed": {rid: rec.to_dict() for rid, rec in self.signed.items()},
                "versions": dict(self.versions),
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> TrustState:
        what = "trust state file"
        d = parse_json(data, what=what)
        try:
            if d["format"] != STATE_VERSION:
                raise MalformedInput(f"The {what} has an unknown format; upgrade this tool.")
            root = parse_envelope(base64.b64decode(d["root"]), Root, what="trusted root")
            signed = {
                rid: SignedRecord(
                    rid,
                    rec["digest"],
                    rec["created"],
                    {
                        r: (int(x["version"]), str(x["body_sha256"]))
                        for r, x in rec["roles"].items()
                    },
                )
                for rid, rec in d["signed"].items()
            }
            versions = {str(k): int(v) for k, v in d["versions"].items()}
            return cls(str(d["gun"]), root, versions, signed)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise MalformedInput(f"The {what} is damaged; restore it from a backup.") from exc


class TrustStore:
    """Trust states under `HOME/trust/`."""

    def __init__(self, home: Path) -> None:
        self.root_dir = home / "trust"

    def _dir(self, gun: str) -> Path:
        return self.root_dir / gun_slug(gun)

    def load(self, gun: str) -> TrustState | None:
        path = self._dir(gun) / "state.json"
        if not path.exists():
            return None
        state = TrustState.from_bytes(path.read_bytes())
        if state.gun != gun:
            raise MalformedInput(
                f"The trust state stored for {gun} names {state.gun}; the home is damaged."
            )
        return state

    def body(self, gun: str, body_sha256: str) -> bytes | None:
        """A canonical body this machine verified or signed, by digest (checked on read)."""
        if not re.fullmatch(r"[0-9a-f]{64}", body_sha256):
            return None
        path = self._dir(gun) / "bodies" / f"{body_sha256}.json"
        if not path.exists():
            return None
        data = path.read_bytes()
        return data if sha256_hex(data) == body_sha256 else None

    def save(self, state: TrustState, bodies: Iterable[bytes]) -> None:
        """Store the bodies first, then the state, so a crash never leaves a state naming missing bodies."""
        directory = private_dir(self._dir(state.gun))
        body_dir = private_dir(directory / "bodies")
        for body in bodies:
            path = body_dir / f"{sha256_hex(body)}.json"
            if not path.exists():
                atomic_write(path, body, mode=0o644)
        atomic_write(directory / "state.json", state.to_bytes(), mode=0o644)

    def guns(self) -> list[str]:
        if not self.root_dir.exists():
            return []
        out = []
        for d in sorted(self.root_dir.iterdir()):
            state = d / "state.json"
            if state.exists():
                out.append(TrustState.from_bytes(state.read_bytes()).gun)
        return out
