"""A real notary-server on loopback and a driver for the real `notary` client.

One server per test session: TLS with a throwaway certificate (SAN 127.0.0.1),
memory storage, the in-process local signer, a free port picked first
(notary-server.md). `NotaryCli` runs the real client against it with a fresh
trust directory and passphrases from the environment, so nothing prompts.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PASSPHRASE = "ceremony-test-passphrase"  # test-only secret, never a real key
PASSPHRASE_ENV = {
    "NOTARY_ROOT_PASSPHRASE": PASSPHRASE,
    "NOTARY_TARGETS_PASSPHRASE": PASSPHRASE,
    "NOTARY_SNAPSHOT_PASSPHRASE": PASSPHRASE,
    "NOTARY_DELEGATION_PASSPHRASE": PASSPHRASE,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_tls_cert(directory: Path) -> tuple[Path, Path]:
    key, crt = directory / "notary-server.key", directory / "notary-server.crt"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "3650",
            "-keyout",
            str(key),
            "-out",
            str(crt),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )
    return key, crt


@dataclass
class NotaryServer:
    """A running notary-server process."""

    directory: Path
    port: int
    ca: Path
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.directory / "server.log"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def config(self) -> dict[str, Any]:
        """notary-server's configuration: TLS, memory storage, the in-process signer."""
        return {
            "server": {
                "http_addr": f"127.0.0.1:{self.port}",
                "tls_key_file": "./notary-server.key",
                "tls_cert_file": "./notary-server.crt",
            },
            "trust_service": {"type": "local"},
            "storage": {"backend": "memory"},
            "logging": {"level": "info"},
        }

    def start(self) -> None:
        config = self.directory / "server-config.json"
        config.write_text(json.dumps(self.config()))
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                ["notary-server", "-config", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        ctx = ssl.create_default_context(cafile=str(self.ca))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"notary-server exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(
                    f"{self.url}/_notary_server/health", context=ctx, timeout=2
                ):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("notary-server did not become healthy")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)
        self.proc = None

    def fetch(self, gun: str, name: str) -> bytes:
        """GET a metadata file straight from the server (test-side, not our client)."""
        ctx = ssl.create_default_context(cafile=str(self.ca))
        with urllib.request.urlopen(
            f"{self.url}/v2/{gun}/_trust/tuf/{name}", context=ctx, timeout=10
        ) as r:
            return bytes(r.read())


def start_server(directory: Path) -> NotaryServer:
    if shutil.which("notary-server") is None:
        raise RuntimeError("notary-server is not installed: run `make test`, which installs it")
    directory.mkdir(parents=True, exist_ok=True)
    _, crt = make_tls_cert(directory)
    server = NotaryServer(directory, free_port(), crt)
    server.start()
    return server


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
