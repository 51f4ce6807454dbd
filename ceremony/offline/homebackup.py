"""One encrypted archive of the whole offline home, and a restore that never forgets.

The archive holds every file of the home: key files, key records (with their root
certificates), trust states and the bodies they name, forgotten trust states, the
policy, and the transcript when there is one. Lock files and temporary files are left
out; so are symlinks and anything that is not a regular file.

Format, version 1::

    magic    b"notary-ceremony home backup\\n"
    version  1 byte
    scrypt   log2(n), r, p: 1 byte each
    salt     16 bytes
    nonce    12 bytes
    body     AES-256-GCM under scrypt(passphrase, salt); the header above is its
             associated data, so a changed header fails like a wrong passphrase
    plain    canonical JSON {"files": {path: {"data": base64, "mode": int}},
             "format": 1, "made": time}

A restore must never make this machine forget what it signed. For each GUN both the
home and the archive hold, the signed request records are merged (a union), each
role's verified version is the higher one, and the newest trusted root stays; the
restore is refused, naming the GUN and what is newer, when the home already holds a
newer trusted root or a newer signed record than the archive (the archive is older
than this home: restoring it is almost surely a mistake). Keys the home lacks are
added; a key file already in the home is never overwritten, and a key retired here
is not brought back. Every other file is added when the home lacks it and otherwise
kept as it is. Nothing is written before the whole plan is checked; each write is
atomic, and the trust states are written last.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ceremony.core.canonical import encode_canonical
from ceremony.core.documents import sha256_hex
from ceremony.core.errors import HomeDamaged, InputRejected, MalformedInput, UsageError
from ceremony.core.fields import read_home_file
from ceremony.core.gun import gun_folder
from ceremony.edge.fsutil import atomic_write, private_dir
from ceremony.offline.trust import SignedRecord, TrustState, TrustStore
from ceremony.signing.keystore import KeyRecord

MAGIC: Final = b"notary-ceremony home backup\n"
VERSION: Final = 1
LOG2_N: Final = 17  # scrypt n = 2**17, r = 8: 128 MiB and about a second per try
R: Final = 8
P: Final = 1
SALT_SIZE: Final = 16
NONCE_SIZE: Final = 12
HEADER_SIZE: Final = len(MAGIC) + 4 + SALT_SIZE + NONCE_SIZE
PLAIN_FORMAT: Final = 1
_SKIPPED_NAMES: Final = (".lock",)


@dataclass(frozen=True, slots=True)
class HomeFile:
    mode: int
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class HomeArchive:
    """What an archive holds: every file of a home, by path relative to it."""

    made: str
    files: Mapping[str, HomeFile]


# ---------------------------------------------------------------------------
# encryption


def _key(passphrase: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=2**log2_n, r=r, p=p).derive(passphrase.encode("utf-8"))


def seal(archive: HomeArchive, passphrase: str) -> bytes:
    """The archive encrypted under `passphrase` (a fresh salt and nonce each time)."""
    if not passphrase:
        raise UsageError("An empty passphrase would leave the home backup readable; choose one.")
    files = {
        path: {"data": base64.b64encode(f.data).decode("ascii"), "mode": f.mode}
        for path, f in archive.files.items()
    }
    plain = encode_canonical({"files": files, "format": PLAIN_FORMAT, "made": archive.made})
    salt, nonce = secrets.token_bytes(SALT_SIZE), secrets.token_bytes(NONCE_SIZE)
    header = MAGIC + bytes([VERSION, LOG2_N, R, P]) + salt + nonce
    sealed = AESGCM(_key(passphrase, salt, LOG2_N, R, P)).encrypt(nonce, plain, header)
    return header + sealed


def is_archive(data: bytes) -> bool:
    return data.startswith(MAGIC)


def unseal(data: bytes, passphrase: str) -> HomeArchive:
    """The archive in `data`; refuses another file, a newer format, a wrong passphrase."""
    if not data.startswith(MAGIC):
        raise MalformedInput("The file is not a notary-ceremony home backup.")
    if len(data) < HEADER_SIZE + 16:
        raise MalformedInput("The home backup is truncated.")
    version, log2_n, r, p = data[len(MAGIC) : len(MAGIC) + 4]
    if version != VERSION:
        raise InputRejected(
            f"The home backup has format {version}, which this version of the tool does not "
            "know; restore it with a newer version."
        )
    if not (14 <= log2_n <= 20 and r == R and 1 <= p <= 4):
        raise MalformedInput("The home backup's header asks for unreasonable scrypt parameters.")
    at = len(MAGIC) + 4
    salt, nonce = data[at : at + SALT_SIZE], data[at + SALT_SIZE : HEADER_SIZE]
    try:
        plain = AESGCM(_key(passphrase, salt, log2_n, r, p)).decrypt(
            nonce, data[HEADER_SIZE:], data[:HEADER_SIZE]
        )
    except InvalidTag:
        raise InputRejected(
            "The home backup does not open: the passphrase is wrong, or the file is damaged."
        ) from None
    return _archive_from(plain)


def _archive_from(plain: bytes) -> HomeArchive:
    try:
        doc = json.loads(plain)
        if doc["format"] != PLAIN_FORMAT:
            raise InputRejected("The home backup's contents have a format this tool does not know.")
        files = {
            _checked_path(str(path)): HomeFile(
                int(entry["mode"]) & 0o644, base64.b64decode(entry["data"], validate=True)
            )
            for path, entry in doc["files"].items()
        }
        return HomeArchive(str(doc["made"]), files)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise MalformedInput("The home backup's contents are damaged.") from None


def _checked_path(path: str) -> str:
    pure = PurePosixPath(path)
    bad = (
        pure.is_absolute()
        or not pure.parts
        or any(part in (".", "..") for part in pure.parts)
        or str(pure) != path
        or any(ord(c) < 32 or c == "\\" for c in path)
    )
    if bad:
        raise MalformedInput("The home backup names a file outside the home; refusing it.")
    return path


# ---------------------------------------------------------------------------
# collecting a home


def _home_files(home: Path) -> Iterator[tuple[str, Path]]:
    for directory, dirs, names in os.walk(home, followlinks=False):
        dirs.sort()
        for name in sorted(names):
            if name in _SKIPPED_NAMES or (name.startswith(".") and name.endswith(".tmp")):
                continue
            path = Path(directory) / name
            if stat.S_ISREG(path.lstat().st_mode):
                yield path.relative_to(home).as_posix(), path


def collect(home: Path, made: str) -> HomeArchive:
    """Every regular file of the home, read under the trust store's lock (so no `sign`
    records half a request while it is read)."""
    if not home.is_dir():
        raise UsageError(f"There is no ceremony home at {home}; nothing to back up.")
    with TrustStore(home).locked():
        files = {
            rel: HomeFile(stat.S_IMODE(path.stat().st_mode) & 0o644, path.read_bytes())
            for rel, path in _home_files(home)
        }
    if not files:
        raise UsageError(f"The ceremony home {home} is empty; nothing to back up.")
    return HomeArchive(made, files)


# ---------------------------------------------------------------------------
# restoring


@dataclass(frozen=True, slots=True)
class RestorePlan:
    """What a restore writes, in order, and what it leaves alone."""

    writes: tuple[tuple[str, HomeFile], ...]
    added_keys: tuple[str, ...]
    merged_guns: tuple[str, ...]
    added_guns: tuple[str, ...]
    kept: tuple[str, ...]  # files of the home that differ from the archive's, left as they are
    skipped_retired: tuple[str, ...]


def _is_state(path: str) -> bool:
    parts = PurePosixPath(path).parts
    return len(parts) == 3 and parts[0] == "trust" and parts[2] == "state.json"


def _is_key_file(path: str) -> bool:
    parts = PurePosixPath(path).parts
    return len(parts) == 2 and parts[0] == "private" and parts[1].endswith(".key")


def _is_record(path: str) -> bool:
    parts = PurePosixPath(path).parts
    return len(parts) == 2 and parts[0] == "keys" and parts[1].endswith(".json")


def _state(data: bytes, path: str) -> TrustState:
    try:
        state = TrustState.from_bytes(data)
    except (MalformedInput, HomeDamaged) as exc:
        raise MalformedInput(f"The home backup's {path} is damaged; nothing was restored.") from exc
    if PurePosixPath(path).parts[1] != gun_folder(state.gun):
        raise MalformedInput(f"The home backup's {path} names another GUN; nothing was restored.")
    return state


def _record(data: bytes, path: str) -> KeyRecord:
    try:
        record = KeyRecord.from_index(read_home_file(data, f"key index file {path}"))
    except (MalformedInput, HomeDamaged) as exc:
        raise MalformedInput(f"The home backup's {path} is damaged; nothing was restored.") from exc
    if PurePosixPath(path).stem != record.canonical_id:
        raise MalformedInput(f"The home backup's {path} names another key; nothing was restored.")
    return record


def _newer_in_home(home: TrustState, archive: TrustState) -> str | None:
    """What the home holds that is newer than the archive, for people; None if nothing."""
    home_root, archive_root = home.root.body.version, archive.root.body.version
    if home_root > archive_root:
        return f"it trusts root v{home_root}, the archive only v{archive_root}"
    if home_root == archive_root and home.root.to_bytes() != archive.root.to_bytes():
        return f"it trusts another root v{home_root} than the archive"
    for request_id, record in sorted(home.requests.items()):
        if request_id in archive.requests:
            continue
        for role, signed in sorted(record.roles.items()):
            newest = archive.newest_signed(role)
            if signed.version > newest:
                archive_has = (
                    f"the archive's newest signed {role} is v{newest}"
                    if newest
                    else f"the archive never signed {role}"
                )
                return (
                    f"it signed {role} v{signed.version} in request {request_id[:12]}; "
                    f"{archive_has}"
                )
    for request_id, record in home.requests.items():
        other = archive.requests.get(request_id)
        if other is not None and (other.roles != record.roles or other.digest != record.digest):
            return f"it recorded request {request_id[:12]} differently from the archive"
    return None


def _merged_record(home: SignedRecord, archive: SignedRecord | None) -> SignedRecord:
    if archive is None:
        return home
    return replace(
        home,
        signed_at=tuple(sorted(set(home.signed_at) | set(archive.signed_at))),
        acknowledged=tuple(sorted(set(home.acknowledged) | set(archive.acknowledged))),
    )


def merge_states(home: TrustState, archive: TrustState) -> TrustState:
    """The union of what both know (call only when the home holds nothing newer)."""
    root = archive.root if archive.root.body.version > home.root.body.version else home.root
    versions = {
        role: max(home.versions.get(role, 0), archive.versions.get(role, 0))
        for role in sorted(set(home.versions) | set(archive.versions))
    }
    requests = dict(archive.requests)
    for request_id, record in home.requests.items():
        requests[request_id] = _merged_record(record, archive.requests.get(request_id))
    return TrustState(home.gun, root, versions, dict(sorted(requests.items())))


def plan_restore(home: Path, archive: HomeArchive) -> RestorePlan:
    """Decide every write before making one; refuses (exit 1) when the home holds newer
    trust records than the archive, naming each GUN and what is newer."""
    trust = TrustStore(home)
    writes: list[tuple[str, HomeFile]] = []
    key_writes: list[tuple[str, HomeFile]] = []
    record_writes: list[tuple[str, HomeFile]] = []
    state_writes: list[tuple[str, HomeFile]] = []
    newer: list[str] = []
    added_keys, merged_guns, added_guns, kept, retired = [], [], [], [], []

    records = {
        PurePosixPath(p).stem: _record(f.data, p) for p, f in archive.files.items() if _is_record(p)
    }
    for path, entry in sorted(archive.files.items()):
        target = home / path
        if _is_state(path):
            theirs = _state(entry.data, path)
            ours = trust.load(theirs.gun)
            if ours is None:
                state_writes.append((path, entry))
                added_guns.append(theirs.gun)
                continue
            problem = _newer_in_home(ours, theirs)
            if problem is not None:
                newer.append(f"{theirs.gun} ({problem})")
                continue
            merged = merge_states(ours, theirs)
            if merged.to_bytes() != ours.to_bytes():
                state_writes.append((path, HomeFile(0o644, merged.to_bytes())))
                merged_guns.append(theirs.gun)
        elif _is_key_file(path):
            cid = PurePosixPath(path).stem
            ours_record = _load_record(home, cid)
            if ours_record is not None and ours_record.retired is not None:
                retired.append(cid)
            elif not target.exists():
                key_writes.append((path, HomeFile(0o600, entry.data)))
                added_keys.append(cid)
            elif target.read_bytes() != entry.data:
                kept.append(path)
        elif _is_record(path):
            theirs_record = records[PurePosixPath(path).stem]
            ours_record = _load_record(home, theirs_record.canonical_id)
            if ours_record is None:
                record_writes.append((path, HomeFile(0o600, entry.data)))
                continue
            extra = {g: c for g, c in theirs_record.guns.items() if g not in ours_record.guns}
            if extra:
                union = replace(ours_record, guns={**ours_record.guns, **extra})
                text = json.dumps(union.to_index(), indent=2, sort_keys=True) + "\n"
                record_writes.append((path, HomeFile(0o600, text.encode("utf-8"))))
        elif not target.exists():
            if _is_body(path) and sha256_hex(entry.data) != PurePosixPath(path).stem:
                raise MalformedInput(
                    f"The home backup's {path} does not match its digest; nothing was restored."
                )
            writes.append((path, entry))
        elif target.is_file() and target.read_bytes() != entry.data:
            kept.append(path)
    if newer:
        raise InputRejected(
            "Nothing was restored: this home already holds newer records than the archive for "
            + ", and for ".join(newer)
            + ", and restoring it would make this machine forget what it signed."
        )
    return RestorePlan(
        tuple(writes + key_writes + record_writes + state_writes),
        tuple(added_keys),
        tuple(merged_guns),
        tuple(added_guns),
        tuple(kept),
        tuple(retired),
    )


def _is_body(path: str) -> bool:
    parts = PurePosixPath(path).parts
    return len(parts) == 4 and parts[0] == "trust" and parts[2] == "bodies"


def _load_record(home: Path, canonical_id: str) -> KeyRecord | None:
    path = home / "keys" / f"{canonical_id}.json"
    if not path.is_file():
        return None
    return KeyRecord.from_index(read_home_file(path.read_bytes(), f"key index file {path.name}"))


def apply_plan(home: Path, plan: RestorePlan) -> None:
    """Make the writes, each atomic, folders 0700."""
    for path, entry in plan.writes:
        target = home / path
        for parent in reversed(PurePosixPath(path).parents[:-1]):
            private_dir(home / parent)
        atomic_write(target, entry.data, mode=entry.mode or 0o600)


def restore(home: Path, archive: HomeArchive) -> RestorePlan:
    """Plan and apply under the trust store's lock (no `sign` runs meanwhile)."""
    private_dir(home)
    with TrustStore(home).locked():
        plan = plan_restore(home, archive)
        apply_plan(home, plan)
    return plan


def summary(archive: HomeArchive) -> dict[str, Any]:
    """Counts of what an archive holds, for the operator."""
    files = archive.files
    return {
        "keys": sum(1 for p in files if _is_key_file(p)),
        "records": sum(1 for p in files if _is_record(p)),
        "guns": sum(1 for p in files if _is_state(p)),
        "files": len(files),
    }
