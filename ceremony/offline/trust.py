"""The offline machine's trust state per GUN: what it verified, and everything it signed.

Layout under the offline home::

    trust/.lock                         held for the whole read-check-record step of `sign`
    trust/<gun folder>/state.json       canonical JSON, see `TrustState`
    trust/<gun folder>/bodies/<sha256>.json
                                        canonical `signed` bodies this machine verified or
                                        computed and signed, so a thin request can name them
    trust-forgotten/<gun folder>-<time>/ a state dropped by `ceremony trust forget`, kept

The state holds the newest root this machine trusts (reached by a verified
chain), the newest version it verified for each role (a floor: an older base is
a rollback), and every request it signed with, per role, the version, the
digest of the body and the keys that signed it. From those records the review
finds equivocation (two bodies for one role and version), bases older than
what was signed here (a request abandoned or hidden by the online machine) and
replays. Nothing here is secret.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ceremony.core.canonical import encode_canonical
from ceremony.core.documents import sha256_hex
from ceremony.core.errors import HomeDamaged, MalformedInput
from ceremony.core.fields import read_home_file
from ceremony.core.gun import gun_folder
from ceremony.core.metadata import Envelope, Root, parse_envelope
from ceremony.edge.fsutil import (
    atomic_write,
    locked,
    private_dir,
    read_home_file_bytes,
    sweep_temporaries,
)

STATE_FORMAT = 2
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class SignedRole:
    """One role a request made this machine sign: the version, the body, and the keys used."""

    version: int
    body_sha256: str
    keys: tuple[str, ...]  # metadata key ids (as in the signatures) that signed it here

    def to_dict(self) -> dict[str, Any]:
        return {"body_sha256": self.body_sha256, "keys": list(self.keys), "version": self.version}


@dataclass(frozen=True, slots=True)
class SignedRecord:
    """A request this machine signed."""

    request_id: str
    digest: str
    created: str  # by the request's (online) clock
    signed_at: tuple[str, ...]  # this machine's clock, each time it signed (`--again` adds one)
    roles: Mapping[str, SignedRole]
    acknowledged: tuple[str, ...] = ()  # what the operator acknowledged by name

    def to_dict(self) -> dict[str, Any]:
        return {
            "acknowledged": list(self.acknowledged),
            "created": self.created,
            "digest": self.digest,
            "roles": {role: signed.to_dict() for role, signed in self.roles.items()},
            "signed_at": list(self.signed_at),
        }

    @classmethod
    def from_dict(cls, request_id: str, d: Any) -> SignedRecord:
        roles = {
            str(role): SignedRole(
                int(r["version"]), str(r["body_sha256"]), tuple(str(k) for k in r.get("keys", ()))
            )
            for role, r in d["roles"].items()
        }
        signed_at = d.get("signed_at", [d["created"]])  # format 1 kept no signing time
        return cls(
            request_id,
            str(d["digest"]),
            str(d["created"]),
            tuple(str(t) for t in signed_at),
            roles,
            tuple(str(a) for a in d.get("acknowledged", ())),
        )


@dataclass(frozen=True, slots=True)
class TrustState:
    gun: str
    root: Envelope[Root]
    versions: Mapping[str, int] = field(default_factory=dict)  # newest verified, per role
    requests: Mapping[str, SignedRecord] = field(default_factory=dict)  # signed here, by id

    def signed_versions(self, role: str) -> list[tuple[int, str, SignedRecord]]:
        """(version, body digest, request) for every time this machine signed `role`."""
        return [
            (signed.version, signed.body_sha256, record)
            for record in self.requests.values()
            for r, signed in record.roles.items()
            if r == role
        ]

    def newest_signed(self, role: str) -> int:
        """The newest version of `role` this machine signed (0 if none)."""
        return max((v for v, _, _ in self.signed_versions(role)), default=0)

    def to_bytes(self) -> bytes:
        return encode_canonical(
            {
                "format": STATE_FORMAT,
                "gun": self.gun,
                "requests": {rid: rec.to_dict() for rid, rec in self.requests.items()},
                "root": base64.b64encode(self.root.to_bytes()).decode("ascii"),
                "versions": dict(self.versions),
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> TrustState:
        f = read_home_file(data, "trust state file")
        version = f.integer("format")
        if version not in (1, STATE_FORMAT):
            raise f.fail("has a format this version of the tool does not know; upgrade it")
        try:
            root = parse_envelope(base64.b64decode(f.text("root")), Root, what="trusted root")
            raw = f.mapping("requests" if version == STATE_FORMAT else "signed")
            requests = {str(rid): SignedRecord.from_dict(str(rid), rec) for rid, rec in raw.items()}
            versions = {str(k): int(v) for k, v in f.mapping("versions").items()}
            gun = f.text("gun")
        except (KeyError, TypeError, AttributeError, ValueError, MalformedInput) as exc:
            raise f.fail("is damaged; restore it from a backup") from exc
        f.done()
        return cls(gun, root, versions, requests)


def _home_bytes(path: Path) -> bytes:
    """A trust store file seen a moment ago: gone now, or not a regular file, it is damaged."""
    data = read_home_file_bytes(path, "trust store file")
    if data is None:
        raise HomeDamaged(f"The trust store file {path} vanished while it was read: run again.")
    return data


class TrustStore:
    """Trust states under `HOME/trust/`."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.root_dir = home / "trust"

    def _dir(self, gun: str) -> Path:
        return self.root_dir / gun_folder(gun)

    @contextmanager
    def locked(self, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """Hold the trust store's lock: no two commands read, check and record at once."""
        with locked(self.root_dir / ".lock", on_wait=on_wait):
            sweep_temporaries(self.root_dir)  # left by a writer killed mid-write
            yield

    def load(self, gun: str) -> TrustState | None:
        path = self._dir(gun) / "state.json"
        if not path.exists():
            return None
        state = TrustState.from_bytes(_home_bytes(path))
        if state.gun != gun:
            raise HomeDamaged(
                f"The trust state stored for {gun} names {state.gun}: the home is damaged; "
                "restore it from a backup."
            )
        return state

    def body(self, gun: str, body_sha256: str) -> bytes | None:
        """A canonical body this machine verified or signed, by digest (checked on read)."""
        if not _HEX64.fullmatch(body_sha256):
            return None
        path = self._dir(gun) / "bodies" / f"{body_sha256}.json"
        if not path.exists():
            return None
        data = _home_bytes(path)
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

    def forget(self, gun: str, stamp: str) -> Path:
        """Move the GUN's trust state aside (never delete it: it records what was signed)."""
        source = self._dir(gun)
        target = self.home / "trust-forgotten" / f"{gun_folder(gun)}-{stamp}"
        private_dir(target.parent)
        os.replace(source, target)
        return target

    def guns(self) -> list[str]:
        if not self.root_dir.exists():
            return []
        out = []
        for d in sorted(self.root_dir.iterdir()):
            state = d / "state.json"
            if state.exists():
                out.append(TrustState.from_bytes(_home_bytes(state)).gun)
        return out
