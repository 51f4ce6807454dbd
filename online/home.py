"""The online home: what the online half keeps per GUN until the server confirms it.

Layout (`--home`, env `CEREMONY_ONLINE_HOME`, default `~/.ceremony-online`)::

    HOME/repositories/<GUN, %-quoted>/
        staged.json                      staged changes, with stable ids, in order
        trust/root.json                  the root this machine verified last (trust anchor)
        trust/versions.json              last verified version of every role (rollback check)
        requests/<id>.request.json       every exported request, always the FULL form
        requests/<id>.record.json        when and how it was exported, which staged
                                         changes it carries, whether it was published
        signatures/<id>/<sha256>.signatures.json   every signatures document collected
        publish-log.json                 what was published, when, at which versions
        cache/<sha256>.json              targets files a verified snapshot named (online.cache:
                                         used only for exactly those bytes, else downloaded)
        .lock                            serialises writers of this GUN

Every write is atomic (temp file, fsync, rename) and happens under the GUN's
lock, so a crash or a concurrent command never loses a staged change, a request
or a signature. Nothing here is secret and no private key is ever written: the
online half holds none. Files are canonical JSON so that they diff cleanly.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from ceremony.core.canonical import encode_canonical, parse_json
from ceremony.core.changes import Change, change_from_dict
from ceremony.core.documents import Request, SignaturesDocument
from ceremony.core.errors import CeremonyError, HomeDamaged, InputRejected
from ceremony.core.fields import Fields
from ceremony.core.gun import gun_folder
from ceremony.core.metadata import Envelope, Root, parse_envelope
from ceremony.edge.fsutil import (
    atomic_write,
    locked,
    private_dir,
    read_home_file_bytes,
    sweep_temporaries,
)

_REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def _damaged(path: Path, why: str) -> HomeDamaged:
    return HomeDamaged(
        f"The online home file {path} is damaged ({why}): restore it from a backup or move it aside."
    )


def _read_json(path: Path) -> Any | None:
    """The parsed JSON file, None if absent; a damaged file is an environment failure."""
    data = read_home_file_bytes(path, "online home file")
    if data is None:
        return None
    try:
        return parse_json(data, what=f"file {path.name}")
    except CeremonyError as exc:
        raise _damaged(path, "not valid JSON") from exc


def _home_bytes(path: Path) -> bytes:
    """A file this home listed a moment ago: gone now, or not a regular file, it is damaged."""
    data = read_home_file_bytes(path, "online home file")
    if data is None:
        raise _damaged(path, "it vanished while it was read")
    return data


def _write_json(path: Path, value: Any) -> None:
    atomic_write(path, encode_canonical(value), mode=0o644)


@dataclass(frozen=True, slots=True)
class StagedChange:
    """A change waiting to be exported, with an id that never changes or gets reused."""

    id: int
    change: Change


@dataclass(frozen=True, slots=True)
class Published:
    """When a request was confirmed on the server, and the versions it made."""

    at: str
    versions: Mapping[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at, "versions": dict(self.versions)}


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """What the home knows about an exported request besides the request itself."""

    id: str
    digest: str
    exported: str
    thin: bool
    staged_ids: tuple[int, ...]
    published: Published | None = None
    versions: Mapping[str, int] = field(default_factory=dict)  # role -> version it signs
    cancelled: str | None = None  # why and when it was given up ("superseded by …", "cancelled")

    @property
    def state(self) -> str:
        if self.published is not None:
            return f"published {self.published.at}"
        if self.cancelled is not None:
            return self.cancelled
        return "waiting for signatures"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "digest": self.digest,
            "exported": self.exported,
            "thin": self.thin,
            "staged_ids": list(self.staged_ids),
            "published": self.published.to_dict() if self.published else None,
            "versions": dict(self.versions),
            "cancelled": self.cancelled,
        }

    @classmethod
    def from_dict(cls, d: Any, path: Path) -> RequestRecord:
        f = Fields(d, f"The online home file {path}", error=HomeDamaged)
        pub = f.optional("published")
        published = None
        if pub is not None:
            p = Fields(pub, f"The online home file {path}", error=HomeDamaged)
            published = Published(p.text("at"), _versions(p.mapping("versions"), p))
            p.done()
        record = cls(
            f.hex("id", 32),
            f.hex("digest", 64),
            f.text("exported"),
            f.flag("thin"),
            _staged_ids(f.array("staged_ids"), f),
            published,
            _versions(f.mapping("versions"), f) if f.has("versions") else {},
            f.optional("cancelled"),
        )
        if record.cancelled is not None and not isinstance(record.cancelled, str):
            raise f.fail("has a malformed 'cancelled'")
        f.done()
        return record


def _versions(raw: dict[str, Any], f: Fields) -> dict[str, int]:
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in raw.values()):
        raise f.fail("has malformed versions")
    return dict(raw)


def _staged_ids(values: list[Any], f: Fields) -> tuple[int, ...]:
    if not all(type(value) is int for value in values):  # a bulk stage records 10⁵ ids
        raise f.fail("has a malformed staged change id")
    return tuple(values)


def check_request_id(request_id: str) -> str:
    if not _REQUEST_ID.match(request_id):
        raise InputRejected(f"{request_id!r} is not a request id (32 hex digits).")
    return request_id


class Home:
    """The online home directory (created on first write)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def repository(self, gun: str) -> RepositoryHome:
        """The GUN's folder (a name `gun_folder` makes safe, so a GUN can never reach outside the home)."""
        return RepositoryHome(self.root / "repositories" / gun_folder(gun), gun)

    def guns(self) -> list[str]:
        """Every GUN the home holds anything for."""
        base = self.root / "repositories"
        if not base.is_dir():
            return []
        found = []
        for folder in base.iterdir():
            marker = folder / ".gun"
            if marker.is_file():
                found.append(marker.read_text(encoding="utf-8"))
            elif folder.is_dir():
                found.append(unquote(folder.name))
        return sorted(found)


class RepositoryHome:
    """Everything the home holds for one GUN."""

    def __init__(self, path: Path, gun: str) -> None:
        self.path = path
        self.gun = gun

    # -- locking ------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold this GUN's lock: one writer at a time, so no update is lost."""
        private_dir(self.path)
        marker = self.path / ".gun"  # the folder name of a long GUN is cut and hashed
        if not marker.is_file():
            atomic_write(marker, self.gun.encode("utf-8"), mode=0o644)
        with locked(self.path / ".lock"):
            sweep_temporaries(self.path, keep=(".gun",))  # left by a writer killed mid-write
            yield

    # -- staged changes -----------------------------------------------------

    @property
    def _staged_path(self) -> Path:
        return self.path / "staged.json"

    def _staged_raw(self) -> tuple[int, list[Any]]:
        doc = _read_json(self._staged_path)
        if doc is None:
            return 1, []
        f = Fields(doc, f"The online home file {self._staged_path}", error=HomeDamaged)
        if f.text("gun") != self.gun:
            raise f.fail(f"is for another GUN than {self.gun}")
        next_id, changes = f.integer("next_id", minimum=1), f.array("changes")
        f.done()
        return next_id, changes

    def staged(self) -> tuple[StagedChange, ...]:
        """The staged changes, oldest first."""
        _, raw = self._staged_raw()
        out: list[StagedChange] = []
        for entry in raw:
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), int):
                raise _damaged(self._staged_path, "a change without an id")
            try:
                out.append(StagedChange(entry["id"], change_from_dict(entry.get("change"))))
            except CeremonyError as exc:
                raise _damaged(self._staged_path, exc.message.rstrip(".")) from exc
        return tuple(out)

    def stage(self, changes: Sequence[Change]) -> tuple[StagedChange, ...]:
        """Append `changes` in one atomic write; returns them with their new ids."""
        encoded = [c.to_dict() for c in changes]
        _check_round_trip(encoded)
        with self.locked():
            next_id, raw = self._staged_raw()
            added = [StagedChange(next_id + i, change) for i, change in enumerate(changes)]
            raw.extend({"id": s.id, "change": d} for s, d in zip(added, encoded, strict=True))
            self._write_staged(next_id + len(added), raw)
        return tuple(added)

    def unstage(self, ids: Sequence[int]) -> int:
        """Drop the staged changes with these ids (those published); returns how many went."""
        drop = set(ids)
        with self.locked():
            next_id, raw = self._staged_raw()
            kept = [e for e in raw if e.get("id") not in drop]
            if len(kept) != len(raw):
                self._write_staged(next_id, kept)
        return len(raw) - len(kept)

    def _write_staged(self, next_id: int, raw: list[Any]) -> None:
        _write_json(self._staged_path, {"changes": raw, "gun": self.gun, "next_id": next_id})

    # -- trust anchor -------------------------------------------------------

    @property
    def _anchor_path(self) -> Path:
        return self.path / "trust" / "root.json"

    def anchor(self) -> Envelope[Root] | None:
        """The newest root this machine verified for the GUN (None before first contact)."""
        data = read_home_file_bytes(self._anchor_path, "trusted root file")
        if data is None:
            return None
        try:
            return parse_envelope(data, Root, what="trusted root")
        except CeremonyError as exc:
            raise _damaged(self._anchor_path, "not a root") from exc

    def versions(self) -> dict[str, int]:
        """The last verified version of each role (for rollback protection)."""
        path = self.path / "trust" / "versions.json"
        doc = _read_json(path)
        if doc is None:
            return {}
        if not isinstance(doc, dict) or not all(isinstance(v, int) for v in doc.values()):
            raise _damaged(path, "unexpected structure")
        return dict(doc)

    def trust(
        self, root: Envelope[Root], versions: Mapping[str, int], reset: Sequence[str] = ()
    ) -> None:
        """Record a newly verified root (as served) and role versions (never moves backwards,
        except for the roles in `reset`: their floor was voided by a key rotation in the
        verified root chain, the recovery from a fast-forward attack, so it is replaced; only
        when `root` is newer than the stored one, so a concurrent fetch cannot undo a floor)."""
        with self.locked():
            current = self.anchor()
            if current is None or root.body.version >= current.body.version:
                private_dir(self._anchor_path.parent)
                atomic_write(self._anchor_path, root.raw, mode=0o644)
            newer = current is None or root.body.version > current.body.version
            merged = {r: v for r, v in self.versions().items() if not (newer and r in reset)}
            for role, version in versions.items():
                merged[role] = max(version, merged.get(role, 0))
            _write_json(self.path / "trust" / "versions.json", merged)

    def set_aside_trust(self, suffix: str) -> Path | None:
        """Move the trust anchor folder aside (kept, renamed) so a new repository can start."""
        with self.locked():
            folder = self._anchor_path.parent
            if not folder.exists():
                return None
            target = folder.with_name(f"trust.{suffix}")
            folder.rename(target)
            return target

    # -- requests -----------------------------------------------------------

    def _request_path(self, request_id: str) -> Path:
        return self.path / "requests" / f"{check_request_id(request_id)}.request.json"

    def _record_path(self, request_id: str) -> Path:
        return self.path / "requests" / f"{check_request_id(request_id)}.record.json"

    def save_request(self, request: Request, record: RequestRecord) -> None:
        """Keep the FULL request (even when a thin one leaves) and its record."""
        with self.locked():
            atomic_write(self._request_path(request.id), request.to_bytes(), mode=0o644)
            _write_json(self._record_path(request.id), record.to_dict())

    def has_request(self, request_id: str) -> bool:
        return self._request_path(request_id).is_file()

    def load_request(self, request_id: str) -> Request:
        path = self._request_path(request_id)
        data = read_home_file_bytes(path, "request file")
        if data is None:
            raise InputRejected(
                f"Request {request_id} for {self.gun} was not exported from this home: "
                "publish on the machine and --home that exported it."
            )
        try:
            return Request.from_bytes(data)
        except CeremonyError as exc:
            raise _damaged(path, exc.message.rstrip(".")) from exc

    def record(self, request_id: str) -> RequestRecord:
        path = self._record_path(request_id)
        doc = _read_json(path)
        if doc is None:
            raise _damaged(path, "missing")
        return RequestRecord.from_dict(doc, path)

    def records(self) -> list[RequestRecord]:
        """Every exported request's record, oldest export first."""
        folder = self.path / "requests"
        if not folder.is_dir():
            return []
        out = [RequestRecord.from_dict(_read_json(p), p) for p in folder.glob("*.record.json")]
        return sorted(out, key=lambda r: (r.exported, r.id))

    def mark_cancelled(self, request_id: str, why: str) -> RequestRecord:
        with self.locked():
            record = replace(self.record(request_id), cancelled=why)
            _write_json(self._record_path(request_id), record.to_dict())
        return record

    def mark_published(self, request_id: str, published: Published) -> RequestRecord:
        with self.locked():
            record = replace(self.record(request_id), published=published)
            _write_json(self._record_path(request_id), record.to_dict())
        return record

    # -- signatures ---------------------------------------------------------

    def _signatures_dir(self, request_id: str) -> Path:
        return self.path / "signatures" / check_request_id(request_id)

    def save_signatures(self, document: SignaturesDocument) -> bool:
        """Keep a signatures document; False if this exact document was already kept."""
        data = document.to_bytes()
        digest = hashlib.sha256(data).hexdigest()
        path = self._signatures_dir(document.request_id) / f"{digest}.signatures.json"
        if path.is_file():
            return False
        with self.locked():
            private_dir(path.parent)
            atomic_write(path, data, mode=0o644)
        return True

    def signatures(self, request_id: str) -> list[SignaturesDocument]:
        """Every signatures document collected for a request."""
        folder = self._signatures_dir(request_id)
        if not folder.is_dir():
            return []
        out: list[SignaturesDocument] = []
        for path in sorted(folder.glob("*.signatures.json")):
            if not _DIGEST.match(path.name.split(".", 1)[0]):
                continue
            try:
                out.append(SignaturesDocument.from_bytes(_home_bytes(path)))
            except CeremonyError as exc:
                raise _damaged(path, exc.message.rstrip(".")) from exc
        return out

    # -- publish log --------------------------------------------------------

    def log(self, entry: Mapping[str, Any]) -> None:
        """Append an entry to the publish log (rewritten atomically)."""
        path = self.path / "publish-log.json"
        with self.locked():
            entries = _read_json(path) or []
            if not isinstance(entries, list):
                raise _damaged(path, "unexpected structure")
            entries.append(dict(entry))
            _write_json(path, entries)

    def publish_log(self) -> list[dict[str, Any]]:
        path = self.path / "publish-log.json"
        entries = _read_json(path) or []
        if not isinstance(entries, list):
            raise _damaged(path, "unexpected structure")
        return [e for e in entries if isinstance(e, dict)]


_ROUND_TRIP_CHUNK = 4096


def _check_round_trip(encoded: Sequence[Mapping[str, Any]]) -> None:
    """Refuse a change that could not be read back, rather than stage a file that breaks later.

    In chunks: a million staged targets are read back without a second copy of them all."""
    for start in range(0, len(encoded), _ROUND_TRIP_CHUNK):
        _check_read_back(encoded[start : start + _ROUND_TRIP_CHUNK])


def _check_read_back(encoded: Sequence[Mapping[str, Any]]) -> None:
    parsed = parse_json(encode_canonical(list(encoded)), what="staged changes")
    for item in parsed:
        try:
            change_from_dict(item)
        except CeremonyError as exc:
            raise InputRejected(
                f"The change cannot be staged because it would not read back ({exc.message.rstrip('.')}); "
                "nothing was staged."
            ) from exc
