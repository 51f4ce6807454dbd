"""Reading a repository in TUF order (notary-formats.md §8.1), verified with the pure core."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ceremony.core.errors import InputRejected, VerificationFailed
from ceremony.core.gun import check_gun
from ceremony.core.metadata import (
    Envelope,
    FileMeta,
    Root,
    Targets,
)
from ceremony.core.verify import RepositoryReport, parse_role_file, verify_parsed
from online.client import RECORDED_MAX_LENGTH, TIMESTAMP_MAX_LENGTH, Server
from online.client.names import metadata_name


@dataclass(frozen=True, slots=True)
class FetchedRepository:
    """Every file as served, parsed once, and the report of their verification.

    `envelopes` uses the names `verify_parsed` takes: `root`, `N.root` (every
    older root fetched for the chain), `timestamp`, `snapshot`, `targets` and
    each delegation by role name; each envelope keeps its bytes (`raw`).
    """

    envelopes: Mapping[str, Envelope[Any]]
    report: RepositoryReport
    downloaded: frozenset[str] = frozenset()  # the targets roles read from the server

    def recorded_sha256(self, role: str) -> str:
        """The SHA-256 (hex) the verified snapshot records for `role`."""
        return self.report.snapshot.body.meta[role].sha256_hex

    @property
    def files(self) -> dict[str, bytes]:
        return {name: env.raw for name, env in self.envelopes.items()}


def _required(server: Server, gun: str, name: str, cap: int, listed_by: str) -> bytes:
    data = server.get_metadata(gun, name, cap)
    if data is None:
        raise VerificationFailed(
            f"The trust server has no {name} for {gun} although {listed_by} lists it: "
            "the repository changed while it was read or is incomplete; try again."
        )
    return data


def _sha256_of(meta_hashes: Mapping[str, bytes], role: str, parent: str) -> str:
    digest = meta_hashes.get("sha256")
    if digest is None:
        raise VerificationFailed(
            f"{parent} records no sha256 for {role}, so it cannot be fetched by checksum."
        )
    return digest.hex()


def _recorded_length(meta: FileMeta, role: str, parent: str) -> int:
    """The download cap for a file its parent records: its length (not yet trusted: the
    parent is verified only after every file is read), within a bound this machine handles."""
    if meta.length > RECORDED_MAX_LENGTH:
        raise InputRejected(
            f"{parent} records {role} as {meta.length} bytes, more than the "
            f"{RECORDED_MAX_LENGTH} this tool reads; it is not a Notary repository it can handle."
        )
    return meta.length


def _is_recorded(meta: FileMeta, data: bytes) -> bool:
    sha256 = meta.hashes.get("sha256")
    return (
        sha256 is not None and len(data) == meta.length and hashlib.sha256(data).digest() == sha256
    )


def fetch_root_chain(
    server: Server,
    gun: str,
    *,
    start: int = 1,
    newest: Envelope[Root] | None = None,
) -> dict[int, Envelope[Root]] | None:
    """Every root version `start`..N as served (`N.root.json`), N being the current root.

    The current root is downloaded as `root.json` unless given (`newest`, parsed
    with its bytes). Each older version is parsed once, in Notary's exact form,
    and must be the version asked for; signatures are left to
    `ceremony.core.verify`, which walks the chain from whatever root the verifier
    trusts. None if the repository does not exist.
    """
    if newest is None:
        newest_bytes = server.get_metadata(gun, metadata_name("root"))
        if newest_bytes is None:
            return None
        newest = parse_role_file(newest_bytes, "root", what=f"root metadata of {gun}")
    top = newest.body.version
    chain: dict[int, Envelope[Root]] = {}
    for version in range(max(start, 1), top):
        name = metadata_name("root", version=version)
        data = _required(server, gun, name, server.max_download, f"root v{top}")
        env: Envelope[Root] = parse_role_file(
            data, f"root v{version}", Root, what=f"{name} of {gun}"
        )
        if env.body.version != version:
            raise VerificationFailed(
                f"The trust server answered {name} for {gun} with root v{env.body.version}: "
                "it is faulty or tampered with."
            )
        chain[version] = env
    chain[top] = newest
    return chain


def fetch_repository(
    server: Server,
    gun: str,
    now: datetime,
    *,
    trusted_root: Envelope[Root] | None = None,
    previous_versions: Mapping[str, int] | None = None,
    full_root_chain: bool = False,
    expired_ok: bool = False,
    known: Mapping[str, Envelope[Any]] | None = None,
    cached: Callable[[FileMeta], bytes | None] | None = None,
) -> FetchedRepository | None:
    """Download `gun` in TUF order and verify it; None if the server has no such repository.

    `known` holds files this machine already has, parsed, with their bytes (a request's
    base, what it just uploaded): a role the snapshot names by exactly those bytes'
    length and SHA-256 is taken from there instead of being downloaded and parsed again.
    Everything is verified as if it had been downloaded. `cached` offers bytes kept on this
    machine for a file the snapshot names (`online.cache`): they are used only when their
    length and SHA-256 are exactly the snapshot's, else the file is downloaded.

    Order: `root.json`, and the older roots needed to reach it (`N.root.json`
    from `trusted_root`'s version + 1, or from v1 when `full_root_chain`);
    `timestamp.json` (≤ 1 MiB); `snapshot.<sha256>.json` by the hash and length
    in the timestamp; `targets.<sha256>.json` and every delegation the snapshot
    lists, in pre-order, by the hash and length in the snapshot. Then
    `ceremony.core.verify.verify_repository` checks it all against `now`,
    `trusted_root` and `previous_versions` (rollback protection): the root
    chain first, each root signed by its predecessor and by itself. Without
    `trusted_root`, the oldest root fetched is trusted on first use.

    Raises:
        VerificationFailed / MalformedInput: the repository does not verify.
        InputRejected: a download exceeds its cap.
        EnvironmentFailure: the server is unreachable, failing or refuses access.
    """
    check_gun(gun)
    root_bytes = server.get_metadata(gun, metadata_name("root"))
    if root_bytes is None:
        return None
    root = parse_role_file(root_bytes, "root", what=f"root metadata of {gun}")
    envelopes: dict[str, Envelope[Any]] = {"root": root}
    start = 1 if full_root_chain else None
    if start is None and trusted_root is not None:
        start = trusted_root.body.version + 1
    if start is not None and start < root.body.version:
        chain = fetch_root_chain(server, gun, start=start, newest=root)
        for version, older in (chain or {}).items():
            if version != root.body.version:
                envelopes[f"{version}.root"] = older

    timestamp_bytes = _required(
        server, gun, metadata_name("timestamp"), TIMESTAMP_MAX_LENGTH, "root"
    )
    timestamp = parse_role_file(timestamp_bytes, "timestamp", what=f"timestamp metadata of {gun}")
    envelopes["timestamp"] = timestamp
    snap_meta = timestamp.body.meta["snapshot"]
    snapshot_bytes = _required(
        server,
        gun,
        metadata_name("snapshot", sha256=_sha256_of(snap_meta.hashes, "snapshot", "The timestamp")),
        _recorded_length(snap_meta, "snapshot", "The timestamp"),
        "the timestamp",
    )
    snapshot = parse_role_file(snapshot_bytes, "snapshot", what=f"snapshot metadata of {gun}")
    envelopes["snapshot"] = snapshot

    # targets, then delegations in pre-order; only roles the snapshot lists are fetched
    pending: list[str] = ["targets"]
    downloaded: set[str] = set()
    while pending:
        role = pending.pop()
        meta = snapshot.body.meta.get(role)
        if meta is None or role in envelopes:
            continue
        held = (known or {}).get(role)
        if held is not None and _is_recorded(meta, held.raw):
            envelopes[role] = held
            pending.extend(r.name for r in reversed(held.body.delegations.roles))
            continue
        data = cached(meta) if cached is not None else None
        if data is None or not _is_recorded(meta, data):
            data = _required(
                server,
                gun,
                metadata_name(role, sha256=_sha256_of(meta.hashes, role, "The snapshot")),
                _recorded_length(meta, role, "The snapshot"),
                "the snapshot",
            )
            downloaded.add(role)
        delegated: Envelope[Targets] = parse_role_file(
            data, role, Targets, what=f"{role} metadata of {gun}"
        )
        envelopes[role] = delegated
        pending.extend(r.name for r in reversed(delegated.body.delegations.roles))

    report = verify_parsed(
        envelopes,
        gun,
        now,
        trusted_root=trusted_root,
        previous_versions=previous_versions,
        expired_ok=expired_ok,
    )
    return FetchedRepository(envelopes, report, frozenset(downloaded))
