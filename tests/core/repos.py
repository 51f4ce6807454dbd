"""Repositories for the core tests.

Two kinds:

* `NotaryRepo`: made by the REAL notary 0.7 client against the real server
  (`notary_repo`). Built once per test session (memoised per server), because
  every step is a real process: `init -p`; three targets with `add -p` (one
  named with `&<>` and non-ASCII, one with `--custom` canonical JSON); a
  `targets/releases` delegation whose certificate and key come from
  `openssl req -x509`; a target signed by that delegation; `key rotate snapshot
  -r`; `key rotate root`; `notary list`. The server's files, the client's cache
  directory and a consistent set captured before the later publishes are kept.

* `OfflineRepo`: a repository built entirely with `ceremony.core.keys`, every key
  held by the test (root certificate from `make_root_certificate`). Tamper cases
  that need re-signing (a parent re-hashing a modified child, a delegation
  signing outside its paths, per-role expiry) use it, because the real server
  signs timestamp and snapshot with keys a test can never hold.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ceremony.core.gotime import GoTime
from ceremony.core.metadata import (
    DelegatedRole,
    Delegations,
    Envelope,
    FileMeta,
    Key,
    RoleKeys,
    Root,
    Snapshot,
    Targets,
    Timestamp,
    body_bytes,
    parse_any,
)
from ceremony.signing.certificates import make_root_certificate
from ceremony.signing.private import PrivateKey, sign
from tests.notary_env import NotaryCli, NotaryServer

# ---------------------------------------------------------------------------
# the real notary client

WEIRD_NAME = "dir/a&b<c>-é☃.txt"  # HTML-escaped in the envelope, raw in the signed bytes
CUSTOM_JSON = '{"a":{"b":[1,2]},"n":"é","z":"x"}'  # canonical, or the server rejects it
TARGET_CONTENTS = {
    "hello.txt": b"hello\n",
    WEIRD_NAME: b"second target",
    "custom.bin": b"\x00\x01 third target \xff",
}
RELEASE_NAME = "rel-1"
RELEASE_CONTENT = b"a release signed by targets/releases\n"
ROLE_FILES = ("root", "targets", "targets/releases", "snapshot", "timestamp")


@dataclass(frozen=True)
class NotaryRepo:
    """Metadata the real notary client and server produced for one GUN."""

    gun: str
    files: Mapping[str, bytes]  # verify_repository keys: root, N.root (older roots), targets, ...
    versioned_roots: Mapping[int, bytes]  # every N.root.json the server holds, the newest too
    cache_dir: Path  # the client's tuf/<gun>/metadata
    early: Mapping[str, bytes]  # root v1, targets, snapshot, timestamp after the three targets
    listed: Mapping[str, str]  # `notary list`: target name -> sha256 hex
    delegation_key_pem: bytes  # the openssl private key of targets/releases
    delegation_cert_pem: bytes

    @property
    def now(self) -> datetime:
        """A fixed verification time from the metadata: the timestamp's expiry minus a day."""
        return parse_any(self.files["timestamp"]).body.expires.to_datetime() - timedelta(days=1)

    def cache_files(self) -> dict[str, bytes]:
        """The client's cache as `verify_repository` takes it (as `ceremony verify` reads it)."""
        return {
            p.relative_to(self.cache_dir).as_posix()[: -len(".json")]: p.read_bytes()
            for p in sorted(self.cache_dir.rglob("*.json"))
        }


_BUILT: dict[tuple[int, str], NotaryRepo] = {}


def _fetch_all(server: NotaryServer, gun: str, names: tuple[str, ...]) -> dict[str, bytes]:
    return {name: server.fetch(gun, f"{name}.json") for name in names}


def _openssl_cert(directory: Path, cn: str) -> tuple[Path, Path]:
    key, crt = directory / f"{cn}.key", directory / f"{cn}.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "3650", "-keyout", str(key), "-out", str(crt), "-subj", f"/CN={cn}"],
        check=True, capture_output=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    return key, crt


def _build(server: NotaryServer, directory: Path) -> NotaryRepo:
    gun = "example.com/core/full"
    cli = NotaryCli(server, directory / "trust")
    cli.run("init", "-p", gun)
    payloads = directory / "payloads"
    payloads.mkdir()
    custom = payloads / "custom.json"
    custom.write_text(CUSTOM_JSON, encoding="utf-8")
    for i, (name, content) in enumerate(TARGET_CONTENTS.items()):
        path = payloads / f"t{i}"
        path.write_bytes(content)
        extra = ("--custom", str(custom)) if name == "custom.bin" else ()
        cli.run("add", "-p", gun, name, str(path), *extra)
    early = _fetch_all(server, gun, ("root", "targets", "snapshot", "timestamp"))

    key, crt = _openssl_cert(directory, "releases")
    cli.run("delegation", "add", gun, "targets/releases", str(crt), "--all-paths")
    cli.run("key", "import", str(key), "--role", "targets/releases")
    cli.run("publish", gun)
    release = payloads / "release"
    release.write_bytes(RELEASE_CONTENT)
    cli.run("add", "-p", gun, RELEASE_NAME, str(release), "--roles", "targets/releases")

    cli.run("key", "rotate", gun, "snapshot", "-r")
    rotated = cli.run("key", "rotate", gun, "root", stdin="yes\n")
    assert "Successfully rotated root key" in rotated.stdout, rotated.stdout
    listed = cli.list_targets(gun)
    listed.update(cli.list_targets(gun, "targets/releases"))

    files = _fetch_all(server, gun, ROLE_FILES)
    version = parse_any(files["root"]).body.version
    versioned = {n: server.fetch(gun, f"{n}.root.json") for n in range(1, version + 1)}
    files.update({f"{n}.root": data for n, data in versioned.items() if n < version})
    return NotaryRepo(
        gun=gun,
        files=files,
        versioned_roots=versioned,
        cache_dir=cli.metadata_dir(gun),
        early=early,
        listed=listed,
        delegation_key_pem=key.read_bytes(),
        delegation_cert_pem=crt.read_bytes(),
    )


def notary_repo(server: NotaryServer, factory: pytest.TempPathFactory) -> NotaryRepo:
    """The full scenario, built once per server (i.e. once per session and xdist worker)."""
    memo_key = (id(server), "full")
    if memo_key not in _BUILT:
        _BUILT[memo_key] = _build(server, factory.mktemp("notary-full-repo"))
    return _BUILT[memo_key]


# ---------------------------------------------------------------------------
# small helpers shared by the tests

_SENTENCE_BREAK = re.compile(r"[.!?]\s+[A-Z]")


def assert_one_sentence(message: str) -> None:
    """An operator-facing error: one line, one sentence, ending with a full stop."""
    assert "\n" not in message, message
    assert message.endswith("."), message
    assert "Traceback" not in message, message
    assert not _SENTENCE_BREAK.search(message[:-1]), message


def with_signatures(data: bytes, transform: Any) -> bytes:
    """Re-serialise a metadata file after `transform(signatures) -> signatures`."""
    env = parse_any(data)
    return replace(env, signatures=tuple(transform(env.signatures))).to_bytes()


def flip_signature(data: bytes, index: int = 0) -> bytes:
    """The same file with one bit of one signature flipped (still valid base64 and JSON)."""

    def flip(sigs: tuple[Any, ...]) -> list[Any]:
        out = list(sigs)
        sig = out[index]
        out[index] = replace(sig, sig=bytes([sig.sig[0] ^ 0x01]) + sig.sig[1:])
        return out

    return with_signatures(data, flip)


# ---------------------------------------------------------------------------
# a repository where the test holds every key

START = datetime(2030, 1, 1, tzinfo=UTC)  # fixed: no test reads the wall clock
LIFETIMES = {
    "root": timedelta(days=3650),
    "targets": timedelta(days=3 * 365),
    "snapshot": timedelta(days=3 * 365),
    "timestamp": timedelta(days=14),
}


@dataclass(frozen=True)
class Held:
    """A private key and the metadata key it signs for."""

    private: PrivateKey
    key: Key

    @classmethod
    def ecdsa(cls) -> Held:
        private = PrivateKey.generate_ecdsa()
        return cls(private, private.public_key())

    @property
    def keyid(self) -> str:
        return self.key.key_id


Signable = Root | Targets | Snapshot | Timestamp
Part = Signable | Envelope[Any] | bytes | None


@dataclass
class OfflineRepo:
    """Root, targets, a `targets/releases` delegation (and optionally a nested one), snapshot, timestamp.

    `files()` signs whatever is not given pre-signed and re-computes the
    snapshot and timestamp over the final bytes, so a test can tamper with
    exactly one role and still present a consistent repository.
    """

    gun: str = "example.com/core/offline"
    start: datetime = START
    root_keys: list[Held] = field(default_factory=list)
    keys: dict[str, Held] = field(default_factory=dict)
    _signed: dict[tuple[str, bytes], Envelope[Any]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.root_keys:
            self.root_keys = [self.new_root_key()]
        for role in (
            "targets",
            "snapshot",
            "timestamp",
            "targets/releases",
            "targets/releases/nightly",
        ):
            self.keys.setdefault(role, Held.ecdsa())

    @property
    def now(self) -> datetime:
        return self.start + timedelta(days=1)

    def new_root_key(self) -> Held:
        private = PrivateKey.generate_ecdsa()
        return Held(private, make_root_certificate(private, self.gun, self.start))

    def expires(self, role: str, delta: timedelta | None = None) -> GoTime:
        lifetime = delta if delta is not None else LIFETIMES.get(role, LIFETIMES["targets"])
        return GoTime.from_datetime(self.start + lifetime)

    # bodies -----------------------------------------------------------------

    def root_body(
        self, version: int = 1, root_keys: list[Held] | None = None, threshold: int = 1, **kw: Any
    ) -> Root:
        holders = root_keys if root_keys is not None else self.root_keys
        keys = {h.keyid: h.key for h in holders}
        for role in ("targets", "snapshot", "timestamp"):
            keys[self.keys[role].keyid] = self.keys[role].key
        roles = {
            "root": RoleKeys(tuple(h.keyid for h in holders), threshold),
            **{r: RoleKeys((self.keys[r].keyid,), 1) for r in ("snapshot", "targets", "timestamp")},
        }
        return Root(kw.pop("expires", self.expires("root")), version, keys, roles, **kw)

    def targets_body(
        self,
        version: int = 1,
        targets: Mapping[str, FileMeta] | None = None,
        paths: tuple[str, ...] = ("",),
        **kw: Any,
    ) -> Targets:
        rel = self.keys["targets/releases"]
        delegations = Delegations(
            {rel.keyid: rel.key}, (DelegatedRole("targets/releases", (rel.keyid,), 1, paths),)
        )
        if targets is None:
            targets = {
                "hello.txt": FileMeta.for_bytes(b"hello\n"),
                "a&b<c>\u2028é": FileMeta.for_bytes(b"odd name"),
            }
        return Targets(
            kw.pop("expires", self.expires("targets")), version, targets, delegations, **kw
        )

    def releases_body(
        self,
        version: int = 1,
        targets: Mapping[str, FileMeta] | None = None,
        nested_paths: tuple[str, ...] | None = None,
        **kw: Any,
    ) -> Targets:
        delegations = Delegations()
        if nested_paths is not None:
            n = self.keys["targets/releases/nightly"]
            delegations = Delegations(
                {n.keyid: n.key},
                (DelegatedRole("targets/releases/nightly", (n.keyid,), 1, nested_paths),),
            )
        if targets is None:
            targets = {"rel-1": FileMeta.for_bytes(b"release one")}
        return Targets(
            kw.pop("expires", self.expires("targets")), version, targets, delegations, **kw
        )

    # signing ----------------------------------------------------------------

    def signers(self, role: str) -> list[Held]:
        return list(self.root_keys) if role == "root" else [self.keys[role]]

    def sign(self, body: Signable, holders: list[Held]) -> Envelope[Any]:
        message = body_bytes(body)
        sigs = tuple(sign(h.private, h.key, message) for h in holders)
        return Envelope.create(body, sigs)

    def signed(self, role: str, body: Signable) -> Envelope[Any]:
        """Signed by the role's own keys; memoised, so equal bodies give equal bytes
        (ECDSA signatures are randomised) and a parent made earlier still matches."""
        memo = (role, body_bytes(body))
        if memo not in self._signed:
            self._signed[memo] = self.sign(body, self.signers(role))
        return self._signed[memo]

    def _bytes(self, role: str, part: Part, default: Signable) -> bytes:
        if isinstance(part, bytes):
            return part
        if isinstance(part, Envelope):
            return part.to_bytes()
        return self.signed(role, part if part is not None else default).to_bytes()

    def files(
        self,
        *,
        root: Part = None,
        targets: Part = None,
        releases: Part = None,
        nightly: Part = None,
        snapshot: Part = None,
        timestamp: Part = None,
        snapshot_version: int = 1,
        timestamp_version: int = 1,
        extra: Mapping[str, bytes] | None = None,
    ) -> dict[str, bytes]:
        """A complete repository; parts not given are made and signed with the right key."""
        out = {
            "root": self._bytes("root", root, self.root_body()),
            "targets": self._bytes("targets", targets, self.targets_body()),
            "targets/releases": self._bytes("targets/releases", releases, self.releases_body()),
        }
        if nightly is not None:
            out["targets/releases/nightly"] = self._bytes(
                "targets/releases/nightly", nightly, self.releases_body()
            )
        out.update(extra or {})
        meta = {name: FileMeta.for_bytes(data) for name, data in out.items() if "." not in name}
        snap = Snapshot(self.expires("snapshot"), snapshot_version, meta)
        out["snapshot"] = self._bytes("snapshot", snapshot, snap)
        ts = Timestamp(
            self.expires("timestamp"),
            timestamp_version,
            {"snapshot": FileMeta.for_bytes(out["snapshot"])},
        )
        out["timestamp"] = self._bytes("timestamp", timestamp, ts)
        return out

    def unsigned_swap(self, role: str, original: Signable, modified: Signable) -> Envelope[Any]:
        """`modified` carrying the signatures made over `original`: an edit without the key."""
        env = self.signed(role, original)
        return Envelope.create(modified, env.signatures)
