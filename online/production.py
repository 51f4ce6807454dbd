"""A production-shaped Notary on 127.0.0.1: PostgreSQL, notary-signer over mutual TLS, notary-server.

Real deployments (Docker's DTR, Harbor) run notary-server with `trust_service`
remote: a separate notary-signer holds the server-managed timestamp and snapshot
keys behind mutual-TLS gRPC, and both keep their data in PostgreSQL. This module
builds that shape in one folder, for rehearsals and for the tests that need data
to survive a restart (the memory store and the local trust service lose it):

    DIR/pg/                 the PostgreSQL cluster (owned by the `postgres` user when run as root)
    DIR/certs/              a throwaway CA; server, signer and client certificates (keys 0600)
    DIR/signer-config.json  notary-signer: gRPC with client_ca_file, postgres storage
    DIR/server-config.json  notary-server: TLS, trust_service remote, postgres storage
    DIR/ports.json          the ports, reused on the next start so the URL stays the same
    DIR/signer-passphrase   the passphrase notary-signer encrypts its keys with (0600)
    DIR/env                 `CEREMONY_SERVER=…` and `CEREMONY_TLS_CA=…`, ready to `eval`
    DIR/logs/               one log per process

`start_production(DIR)` builds what is missing (the cluster, the roles and schema,
the certificates), starts the three processes and waits until PostgreSQL answers,
the signer's port accepts and the server's health says 200; on an existing DIR it
keeps every file and row. `stop_production` stops them in reverse order.
`production_stack(DIR)` does both around a `with` block. Everything failing is one
`EnvironmentFailure` sentence (exit 3) naming the process and its log.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ceremony.core.errors import EnvironmentFailure
from ceremony.edge.fsutil import atomic_write

PG_USER = "postgres"
SIGNER_ALIAS = "ceremony"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
PROCESS_NAMES = ("postgres", "notary-signer", "notary-server")

# The tables notary 0.7 expects (its migrations/{server,signer}/postgresql files).
SERVER_SCHEMA = """
CREATE TABLE IF NOT EXISTS tuf_files (
    id serial PRIMARY KEY,
    created_at timestamp NULL DEFAULT NULL,
    updated_at timestamp NULL DEFAULT NULL,
    deleted_at timestamp NULL DEFAULT NULL,
    gun varchar(255) NOT NULL,
    role varchar(255) NOT NULL,
    version integer NOT NULL,
    data bytea NOT NULL,
    sha256 char(64) DEFAULT NULL,
    UNIQUE (gun, role, version)
);
CREATE INDEX IF NOT EXISTS tuf_files_sha256_idx ON tuf_files (sha256);
CREATE TABLE IF NOT EXISTS change_category (category varchar(20) PRIMARY KEY);
INSERT INTO change_category VALUES ('update'), ('deletion') ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS changefeed (
    id serial PRIMARY KEY,
    created_at timestamp DEFAULT CURRENT_TIMESTAMP,
    gun varchar(255) NOT NULL,
    version integer NOT NULL,
    sha256 char(64) DEFAULT NULL,
    category varchar(20) NOT NULL DEFAULT 'update' REFERENCES change_category
);
CREATE INDEX IF NOT EXISTS changefeed_gun_idx ON changefeed (gun);
"""
SIGNER_SCHEMA = """
CREATE TABLE IF NOT EXISTS private_keys (
    id serial PRIMARY KEY,
    created_at timestamp NULL DEFAULT NULL,
    updated_at timestamp NULL DEFAULT NULL,
    deleted_at timestamp NULL DEFAULT NULL,
    key_id varchar(255) NOT NULL UNIQUE,
    encryption_alg varchar(255) NOT NULL,
    keywrap_alg varchar(255) NOT NULL,
    algorithm varchar(50) NOT NULL,
    passphrase_alias varchar(50) NOT NULL,
    public bytea NOT NULL,
    private bytea NOT NULL,
    gun varchar(255) NOT NULL,
    role varchar(255) NOT NULL,
    last_used timestamp NULL DEFAULT NULL,
    UNIQUE (key_id, algorithm)
);
"""


@dataclass(frozen=True, slots=True)
class ProductionStack:
    """A running production-shaped Notary: where it answers and what runs it.

    `processes` maps each name in `PROCESS_NAMES` to its process (started by us,
    stopped by `stop_production`).
    """

    url: str
    ca: Path
    directory: Path
    ports: Mapping[str, int]
    processes: Mapping[str, subprocess.Popen[bytes]]

    @property
    def env_lines(self) -> tuple[str, str]:
        return (f"CEREMONY_SERVER={self.url}", f"CEREMONY_TLS_CA={self.ca}")


# ---------------------------------------------------------------------------
# public API


def start_production(directory: Path) -> ProductionStack:
    """Build what is missing in `directory`, start PostgreSQL, notary-signer and notary-server.

    Raises:
        EnvironmentFailure: a binary is missing, the folder is unusable, or a process
            did not come up (its log is named); whatever was started is stopped again.
    """
    directory = directory.resolve()
    _check_binaries()
    directory.mkdir(mode=0o711, parents=True, exist_ok=True)
    directory.chmod(0o711)  # PostgreSQL's own user must pass through to DIR/pg
    ports = _ports(directory)
    ca = _certificates(directory / "certs")
    _write_configs(directory, ports)
    started: dict[str, subprocess.Popen[bytes]] = {}
    try:
        started["postgres"] = start_postgres(directory, ports["postgres"])
        started["notary-signer"] = start_signer(directory, ports)
        started["notary-server"] = start_server(directory, ports)
    except BaseException:
        _stop_all(started)
        raise
    stack = ProductionStack(
        f"https://127.0.0.1:{ports['server']}", ca, directory, ports, dict(started)
    )
    atomic_write(directory / "env", ("\n".join(stack.env_lines) + "\n").encode(), mode=0o644)
    return stack


def stop_production(stack: ProductionStack) -> None:
    """Stop notary-server, notary-signer, then PostgreSQL (each waited for; killed if stuck)."""
    _stop_all(dict(stack.processes))


@contextlib.contextmanager
def production_stack(directory: Path) -> Iterator[ProductionStack]:
    """`start_production` / `stop_production` around a block."""
    stack = start_production(directory)
    try:
        yield stack
    finally:
        stop_production(stack)


def serve_production(directory: Path, say: Callable[[str], None]) -> None:
    """Start the stack, `say` its env lines, and run until SIGINT or SIGTERM; then stop it.

    For a foreground command (`ceremony-online local-server --production`): returns
    normally after a signal, with every process stopped.

    Raises:
        EnvironmentFailure: the stack did not start, or one of its processes died.
    """
    stop = {"signal": False}

    def on_signal(_number: int, _frame: object) -> None:
        stop["signal"] = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    stack: ProductionStack | None = None
    try:
        stack = start_production(directory)
        for line in stack.env_lines:
            say(line)
        while not stop["signal"]:
            for name, proc in stack.processes.items():
                if proc.poll() is not None:
                    raise EnvironmentFailure(
                        f"{name} exited with status {proc.returncode}: see "
                        f"{stack.directory / 'logs' / (name + '.log')}; the others were stopped."
                    )
            time.sleep(0.2)
    finally:
        if stack is not None:
            stop_production(stack)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def restart(stack: ProductionStack, name: str) -> ProductionStack:
    """Start one process of the stack again (after it died or was stopped), same ports and data."""
    stop_process(stack.processes[name], signal.SIGINT if name == "postgres" else signal.SIGTERM)
    if name == "postgres":
        proc = start_postgres(stack.directory, stack.ports["postgres"])
    elif name == "notary-signer":
        proc = start_signer(stack.directory, stack.ports)
    elif name == "notary-server":
        proc = start_server(stack.directory, stack.ports)
    else:
        raise ValueError(name)
    return ProductionStack(
        stack.url, stack.ca, stack.directory, stack.ports, {**stack.processes, name: proc}
    )


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Signal one process we started and wait for it (SIGKILL after `STOP_TIMEOUT`)."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)


# ---------------------------------------------------------------------------
# the processes


def pg_bindir() -> Path:
    """Where Debian's `postgresql` package keeps initdb and postgres (not on PATH)."""
    try:
        out = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        if (Path(out) / "postgres").is_file():
            return Path(out)
    except (OSError, subprocess.SubprocessError):
        pass
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if not found:
        raise EnvironmentFailure(
            "PostgreSQL's server binaries are not installed: install the Debian package "
            "postgresql (make test does)."
        )
    return found[-1].parent


def _check_binaries() -> None:
    for binary in ("notary-server", "notary-signer", "psql"):
        if shutil.which(binary) is None:
            package = "postgresql-client" if binary == "psql" else "notary"
            raise EnvironmentFailure(
                f"{binary} is not installed: install the Debian package {package} (make test does)."
            )
    pg_bindir()


def _pg_user() -> str | None:
    """The user PostgreSQL runs as: its own when we are root (it refuses root), else ours."""
    return PG_USER if os.geteuid() == 0 else None


def start_postgres(directory: Path, port: int) -> subprocess.Popen[bytes]:
    """PostgreSQL on 127.0.0.1:`port` with its data in DIR/pg; initialised and given the
    notary roles, databases and tables the first time."""
    data = directory / "pg"
    bindir = pg_bindir()
    logs = _logs(directory)
    fresh = not (data / "PG_VERSION").is_file()
    if fresh:
        if data.exists():
            shutil.rmtree(data)  # a half-made cluster from an interrupted first start
        data.mkdir(mode=0o700)
        _give_to_postgres(data)
        _reachable_by_postgres(data)
        with (logs / "initdb.log").open("ab") as log:
            done = subprocess.run(
                [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", PG_USER],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=120,
                check=False,
                user=_pg_user(),
                group=_pg_user(),
            )
        if done.returncode != 0:
            raise EnvironmentFailure(
                f"initdb failed to create the PostgreSQL cluster in {data}: see {logs / 'initdb.log'}."
            )
    _reachable_by_postgres(data)
    with (logs / "postgres.log").open("ab") as log:
        proc: subprocess.Popen[bytes] = subprocess.Popen(
            [
                str(bindir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-k",
                str(data),
                "-c",
                "listen_addresses=127.0.0.1",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            user=_pg_user(),
            group=_pg_user(),
        )
    try:
        _wait(
            proc,
            "PostgreSQL",
            logs / "postgres.log",
            lambda: _psql(port, "postgres", "postgres", "SELECT 1", check=False) == 0,
        )
        if fresh or not (data / ".ceremony-schema").is_file():
            _schema(port)
            (data / ".ceremony-schema").write_text("notary 0.7 schema applied\n")
    except BaseException:
        stop_process(proc, signal.SIGINT)
        raise
    return proc


def start_signer(directory: Path, ports: Mapping[str, int]) -> subprocess.Popen[bytes]:
    """notary-signer with mutual TLS on 127.0.0.1, keys in PostgreSQL; waits for its port."""
    logs = _logs(directory)
    env = {**os.environ, f"NOTARY_SIGNER_{SIGNER_ALIAS.upper()}": _signer_passphrase(directory)}
    with (logs / "notary-signer.log").open("ab") as log:
        proc: subprocess.Popen[bytes] = subprocess.Popen(
            ["notary-signer", "-config", str(directory / "signer-config.json")],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    try:
        _wait(
            proc, "notary-signer", logs / "notary-signer.log", lambda: _port_open(ports["signer"])
        )
    except BaseException:
        stop_process(proc)
        raise
    return proc


def start_server(directory: Path, ports: Mapping[str, int]) -> subprocess.Popen[bytes]:
    """notary-server (TLS, trust_service remote, PostgreSQL); waits for its health to say 200."""
    logs = _logs(directory)
    ca = directory / "certs" / "ca.crt"
    url = f"https://127.0.0.1:{ports['server']}/_notary_server/health"
    context = ssl.create_default_context(cafile=str(ca))

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(url, context=context, timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    with (logs / "notary-server.log").open("ab") as log:
        proc: subprocess.Popen[bytes] = subprocess.Popen(
            ["notary-server", "-config", str(directory / "server-config.json")],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        _wait(proc, "notary-server", logs / "notary-server.log", healthy)
    except BaseException:
        stop_process(proc)
        raise
    return proc


def _stop_all(processes: Mapping[str, subprocess.Popen[bytes]]) -> None:
    for name in reversed(PROCESS_NAMES):
        proc = processes.get(name)
        if proc is not None:
            # PostgreSQL: SIGINT is the fast shutdown (SIGTERM waits for every client)
            stop_process(proc, signal.SIGINT if name == "postgres" else signal.SIGTERM)


def _wait(proc: subprocess.Popen[bytes], name: str, log: Path, ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EnvironmentFailure(
                f"{name} exited with status {proc.returncode} while starting: see {log}."
            )
        if ready():
            return
        time.sleep(0.05)
    raise EnvironmentFailure(f"{name} did not become ready within {START_TIMEOUT:g} s: see {log}.")


# ---------------------------------------------------------------------------
# PostgreSQL roles and schema


def _psql(port: int, user: str, database: str, sql: str, *, check: bool = True) -> int:
    done = subprocess.run(
        [
            *("psql", "-h", "127.0.0.1", "-p", str(port), "-U", user, "-d", database),
            *("-v", "ON_ERROR_STOP=1", "-q", "-c", sql),
        ],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
        env={**os.environ, "PGCONNECT_TIMEOUT": "2"},
    )
    if check and done.returncode != 0:
        raise EnvironmentFailure(
            f"Setting up the notary database failed (psql exited {done.returncode}): "
            f"{done.stderr.decode(errors='replace').strip()[:200]}."
        )
    return done.returncode


def _schema(port: int) -> None:
    """Roles `server` and `signer`, each owning its database (PostgreSQL 15: only the owner
    may create tables in `public`), and notary 0.7's tables."""
    for role, database in (("server", "notaryserver"), ("signer", "notarysigner")):
        exists = subprocess.run(
            [
                *("psql", "-h", "127.0.0.1", "-p", str(port), "-U", PG_USER, "-d", "postgres"),
                *("-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{database}'"),  # noqa: S608
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        ).stdout.strip()
        if exists != "1":
            _psql(port, PG_USER, "postgres", f"CREATE ROLE {role} LOGIN")
            _psql(port, PG_USER, "postgres", f"CREATE DATABASE {database} OWNER {role}")
    _psql(port, "server", "notaryserver", SERVER_SCHEMA)
    _psql(port, "signer", "notarysigner", SIGNER_SCHEMA)


def _give_to_postgres(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, PG_USER, PG_USER)


def _reachable_by_postgres(data: Path) -> None:
    """PostgreSQL runs as its own user: every folder above its data must let it through."""
    if os.geteuid() != 0:
        return
    for folder in data.parents:
        mode = folder.stat().st_mode
        if not mode & 0o001:
            raise EnvironmentFailure(
                f"The postgres user cannot enter {folder} (mode {mode & 0o777:o}), so PostgreSQL "
                f"cannot use {data}: choose a --dir under /tmp or /var/tmp, or allow o+x there."
            )


# ---------------------------------------------------------------------------
# ports, certificates and configs


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ports(directory: Path) -> dict[str, int]:
    """The ports of an earlier start (so URLs stay the same), else free ones."""
    path = directory / "ports.json"
    ports: dict[str, int] = {}
    with contextlib.suppress(OSError, ValueError):
        loaded = json.loads(path.read_text())
        if isinstance(loaded, dict):
            ports = {k: v for k, v in loaded.items() if isinstance(v, int)}
    for name in ("postgres", "signer", "server"):
        if name not in ports or _port_open(ports[name]):
            ports[name] = _free_port()
    atomic_write(path, json.dumps(ports, sort_keys=True).encode(), mode=0o644)
    return ports


def _logs(directory: Path) -> Path:
    logs = directory / "logs"
    logs.mkdir(mode=0o755, exist_ok=True)
    return logs


def _signer_passphrase(directory: Path) -> str:
    path = directory / "signer-passphrase"
    if not path.is_file():
        atomic_write(path, secrets.token_hex(24).encode())
    return path.read_text().strip()


def _write_configs(directory: Path, ports: Mapping[str, int]) -> None:
    def db(role: str, database: str) -> str:
        return f"postgres://{role}@127.0.0.1:{ports['postgres']}/{database}?sslmode=disable"

    signer = {
        "server": {
            "grpc_addr": f"127.0.0.1:{ports['signer']}",
            "tls_cert_file": "./certs/signer.crt",
            "tls_key_file": "./certs/signer.key",
            "client_ca_file": "./certs/ca.crt",
        },
        "logging": {"level": "info"},
        "storage": {
            "backend": "postgres",
            "db_url": db("signer", "notarysigner"),
            "default_alias": SIGNER_ALIAS,
        },
    }
    server = {
        "server": {
            "http_addr": f"127.0.0.1:{ports['server']}",
            "tls_cert_file": "./certs/server.crt",
            "tls_key_file": "./certs/server.key",
        },
        "trust_service": {
            "type": "remote",
            "hostname": "127.0.0.1",
            "port": str(ports["signer"]),
            "key_algorithm": "ecdsa",
            "tls_ca_file": "./certs/ca.crt",
            "tls_client_cert": "./certs/client.crt",
            "tls_client_key": "./certs/client.key",
        },
        "logging": {"level": "info"},
        "storage": {"backend": "postgres", "db_url": db("server", "notaryserver")},
    }
    for name, config in (("signer-config.json", signer), ("server-config.json", server)):
        atomic_write(directory / name, json.dumps(config, indent=2).encode(), mode=0o644)


def _certificates(certs: Path) -> Path:
    """A throwaway CA and its server, signer and client certificates (made once, then kept)."""
    ca_crt = certs / "ca.crt"
    if ca_crt.is_file() and all(
        (certs / f"{n}.{e}").is_file()
        for n in ("server", "signer", "client")
        for e in ("crt", "key")
    ):
        return ca_crt
    certs.mkdir(mode=0o755, parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ceremony local notary CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    san = x509.SubjectAlternativeName(
        [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    )
    for name, usage in (
        ("server", ExtendedKeyUsageOID.SERVER_AUTH),
        ("signer", ExtendedKeyUsageOID.SERVER_AUTH),
        ("client", ExtendedKeyUsageOID.CLIENT_AUTH),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"notary-{name}")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=825))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(san, critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        atomic_write(
            certs / f"{name}.key",
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        atomic_write(
            certs / f"{name}.crt", cert.public_bytes(serialization.Encoding.PEM), mode=0o644
        )
    atomic_write(ca_crt, ca_cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return ca_crt
