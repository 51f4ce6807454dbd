"""Throwaway notary-servers on loopback, for rehearsals (`local-server`, `drill`) and tests.

One function per shape of server, each a context manager yielding the same `LocalServer`
(URL, CA file, the processes it started), so callers do not care which shape runs. The
shape here is the *memory* one: notary-server with the memory store and the in-process
signer, TLS with a throwaway certificate (SAN 127.0.0.1), on 127.0.0.1 and a free port.
Its data lives only as long as the process (a restart loses everything), so it is for
rehearsals and tests only. The facts it relies on are in ../shared/notary-server.md.
"""

from __future__ import annotations

import json
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ceremony.core.errors import EnvironmentFailure
from ceremony.edge.fsutil import atomic_write

HOST = "127.0.0.1"
CONFIG_NAME = "server-config.json"  # notary-server picks the format from the extension
CERT_NAME = "notary-server.crt"
KEY_NAME = "notary-server.key"
LOG_NAME = "server.log"
ENV_NAME = "env"
READY_TIMEOUT = 20.0  # seconds from spawn to a healthy server (it takes ~60 ms when idle)
STOP_TIMEOUT = 10.0  # seconds after SIGTERM before the process is killed


@dataclass(frozen=True, slots=True)
class LocalServer:
    """A running throwaway trust server: where it answers and what runs it."""

    url: str
    ca: Path
    directory: Path
    processes: tuple[subprocess.Popen[bytes], ...]

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def env_lines(self) -> str:
        """`CEREMONY_SERVER=…` and `CEREMONY_TLS_CA=…` (exported), for `eval` in a POSIX shell."""
        return (
            f"CEREMONY_SERVER={_quote(self.url)}\n"
            f"CEREMONY_TLS_CA={_quote(str(self.ca))}\n"
            "export CEREMONY_SERVER CEREMONY_TLS_CA\n"
        )

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.processes)


def _quote(text: str) -> str:
    return shlex.quote(text)


def free_port() -> int:
    """A port nobody listens on now (the kernel's pick); never a hard-coded one."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def make_tls_certificate(directory: Path, now: datetime) -> tuple[Path, Path]:
    """A self-signed P-256 certificate for 127.0.0.1 and localhost (Go needs the SAN)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(IPv4Address(HOST)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = directory / KEY_NAME, directory / CERT_NAME
    atomic_write(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    atomic_write(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return key_path, cert_path


def memory_config(port: int) -> dict[str, object]:
    """notary-server's configuration: TLS, memory storage, the in-process local signer."""
    return {
        "server": {
            "http_addr": f"{HOST}:{port}",
            "tls_key_file": f"./{KEY_NAME}",
            "tls_cert_file": f"./{CERT_NAME}",
        },
        "trust_service": {"type": "local"},
        "storage": {"backend": "memory"},
        "logging": {"level": "info"},
    }


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise EnvironmentFailure(
            f"{name} is not installed: install the Debian package `notary` "
            "(`make test` installs it)."
        )
    return found


def wait_healthy(
    url: str, ca: Path, processes: tuple[subprocess.Popen[bytes], ...], log: Path
) -> None:
    """Poll the health endpoint, failing at once if a process died (e.g. the port was taken)."""
    context = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        for proc in processes:
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-600:] if log.exists() else ""
                reason = " (address already in use)" if "address already in use" in tail else ""
                raise EnvironmentFailure(
                    f"notary-server exited with status {proc.returncode} while starting"
                    f"{reason}; its log is {log}."
                )
        try:
            with urllib.request.urlopen(  # noqa: S310 - https to our own loopback server
                f"{url}/_notary_server/health", context=context, timeout=2
            ):
                return
        except OSError:
            time.sleep(0.05)
    raise EnvironmentFailure(
        f"notary-server did not become healthy within {READY_TIMEOUT:.0f} s; its log is {log}."
    )


def stop_processes(processes: tuple[subprocess.Popen[bytes], ...]) -> None:
    """SIGTERM each process (last started first), wait, and kill any that lingers."""
    for proc in reversed(processes):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in reversed(processes):
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_memory_server(
    directory: Path, port: int | None = None, extra_config: dict[str, object] | None = None
) -> LocalServer:
    """Start the memory-store notary-server in `directory` and wait until it is healthy.

    `extra_config` adds top-level sections (e.g. `auth`). The caller owns the processes:
    stop them with `stop_processes` (or use `memory_server`).
    """
    binary = _binary("notary-server")
    directory.mkdir(parents=True, exist_ok=True)
    _, cert = make_tls_certificate(directory, datetime.now(UTC))
    port = free_port() if port is None else port
    config = directory / CONFIG_NAME
    settings = {**memory_config(port), **(extra_config or {})}
    atomic_write(config, json.dumps(settings, indent=2).encode(), mode=0o644)
    log = directory / LOG_NAME
    with log.open("ab") as sink:
        proc = subprocess.Popen(
            [binary, "-config", str(config)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a terminal's Ctrl-C reaches only us; we stop it in order
        )
    server = LocalServer(f"https://{HOST}:{port}", cert, directory, (proc,))
    try:
        wait_healthy(server.url, cert, server.processes, log)
    except BaseException:
        stop_processes(server.processes)
        raise
    return server


@contextmanager
def memory_server(directory: Path, port: int | None = None) -> Iterator[LocalServer]:
    """A throwaway memory-store notary-server for the duration of the `with` block."""
    server = start_memory_server(directory, port)
    try:
        yield server
    finally:
        stop_processes(server.processes)


def write_env_file(server: LocalServer) -> Path:
    """DIR/env: the `CEREMONY_SERVER` and `CEREMONY_TLS_CA` lines, for `eval "$(cat DIR/env)"`."""
    path = server.directory / ENV_NAME
    atomic_write(path, server.env_lines().encode(), mode=0o644)
    return path
