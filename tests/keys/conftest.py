"""Shared keys and helpers for the key-layer tests (generated once: RSA is slow)."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from ceremony.signing.private import PrivateKey
from tests.transcript_head import without_head

ROOT = Path(__file__).resolve().parents[2]
CEREMONY = ROOT / ".venv" / "bin" / "ceremony"
NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
GUN = "example.com/acme/app"


@pytest.fixture(scope="session")
def ec_key() -> PrivateKey:
    return PrivateKey(ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture(scope="session")
def rsa_key() -> PrivateKey:
    return PrivateKey(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(scope="session")
def ed_key() -> PrivateKey:
    return PrivateKey(ed25519.Ed25519PrivateKey.generate())


@pytest.fixture(params=["ecdsa", "rsa", "ed25519"])
def any_key(request: pytest.FixtureRequest) -> PrivateKey:
    name = {"ecdsa": "ec_key", "rsa": "rsa_key", "ed25519": "ed_key"}[request.param]
    key: PrivateKey = request.getfixturevalue(name)
    return key


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any Notary passphrase, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTARY_", "CEREMONY_"))}
    env.update(extra)
    return env


def run_ceremony(
    home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The real `ceremony` console script, stdin closed (no terminal); stderr without the
    transcript head line every command ends with."""
    proc = subprocess.run(
        [str(CEREMONY), "--home", str(home), *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=env if env is not None else clean_env(),
        timeout=60,
    )
    return subprocess.CompletedProcess(
        proc.args, proc.returncode, proc.stdout, without_head(proc.stderr)
    )
