"""A stand-in for the offline half in online tests: test keys and a naive signer.

It trusts the request it is given (the real offline half verifies the base
against its trust state and reviews the changes); it only re-computes the
bodies with `ceremony.core.changes.plan` and signs their canonical bytes with the
keys it holds, so the online half can be tested end to end against a real
server without the offline CLI.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ceremony.core.documents import (
    PublicKeyEntry,
    PublicKeysDocument,
    Request,
    RoleSignatures,
    SignaturesDocument,
)
from ceremony.core.keys import canonical_key_id, pem_encode
from ceremony.core.metadata import Body, Key, parse_any
from ceremony.core.plan import Plan, plan
from ceremony.signing.certificates import make_root_certificate
from ceremony.signing.private import PrivateKey, sign


@dataclass(frozen=True)
class TestKey:
    """A private key and the metadata key it signs for (a certificate for root)."""

    role: str
    private: PrivateKey
    key: Key

    @property
    def key_id(self) -> str:
        return self.key.key_id

    def public_pem(self) -> bytes:
        """PEM for `delegation add --cert`: the certificate for x509 keys, else a PUBLIC KEY."""
        if self.key.is_x509:
            return self.key.public_bytes
        return pem_encode("PUBLIC KEY", self.key.public_bytes)


def root_key(gun: str, now: datetime | None = None) -> TestKey:
    private = PrivateKey.generate_ecdsa()
    return TestKey("root", private, make_root_certificate(private, gun, now or datetime.now(UTC)))


def plain_key(role: str) -> TestKey:
    private = PrivateKey.generate_ecdsa()
    return TestKey(role, private, private.public_key())


def cert_key(role: str, common_name: str = "releases") -> TestKey:
    """A delegation key wrapped in a self-signed certificate (`ecdsa-x509`), as notary users make."""
    private = PrivateKey.generate_ecdsa()
    return TestKey(role, private, make_root_certificate(private, common_name, datetime.now(UTC)))


def write_public_keys(path: Path, gun: str, keys: Iterable[TestKey]) -> Path:
    """The public keys file `ceremony key export-public` would write."""
    entries = tuple(PublicKeyEntry(k.role, canonical_key_id(k.key), k.key) for k in keys)
    path.write_bytes(PublicKeysDocument(gun, entries).to_bytes())
    return path


def _plan_of(request: Request) -> Plan:
    """The bodies to sign, from the newest base file of each role (trusted as given)."""
    newest: dict[str, tuple[int, Body]] = {}
    for b in request.base:
        assert b.data is not None, "the test signer needs a full request"
        body = parse_any(b.data).body
        if b.role not in newest or b.version > newest[b.role][0]:
            newest[b.role] = (b.version, body)
    return plan({role: body for role, (_, body) in newest.items()}, request.changes)


def sign_request(request_bytes: bytes, keys: Iterable[TestKey]) -> bytes:
    """A signatures document with every signature these keys can make for the request."""
    request = Request.from_bytes(request_bytes)
    result = _plan_of(request)
    holders = list(keys)
    roles = []
    for role, rp in result.roles.items():
        wanted = {kid for s in rp.signers for kid in s.keys}
        sigs = tuple(sign(k.private, k.key, rp.signed_bytes) for k in holders if k.key_id in wanted)
        if sigs:
            roles.append(RoleSignatures(role, rp.digest, sigs))
    return SignaturesDocument(request.id, request.digest, request.gun, tuple(roles)).to_bytes()


def sign_with_foreign_key(request_bytes: bytes, role: str, stranger: TestKey) -> bytes:
    """A signatures document signing `role` with a key that is not one of its signers."""
    request = Request.from_bytes(request_bytes)
    exp = request.expectation(role)
    assert exp is not None
    result = _plan_of(request)
    sig = sign(stranger.private, stranger.key, result.roles[role].signed_bytes)
    doc = SignaturesDocument(
        request.id, request.digest, request.gun, (RoleSignatures(role, exp.digest, (sig,)),)
    )
    return doc.to_bytes()


# ---------------------------------------------------------------------------
# running `ceremony-online`


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


@dataclass(frozen=True)
class Online:
    """`ceremony-online` with its own home, pointed at a server (in-process or as a subprocess)."""

    home: Path
    url: str
    ca: Path

    def argv(self, url: str | None = None) -> list[str]:
        return [
            "--home",
            str(self.home),
            "--server",
            self.url if url is None else url,
            "--tls-ca",
            str(self.ca),
        ]

    def run(self, *args: str, url: str | None = None) -> Result:
        """In-process, through the same `main` the console script calls."""
        from online.cli import main

        out, err = io.StringIO(), io.StringIO()
        code = 0
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main([*self.argv(url), *args])
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
        return Result(code, out.getvalue(), err.getvalue())

    def sub(self, *args: str, url: str | None = None) -> Result:
        """As a separate process, so the exit code is the real one."""
        exe = Path(sys.executable).parent / "ceremony-online"
        proc = subprocess.run(
            [str(exe), *self.argv(url), *args],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
            env={k: v for k, v in os.environ.items() if not k.startswith("CEREMONY_")},
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def ok(self, *args: str) -> Result:
        result = self.run(*args)
        assert result.code == 0, f"{args} exited {result.code}: {result.text}"
        return result

    def export_and_sign(self, gun: str, directory: Path, keys: Iterable[TestKey]) -> Path:
        """Export the staged changes and sign them; returns the signatures file."""
        request = directory / f"{next(_names)}.request.json"
        self.ok("export", gun, "--out", str(request))
        signatures = request.with_suffix(".signatures.json")
        signatures.write_bytes(sign_request(request.read_bytes(), keys))
        return signatures

    def publish_staged(self, gun: str, directory: Path, keys: Iterable[TestKey]) -> Result:
        return self.ok("publish", str(self.export_and_sign(gun, directory, keys)))

    def create(self, gun: str, directory: Path, root: TestKey, targets: TestKey) -> None:
        """A published repository with one root and one targets key."""
        public = write_public_keys(directory / f"{next(_names)}.keys.json", gun, [root, targets])
        self.ok("init", gun, "--public-keys", str(public))
        self.publish_staged(gun, directory, [root, targets])


_names = itertools.count()
