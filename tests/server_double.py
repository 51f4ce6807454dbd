"""An in-memory Notary 0.7 trust server, for testing the online half without sockets.

Modelled on python-tuf's `tests/repository_simulator.py`: it implements the online
half's `Server` seam (`online.client.Server`) over dictionaries, and does with an
upload what notary-server does (notary-formats.md §7): roots must chain (version + 1,
signed by the old and new root thresholds), targets and delegations must carry their
threshold of signatures and a version above every stored one, and the server then signs
a new snapshot and timestamp with keys only it holds.

It also does what no real server can be made to do on demand, for the tests of a lying
or failing server: serve an older or another file for a name (`lie`), fail the next
upload before or after storing it (`fail_next_publish`), forget a repository, and move
its clock (`now`). The real notary-server stays the proof of compatibility; this double
only adds the cases it cannot produce.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from ceremony.core.errors import CeremonyError, InputRejected, VerificationFailed
from ceremony.core.gotime import GoTime
from ceremony.core.metadata import Envelope, FileMeta, Key, Root, Snapshot, Targets, Timestamp
from ceremony.core.verify import parse_role_file, verify_root, verify_threshold
from ceremony.signing.private import PrivateKey, sign
from online.client.names import split_name

SNAPSHOT_LIFE = timedelta(days=3 * 365)
TIMESTAMP_LIFE = timedelta(days=14)


@dataclass
class _Repo:
    keys: dict[str, PrivateKey] = field(default_factory=dict)  # snapshot, timestamp
    files: dict[str, list[bytes]] = field(
        default_factory=dict
    )  # role -> every version, oldest first

    def current(self, role: str) -> bytes | None:
        versions = self.files.get(role)
        return versions[-1] if versions else None


@dataclass
class ServerDouble:
    """The online half's `Server`, in memory."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    location: str = "memory://notary-double"
    max_download: int = 100 * 1024 * 1024
    repos: dict[str, _Repo] = field(default_factory=dict)
    lies: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (gun, file name) -> bytes
    fail_next_publish: tuple[CeremonyError, bool] | None = None  # (error, after storing?)
    uploads: list[tuple[str, dict[str, bytes]]] = field(default_factory=list)

    # -- the Server seam -------------------------------------------------------

    def get_metadata(self, gun: str, name: str, max_length: int | None = None) -> bytes | None:
        role, digest = split_name(name)
        if (gun, name) in self.lies:
            return self.lies[(gun, name)]
        repo = self.repos.get(gun)
        if repo is None:
            return None
        if name == "timestamp.json":
            self._refresh_timestamp(gun, repo)
        versions = repo.files.get(role, [])
        if digest is not None:
            found = [d for d in versions if hashlib.sha256(d).hexdigest() == digest]
            return found[-1] if found else None
        head = name.split(".", 1)[0]
        if head.isdigit():
            wanted = int(head)
            matches = [d for d in versions if parse_role_file(d, role).body.version == wanted]
            return matches[-1] if matches else None
        return repo.current(role)

    def get_server_key(self, gun: str, role: str) -> Key:
        repo = self.repos.setdefault(gun, _Repo())
        private = repo.keys.setdefault(role, PrivateKey(ed25519.Ed25519PrivateKey.generate()))
        return private.public_key()

    def publish(self, gun: str, files: Mapping[str, bytes]) -> None:
        self.uploads.append((gun, dict(files)))
        failure = self.fail_next_publish
        self.fail_next_publish = None
        if failure is not None and not failure[1]:
            raise failure[0]
        self._accept(gun, files)
        if failure is not None:
            raise failure[0]

    # -- what notary-server does with an upload --------------------------------

    def _accept(self, gun: str, files: Mapping[str, bytes]) -> None:
        repo = self.repos.setdefault(gun, _Repo())
        if "timestamp" in files or "snapshot" in files:
            raise InputRejected(
                "The double holds the snapshot and timestamp keys: do not upload them."
            )
        envelopes = {role: parse_role_file(data, role) for role, data in files.items()}
        old_root_bytes = repo.current("root")
        root: Envelope[Root]
        if "root" in envelopes:
            root = envelopes["root"]
            previous = parse_role_file(old_root_bytes, "root") if old_root_bytes else None
            verify_root(root, gun, self.now, previous)
            for role in ("snapshot", "timestamp"):
                server_key = self.get_server_key(gun, role).key_id
                if root.body.roles[role].keyids != (server_key,):
                    raise InputRejected(f"bad root: no {role} keys exist on the server")
            if old_root_bytes is None and "targets" not in envelopes:
                raise InputRejected("incomplete hierarchy: the first upload needs targets")
        elif old_root_bytes is None:
            raise InputRejected("incomplete hierarchy: the repository has no root")
        else:
            root = parse_role_file(old_root_bytes, "root")
        parents: dict[str, Targets] = {}
        for role in sorted(envelopes, key=lambda r: (r != "root", r.count("/"), r)):
            env: Envelope[Any] = envelopes[role]
            stored = repo.files.get(role, [])
            if stored and env.body.version <= max(
                parse_role_file(d, role).body.version for d in stored
            ):
                raise InputRejected("VERSION: a newer version of metadata is already available")
            if role == "targets":
                spec = root.body.roles["targets"]
                verify_threshold(env, root.body.keys, spec.keyids, spec.threshold, "targets")
                parents["targets"] = env.body
            elif role != "root":
                parent_name = role.rsplit("/", 1)[0]
                parent = parents.get(parent_name) or self._targets(repo, parent_name)
                spec_role = parent.delegations.role(role)
                if spec_role is None:
                    raise InputRejected(f"bad targets: {role} is not delegated")
                verify_threshold(
                    env, parent.delegations.keys, spec_role.keyids, spec_role.threshold, role
                )
                parents[role] = env.body
        for role, data in files.items():
            repo.files.setdefault(role, []).append(bytes(data))
        self._sign_snapshot_and_timestamp(gun, repo)

    def _targets(self, repo: _Repo, role: str) -> Targets:
        data = repo.current(role)
        if data is None:
            raise VerificationFailed(f"bad targets: {role} does not exist")
        body: Targets = parse_role_file(data, role).body
        return body

    def _sign_snapshot_and_timestamp(self, gun: str, repo: _Repo) -> None:
        meta = {
            role: FileMeta.for_bytes(versions[-1])
            for role, versions in repo.files.items()
            if role not in ("snapshot", "timestamp")
        }
        snapshot = Snapshot(
            GoTime.from_datetime(self.now + SNAPSHOT_LIFE), self._next(repo, "snapshot"), meta
        )
        snapshot_bytes = self._signed(gun, repo, "snapshot", snapshot)
        timestamp = Timestamp(
            GoTime.from_datetime(self.now + TIMESTAMP_LIFE),
            self._next(repo, "timestamp"),
            {"snapshot": FileMeta.for_bytes(snapshot_bytes)},
        )
        self._signed(gun, repo, "timestamp", timestamp)

    def _refresh_timestamp(self, gun: str, repo: _Repo) -> None:
        """notary-server re-signs an expired timestamp when it is asked for."""
        current, snapshot = repo.current("timestamp"), repo.current("snapshot")
        if current is None or snapshot is None:
            return
        if parse_role_file(current, "timestamp").body.expires.before(self.now):
            timestamp = Timestamp(
                GoTime.from_datetime(self.now + TIMESTAMP_LIFE),
                self._next(repo, "timestamp"),
                {"snapshot": FileMeta.for_bytes(snapshot)},
            )
            self._signed(gun, repo, "timestamp", timestamp)

    def _next(self, repo: _Repo, role: str) -> int:
        current = repo.current(role)
        return parse_role_file(current, role).body.version + 1 if current else 1

    def _signed(self, gun: str, repo: _Repo, role: str, body: Snapshot | Timestamp) -> bytes:
        key = self.get_server_key(gun, role)
        envelope: Envelope[Any] = Envelope.create(body)
        signature = sign(repo.keys[role], key, envelope.signed_bytes)
        data = envelope.with_signatures((signature,)).to_bytes()
        repo.files.setdefault(role, []).append(data)
        return data

    # -- faults ------------------------------------------------------------------

    def lie(self, gun: str, name: str, data: bytes) -> None:
        """Serve `data` for `name` from now on (an old file, a forged one)."""
        self.lies[(gun, name)] = data

    def roll_back(self, gun: str, role: str, version: int) -> None:
        """Serve the repository as it was when `role` was at `version`: an old timestamp,
        whose snapshot and files the server still has by checksum (a consistent rollback)."""
        repo = self.repos[gun]
        old = next(d for d in repo.files[role] if parse_role_file(d, role).body.version == version)
        for timestamp in repo.files["timestamp"]:
            snap_meta = parse_role_file(timestamp, "timestamp").body.meta["snapshot"]
            snapshot = self.get_metadata(gun, f"snapshot.{snap_meta.sha256_hex}.json")
            assert snapshot is not None
            if parse_role_file(snapshot, "snapshot").body.meta[role].matches(old) is None:
                self.lie(gun, "timestamp.json", timestamp)
                return
        raise AssertionError(f"no timestamp of the double records {role} v{version}")

    def fast_forward(self, gun: str, role: str, version: int) -> None:
        """Serve a validly signed `role` (timestamp or snapshot) at `version`, far ahead of the
        honest one: what whoever holds that server-managed key can do (TUF's fast-forward
        attack). A fast-forwarded snapshot comes with a timestamp at `version` recording it.
        `lies.clear()` goes back to the honest versions."""
        repo = self.repos[gun]
        snapshot = repo.current("snapshot")
        assert snapshot is not None
        if role == "snapshot":
            body = parse_role_file(snapshot, "snapshot").body
            snapshot = self._signed_only(repo, gun, "snapshot", replace(body, version=version))
            sha = hashlib.sha256(snapshot).hexdigest()
            self.lie(gun, f"snapshot.{sha}.json", snapshot)
        else:
            assert role == "timestamp", role
        timestamp = Timestamp(
            GoTime.from_datetime(self.now + TIMESTAMP_LIFE),
            version,
            {"snapshot": FileMeta.for_bytes(snapshot)},
        )
        self.lie(gun, "timestamp.json", self._signed_only(repo, gun, "timestamp", timestamp))

    def rotate_server_key(self, gun: str, role: str) -> Key:
        """Replace the server's `role` key (snapshot or timestamp), as `notary key rotate
        <gun> <role> -r` does; a root listing the new key must then be published."""
        repo = self.repos[gun]
        repo.keys[role] = PrivateKey(ed25519.Ed25519PrivateKey.generate())
        return repo.keys[role].public_key()

    def _signed_only(self, repo: _Repo, gun: str, role: str, body: Snapshot | Timestamp) -> bytes:
        key = self.get_server_key(gun, role)
        envelope: Envelope[Any] = Envelope.create(body)
        return envelope.with_signatures(
            (sign(repo.keys[role], key, envelope.signed_bytes),)
        ).to_bytes()

    def forget(self, gun: str) -> None:
        """Lose the repository (a wiped database, a restored backup)."""
        self.repos.pop(gun, None)
