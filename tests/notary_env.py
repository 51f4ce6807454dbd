"""A real notary-server on loopback and a driver for the real `notary` client.

One server per test session: `online.localserver`'s memory shape (TLS with a
throwaway certificate, memory storage, the in-process signer, a free port), the
same code `ceremony-online local-server` and `drill` run. `NotaryCli` runs the real client against it with a fresh
trust directory and passphrases from the environment, so nothing prompts.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from online.localserver import (
    LOG_NAME,
    LocalServer,
    free_port,
    start_memory_server,
    stop_processes,
)

__all__ = ["PASSPHRASE", "PASSPHRASE_ENV", "NotaryCli", "NotaryServer", "free_port", "start_server"]

PASSPHRASE = "ceremony-test-passphrase"  # test-only secret, never a real key
PASSPHRASE_ENV = {
    "NOTARY_ROOT_PASSPHRASE": PASSPHRASE,
    "NOTARY_TARGETS_PASSPHRASE": PASSPHRASE,
    "NOTARY_SNAPSHOT_PASSPHRASE": PASSPHRASE,
    "NOTARY_DELEGATION_PASSPHRASE": PASSPHRASE,
}


@dataclass
class NotaryServer:
    """A running notary-server: `online.localserver`'s memory shape, as the tests use it."""

    local: LocalServer

    @property
    def directory(self) -> Path:
        return self.local.directory

    @property
    def url(self) -> str:
        return self.local.url

    @property
    def port(self) -> int:
        return self.local.port

    @property
    def ca(self) -> Path:
        return self.local.ca

    @property
    def log(self) -> Path:
        return self.local.directory / LOG_NAME

    def stop(self) -> None:
        stop_processes(self.local.processes)

    def fetch(self, gun: str, name: str) -> bytes:
        """GET a metadata file straight from the server (test-side, not our client)."""
        ctx = ssl.create_default_context(cafile=str(self.ca))
        with urllib.request.urlopen(
            f"{self.url}/v2/{gun}/_trust/tuf/{name}", context=ctx, timeout=10
        ) as r:
            return bytes(r.read())


def start_server(directory: Path, extra_config: dict[str, object] | None = None) -> NotaryServer:
    """The same server `ceremony-online local-server` runs (one implementation for both)."""
    if shutil.which("notary-server") is None:
        raise RuntimeError("notary-server is not installed: run `make test`, which installs it")
    return NotaryServer(start_memory_server(directory, extra_config=extra_config))


@dataclass
class NotaryCli:
    """The real `notary` client with its own trust directory."""

    server: NotaryServer
    trust_dir: Path

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(PASSPHRASE_ENV)
        return env

    def run(
        self, *args: str, stdin: str = "", check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        cmd = [
            "notary",
            "-s",
            self.server.url,
            "--tlscacert",
            str(self.server.ca),
            "-d",
            str(self.trust_dir),
            *args,
        ]
        proc = subprocess.run(
            cmd, input=stdin, capture_output=True, text=True, env=self.env(), timeout=120
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def list_targets(self, gun: str, role: str | None = None) -> dict[str, str]:
        """`notary list`: target name -> sha256 hex digest, as the real client sees it."""
        args = ["list", gun] + (["--roles", role] if role else [])
        out = self.run(*args).stdout
        result: dict[str, str] = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 4 and len(parts[1]) == 64 and parts[0] not in ("NAME",):
                result[parts[0]] = parts[1]
        return result

    def metadata_dir(self, gun: str) -> Path:
        return self.trust_dir / "tuf" / gun / "metadata"
