"""The trust-server client against the real notary-server 0.7 and the real notary client.

Repositories are built by the real `notary` CLI; our client must fetch them in
TUF order, verify them and download exactly the bytes the server serves. Error
paths (stale version, malformed upload, size cap, dead server, TLS) must each
end as one operator sentence with the documented exit class. Token auth runs
against a second notary-server configured with `auth.type = token` and a
small in-test token service issuing ES256 JWTs (x5c header) signed by a
throwaway key whose certificate is the server's `rootcertbundle`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from ceremony.core.errors import (
    CeremonyError,
    EnvironmentFailure,
    InputRejected,
    MalformedInput,
    UsageError,
    VerificationFailed,
)
from ceremony.core.gun import check_gun
from ceremony.core.metadata import Root, parse_envelope
from online.client.config import Credentials, ServerConfig
from online.client.fetch import fetch_repository, fetch_root_chain
from online.client.http import TrustServer
from online.client.names import metadata_name
from tests.notary_env import NotaryCli, NotaryServer, free_port, start_server

pytestmark = pytest.mark.notary

NOW = datetime.now(UTC)


def config_for(server: Any, **overrides: Any) -> ServerConfig:
    """Short timeouts and fast retries: a failing test must fail in well under a second."""
    options: dict[str, Any] = {
        "url": server.url,
        "tls_ca": server.ca,
        "connect_timeout": 2.0,
        "read_timeout": 5.0,
        "retries": 1,
        "backoff": 0.01,
    }
    options.update(overrides)
    return ServerConfig(**options)


@pytest.fixture
def client(notary_server: NotaryServer) -> Iterator[TrustServer]:
    with TrustServer(config_for(notary_server)) as server:
        yield server


def one_sentence(error: CeremonyError) -> str:
    text = error.diagnostics()
    assert "\n" not in text and "Traceback" not in text
    assert text.endswith(".")
    assert ". " not in text[:-1], f"more than one sentence: {text}"
    return text


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def make_delegated_repo(cli: NotaryCli, gun: str, tmp_path: Path) -> None:
    """root, targets (2 targets), targets/releases (1 target), client-managed snapshot."""
    payload = write(tmp_path / "payload.bin", b"payload\n")
    cli.run("init", "-p", gun)
    cli.run("add", "-p", gun, "app-1.0", str(payload))
    key, crt = tmp_path / "releases.key", tmp_path / "releases.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "3650", "-keyout", str(key), "-out", str(crt), "-subj", "/CN=releases"],
        check=True, capture_output=True,
    )  # fmt: skip
    cli.run("delegation", "add", "-p", gun, "targets/releases", str(crt), "--all-paths")
    cli.run("key", "import", str(key), "--role", "targets/releases")
    cli.run("add", "-p", gun, "app-2.0", str(payload), "--roles", "targets/releases")


def make_rotated_repo(cli: NotaryCli, gun: str, tmp_path: Path) -> None:
    """root v3: v2 hands the snapshot key to the server, v3 rotates the root key."""
    cli.run("init", "-p", gun)
    cli.run("add", "-p", gun, "app", str(write(tmp_path / "app.bin", b"app\n")))
    cli.run("key", "rotate", gun, "snapshot", "-r")
    cli.run("key", "rotate", gun, "root", stdin="yes\n")


# ---------------------------------------------------------------------------
# fetch and verify real repositories


def test_fetch_repository_verifies_a_delegated_repo_and_keeps_the_served_bytes(
    client: TrustServer,
    notary_server: NotaryServer,
    notary_cli: NotaryCli,
    new_gun: Callable[[], str],
    tmp_path: Path,
) -> None:
    gun = new_gun()
    make_delegated_repo(notary_cli, gun, tmp_path)

    fetched = fetch_repository(client, gun, NOW)

    assert fetched is not None
    files = fetched.files
    assert set(files) == {"root", "timestamp", "snapshot", "targets", "targets/releases"}
    for role, data in files.items():
        assert data == notary_server.fetch(gun, f"{role}.json"), role
    report = fetched.report
    assert [r.name for r in report.roles] == [
        "root", "timestamp", "snapshot", "targets", "targets/releases",
    ]  # fmt: skip
    entries = {(e.role, e.name): e.meta.sha256_hex for e in report.target_entries}
    listed = notary_cli.list_targets(gun)
    assert entries == {
        ("targets", "app-1.0"): listed["app-1.0"],
        ("targets/releases", "app-2.0"): listed["app-2.0"],
    }


def test_downloads_by_name_checksum_and_version_equal_the_server_bytes(
    client: TrustServer,
    notary_server: NotaryServer,
    notary_cli: NotaryCli,
    new_gun: Callable[[], str],
) -> None:
    gun = new_gun()
    notary_cli.run("init", "-p", gun)
    timestamp = client.get_metadata(gun, "timestamp.json")
    assert timestamp == notary_server.fetch(gun, "timestamp.json")
    snapshot = notary_server.fetch(gun, "snapshot.json")
    digest = hashlib.sha256(snapshot).hexdigest()
    assert client.get_metadata(gun, metadata_name("snapshot", sha256=digest)) == snapshot
    assert client.get_metadata(gun, "1.root.json") == notary_server.fetch(gun, "root.json")
    assert client.get_metadata(gun, "2.root.json") is None
    assert client.get_metadata(gun, metadata_name("targets", sha256="0" * 64)) is None


def test_root_rotation_is_followed_through_the_version_chain(
    client: TrustServer,
    notary_server: NotaryServer,
    notary_cli: NotaryCli,
    new_gun: Callable[[], str],
    tmp_path: Path,
) -> None:
    gun = new_gun()
    notary_cli.run("init", "-p", gun)
    v1 = parse_envelope(notary_server.fetch(gun, "root.json"), Root)
    notary_cli.run("add", "-p", gun, "app", str(write(tmp_path / "app.bin", b"app\n")))
    notary_cli.run("key", "rotate", gun, "snapshot", "-r")
    notary_cli.run("key", "rotate", gun, "root", stdin="yes\n")

    fetched = fetch_repository(client, gun, NOW, trusted_root=v1)

    assert fetched is not None
    assert fetched.report.root_chain == (1, 2, 3)
    assert fetched.report.root.body.version == 3
    assert set(fetched.files) == {"root", "2.root", "timestamp", "snapshot", "targets"}
    assert fetched.files["2.root"] == notary_server.fetch(gun, "2.root.json")
    # the server now signs snapshots: its key is the one root v3 lists
    snapshot_key = client.get_server_key(gun, "snapshot")
    assert fetched.report.root.body.roles["snapshot"].keyids == (snapshot_key.key_id,)

    chain = fetch_root_chain(client, gun)
    assert chain is not None and sorted(chain) == [1, 2, 3]
    for version, env in chain.items():
        assert env.raw == notary_server.fetch(gun, f"{version}.root.json")

    full = fetch_repository(client, gun, NOW, full_root_chain=True)
    assert full is not None and full.report.root_chain == (1, 2, 3)
    assert {"1.root", "2.root"} <= set(full.files)


def test_a_rolled_back_repository_is_refused(
    client: TrustServer,
    notary_server: NotaryServer,
    notary_cli: NotaryCli,
    new_gun: Callable[[], str],
    tmp_path: Path,
) -> None:
    gun = new_gun()
    make_delegated_repo(notary_cli, gun, tmp_path)
    with pytest.raises(VerificationFailed) as info:
        fetch_repository(client, gun, NOW, previous_versions={"targets": 99})
    assert "rollback" in one_sentence(info.value)


def test_a_missing_repository_is_none(client: TrustServer, new_gun: Callable[[], str]) -> None:
    gun = new_gun()
    assert fetch_repository(client, gun, NOW) is None
    assert fetch_root_chain(client, gun) is None
    assert client.get_metadata(gun, "root.json") is None


def test_server_keys_are_parsed_and_stable_once_a_root_lists_them(
    client: TrustServer, notary_cli: NotaryCli, new_gun: Callable[[], str]
) -> None:
    gun = new_gun()
    notary_cli.run("init", "-p", gun)
    key = client.get_server_key(gun, "timestamp")
    assert key.keytype == "ed25519"
    assert client.get_server_key(gun, "timestamp") == key
    fetched = fetch_repository(client, gun, NOW)
    assert fetched is not None
    assert fetched.report.root.body.roles["timestamp"].keyids == (key.key_id,)
    with pytest.raises(UsageError):
        client.get_server_key(gun, "targets")


# ---------------------------------------------------------------------------
# publish


def test_publish_uploads_a_repository_the_real_client_then_reads(
    client: TrustServer,
    notary_cli: NotaryCli,
    new_gun: Callable[[], str],
) -> None:
    gun = new_gun()
    notary_cli.run("init", gun)  # written locally only: nothing on the server yet
    local = notary_cli.metadata_dir(gun)
    files = {
        role: (local / f"{role}.json").read_bytes() for role in ("root", "targets", "snapshot")
    }

    client.publish(gun, files)

    fetched = fetch_repository(client, gun, NOW)
    assert fetched is not None
    for role, data in files.items():
        assert fetched.files[role] == data
    assert notary_cli.list_targets(gun) == {}


def test_republishing_the_same_version_says_re_export(
    client: TrustServer,
    notary_server: NotaryServer,
    notary_cli: NotaryCli,
    new_gun: Callable[[], str],
    tmp_path: Path,
) -> None:
    gun = new_gun()
    make_rotated_repo(notary_cli, gun, tmp_path)  # server-managed snapshot
    targets = notary_server.fetch(gun, "targets.json")

    with pytest.raises(InputRejected) as info:
        client.publish(gun, {"targets": targets})

    assert info.value.exit_code == 1
    assert one_sentence(info.value) == (
        f"The server already holds a newer version of {gun} metadata: re-export the request."
    )


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"targets": b"{not json"}, "(MALFORMED_JSON)"),
        ({"root": b'{"signed":{"_type":"Root"},"signatures":[]}'}, "bad root"),
    ],
    ids=["malformed-json", "invalid-root"],
)
def test_a_rejected_upload_is_one_sentence(
    client: TrustServer,
    notary_cli: NotaryCli,
    new_gun: Callable[[], str],
    files: dict[str, bytes],
    expected: str,
) -> None:
    gun = new_gun()
    notary_cli.run("init", "-p", gun)
    with pytest.raises(InputRejected) as info:
        client.publish(gun, files)
    text = one_sentence(info.value)
    assert text.startswith("The trust server rejected")
    assert expected in text and info.value.exit_code == 1


def test_bad_publish_arguments_are_usage_errors(client: TrustServer) -> None:
    with pytest.raises(UsageError):
        client.publish("example.com/x", {})
    with pytest.raises(UsageError):
        client.publish("example.com/x", {"releases": b"{}"})
    with pytest.raises(MalformedInput):  # the one GUN rule: input, exit 1
        client.publish("example.com/../x", {"targets": b"{}"})


# ---------------------------------------------------------------------------
# caps, dead servers, TLS


def test_the_size_cap_stops_a_download(
    notary_server: NotaryServer, notary_cli: NotaryCli, new_gun: Callable[[], str]
) -> None:
    gun = new_gun()
    notary_cli.run("init", "-p", gun)
    with TrustServer(config_for(notary_server)) as server:
        with pytest.raises(InputRejected) as info:
            server.get_metadata(gun, "root.json", max_length=100)
        assert one_sentence(info.value) == (
            f"The trust server sent more than 100 bytes for root.json of {gun}: "
            "refusing it as faulty or malicious."
        )
    capped = TrustServer(config_for(notary_server, max_download=200))
    with capped, pytest.raises(InputRejected, match=r"more than 200 bytes for root\.json"):
        fetch_repository(capped, gun, NOW)


def test_a_dead_server_fails_fast_as_an_environment_problem() -> None:
    port = free_port()  # nobody listens here
    sleeps: list[float] = []
    config = ServerConfig(
        url=f"https://127.0.0.1:{port}", connect_timeout=1, retries=2, backoff=0.01
    )
    started = time.monotonic()
    with TrustServer(config, sleep=sleeps.append) as server:
        with pytest.raises(EnvironmentFailure) as info:
            fetch_repository(server, "example.com/app", NOW)
        assert sleeps == [0.01, 0.02]  # GETs are retried with exponential backoff
        sleeps.clear()
        with pytest.raises(EnvironmentFailure):
            server.publish("example.com/app", {"targets": b"{}"})
        assert sleeps == []  # a POST is never retried
    assert time.monotonic() - started < 5
    assert info.value.exit_code == 3
    assert one_sentence(info.value) == (
        f"Cannot reach the trust server at https://127.0.0.1:{port} (connection refused): "
        "check --server/--tls-ca and that it is running."
    )


def test_an_unknown_certificate_authority_is_an_environment_problem(
    notary_server: NotaryServer,
) -> None:
    config = config_for(notary_server, tls_ca=None, retries=0)
    with TrustServer(config) as server, pytest.raises(EnvironmentFailure) as info:
        server.get_metadata("example.com/app", "root.json")
    assert "TLS certificate verification failed" in one_sentence(info.value)


def test_plain_http_against_a_tls_server_is_an_environment_problem(
    notary_server: NotaryServer,
) -> None:
    config = config_for(notary_server, url=notary_server.url.replace("https", "http"))
    with TrustServer(config) as server, pytest.raises(EnvironmentFailure) as info:
        server.get_metadata("example.com/app", "root.json")
    assert "HTTP 400 without a Notary error" in one_sentence(info.value)


# ---------------------------------------------------------------------------
# behaviour pinned with a mock transport (5xx, streaming caps, error documents)


def mock_server(
    handler: Callable[[httpx.Request], httpx.Response],
) -> tuple[TrustServer, list[float]]:
    sleeps: list[float] = []
    config = ServerConfig(url="https://notary.example.com", retries=2, backoff=0.5)
    return TrustServer(config, transport=httpx.MockTransport(handler), sleep=sleeps.append), sleeps


def test_5xx_is_retried_for_gets_then_reported_as_environment() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        return httpx.Response(503, json={"errors": [{"code": "UNAVAILABLE", "message": "down"}]})

    server, sleeps = mock_server(handler)
    with server, pytest.raises(EnvironmentFailure) as info:
        server.get_metadata("example.com/app", "timestamp.json")
    assert calls == ["GET"] * 3 and sleeps == [0.5, 1.0]
    assert "HTTP 503" in one_sentence(info.value)


def test_a_transient_5xx_recovers() -> None:
    answers = iter([httpx.Response(502), httpx.Response(200, content=b"{}")])
    server, sleeps = mock_server(lambda request: next(answers))
    with server:
        assert server.get_metadata("example.com/app", "timestamp.json") == b"{}"
    assert sleeps == [0.5]


def test_a_stream_without_length_is_cut_at_the_cap() -> None:
    produced: list[int] = []

    def endless() -> Iterator[bytes]:
        for _ in range(1000):
            produced.append(1)
            yield b"x" * 65536

    server, _ = mock_server(lambda request: httpx.Response(200, content=endless()))
    with server, pytest.raises(InputRejected, match=r"more than 1048576 bytes for timestamp\.json"):
        server.get_metadata("example.com/app", "timestamp.json", max_length=10 * 1024 * 1024)
    assert len(produced) <= 18  # stopped just past 1 MiB, not after 64 MiB


def test_a_declared_length_over_the_cap_is_refused_before_reading() -> None:
    headers = {"content-length": "5000"}
    server, _ = mock_server(
        lambda request: httpx.Response(200, headers=headers, content=b"x" * 5000)
    )
    with server, pytest.raises(InputRejected, match="more than 4000 bytes"):
        server.get_metadata("example.com/app", "targets.json", max_length=4000)


def test_a_checksum_mismatch_is_a_verification_failure() -> None:
    server, _ = mock_server(lambda request: httpx.Response(200, content=b"other bytes"))
    with server, pytest.raises(VerificationFailed):
        server.get_metadata("example.com/app", metadata_name("targets", sha256="a" * 64))


def test_bad_hierarchy_quotes_the_server_reason_compactly() -> None:
    detail = {
        "Name": "ErrBadRoot",
        "Error": {"Msg": "Root modifications must increment the version. Current 1, new 5"},
    }
    body = {"errors": [{"code": "INVALID_UPDATE", "message": "Update sent by the client is invalid.", "detail": detail}]}  # fmt: skip
    server, sleeps = mock_server(lambda request: httpx.Response(400, json=body))
    with server, pytest.raises(InputRejected) as info:
        server.publish("example.com/app", {"root": b"{}"})
    assert one_sentence(info.value) == (
        "The trust server rejected the update of example.com/app (bad root): "
        "Root modifications must increment the version; Current 1, new 5."
    )
    assert sleeps == []


@pytest.mark.parametrize(
    ("status", "body", "kind", "fragment"),
    [
        (401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
         EnvironmentFailure, "refused access to example.com/app (unauthorized)"),
        (400, {"errors": [{"code": "INVALID_ROLE", "message": "The role is invalid.", "detail": "x"}]},
         InputRejected, "(INVALID_ROLE 'x'): The role is invalid."),
        (403, {}, EnvironmentFailure, "answered HTTP 403"),
    ],
    ids=["401-without-challenge", "invalid-role", "403"],
)  # fmt: skip
def test_other_answers_map_to_one_sentence(
    status: int, body: dict[str, Any], kind: type[CeremonyError], fragment: str
) -> None:
    server, _ = mock_server(lambda request: httpx.Response(status, json=body))
    with server, pytest.raises(kind) as info:
        server.publish("example.com/app", {"targets": b"{}"})
    assert type(info.value) is kind
    assert fragment in one_sentence(info.value)


def test_a_404_that_is_not_notary_is_not_mistaken_for_a_missing_repository() -> None:
    server, _ = mock_server(lambda request: httpx.Response(404, text="<html>nope</html>"))
    with server, pytest.raises(EnvironmentFailure, match="points at a Notary server"):
        server.get_metadata("example.com/app", "root.json")


def test_publish_sends_one_multipart_part_per_role_named_by_the_role() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=b"x" * 100_000)  # a chatty proxy: not a failure

    server, _ = mock_server(handler)
    files = {"root": b'{"a":1}', "targets/releases": b'{"b":2}'}
    with server:
        server.publish("example.com/org/app", files)
    (request,) = seen  # one POST, whatever the server answers with
    assert request.method == "POST"
    assert request.url.path == "/v2/example.com/org/app/_trust/tuf/"
    body = request.read()
    assert b'name="files"; filename="root"' in body
    assert b'name="files"; filename="targets/releases"' in body
    assert b'{"a":1}' in body and b'{"b":2}' in body


# ---------------------------------------------------------------------------
# configuration


def test_from_env_resolves_server_ca_and_credentials(tmp_path: Path) -> None:
    ca = write(tmp_path / "ca.pem", b"")
    env = {
        "DOCKER_CONTENT_TRUST_SERVER": "https://dct.example.com/",
        "CEREMONY_TLS_CA": str(ca),
        "CEREMONY_USERNAME": "alice",
        "CEREMONY_PASSWORD": "s3cret",
        "DOCKER_CONFIG": str(tmp_path),
    }
    config = ServerConfig.from_env(None, None, environ=env)
    assert config.url == "https://dct.example.com"
    assert config.tls_ca == ca
    assert config.credentials == Credentials("alice", "s3cret")
    assert "s3cret" not in repr(config)
    assert config.docker_config == tmp_path
    env["CEREMONY_SERVER"] = "https://ceremony.example.com:4443"
    assert ServerConfig.from_env(None, None, environ=env).url == "https://ceremony.example.com:4443"
    allowed = ServerConfig.from_env("http://127.0.0.1:9", None, environ=env, allow_http=True)
    assert allowed.url == "http://127.0.0.1:9"
    with pytest.raises(UsageError, match="plain http"):
        ServerConfig.from_env("http://127.0.0.1:9", None, environ=env)


@pytest.mark.parametrize(
    ("server", "env", "fragment"),
    [
        (None, {}, "No trust server is configured"),
        ("ftp://x", {}, "is not an http(s) URL"),
        ("https://bob:pw@notary.example.com", {}, "Do not put credentials"),
        ("https://n.example.com", {"CEREMONY_TLS_CA": "/nonexistent/ca.pem"}, "does not exist"),
        ("https://n.example.com", {"CEREMONY_USERNAME": "alice"}, "Set both"),
    ],
    ids=["none", "scheme", "userinfo", "ca", "half-credentials"],
)
def test_from_env_refuses_unusable_settings(
    server: str | None, env: dict[str, str], fragment: str
) -> None:
    with pytest.raises(UsageError) as info:
        ServerConfig.from_env(server, None, environ=env)
    assert fragment in one_sentence(info.value)
    assert info.value.exit_code == 2
    assert "pw" not in info.value.diagnostics()


def test_names_are_validated() -> None:
    assert metadata_name("root", version=3) == "3.root.json"
    assert metadata_name("targets/releases", sha256="ab" * 32).startswith("targets/releases.")
    assert check_gun("registry.example.com:5000/org/app") == "registry.example.com:5000/org/app"
    assert check_gun("a?b") == "a?b"  # quoted in the URL path
    for gun in ("", "a//b", "a/../b", "a b", "a*b", "a\x1bb", "x" * 256):
        with pytest.raises(MalformedInput):
            check_gun(gun)
    client = TrustServer(ServerConfig(url="https://n.example.com"))
    with client:
        for name in ("root", "../x.json", "Targets.json", "1.root.aa.json", "targets/Bad.json"):
            with pytest.raises(UsageError):
                client.get_metadata("example.com/app", name)


# ---------------------------------------------------------------------------
# token auth: a second notary-server behind an in-test token service

ISSUER = "test-issuer"
SERVICE = "notary-server"
USERNAME, PASSWORD = "ceremony-user", "correct horse battery staple"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenService:
    """Docker-registry-style token endpoint: basic auth in, ES256 JWT (x5c) out.

    Anonymous callers get `pull` only (as on Docker Hub); the right credentials
    get every action asked for; wrong credentials get a 401.
    """

    directory: Path
    key: ec.EllipticCurvePrivateKey = field(init=False)
    cert_der: bytes = field(init=False)
    requests: list[dict[str, Any]] = field(default_factory=list)
    httpd: ThreadingHTTPServer = field(init=False)

    def __post_init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test token issuer")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(datetime.now(UTC) - timedelta(days=1))
            .not_valid_after(datetime.now(UTC) + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.cert_der = cert.public_bytes(serialization.Encoding.DER)
        (self.directory / "auth.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                service.handle(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/token"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def handle(self, http: BaseHTTPRequestHandler) -> None:
        url = urlsplit(http.path)
        query = parse_qs(url.query)
        user = None
        header = http.headers.get("Authorization", "")
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            if (user, password) != (USERNAME, PASSWORD):
                self.reply(
                    http, 401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad login"}]}
                )
                self.requests.append({"user": user, "ok": False, **query})
                return
        self.requests.append({"user": user, "ok": True, **query})
        access = []
        for scope in query.get("scope", []):
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            wanted = actions.split(",")
            granted = wanted if user else [a for a in wanted if a == "pull"]
            access.append({"type": kind, "name": name, "actions": granted})
        token = self.issue(user or "", query.get("service", [""])[0], access)
        self.reply(http, 200, {"token": token, "access_token": token, "expires_in": 300})

    def issue(self, subject: str, audience: str, access: list[dict[str, Any]]) -> str:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(self.cert_der).decode()]}
        claims = {
            "iss": ISSUER, "sub": subject, "aud": audience, "exp": now + 300, "nbf": now - 10,
            "iat": now, "jti": secrets.token_hex(8), "access": access,
        }  # fmt: skip
        signing_input = (
            f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        )
        r, s = decode_dss_signature(
            self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        )
        return f"{signing_input}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    @staticmethod
    def reply(http: BaseHTTPRequestHandler, status: int, doc: dict[str, Any]) -> None:
        body = json.dumps(doc).encode()
        http.send_response(status)
        http.send_header("Content-Type", "application/json")
        http.send_header("Content-Length", str(len(body)))
        http.end_headers()
        http.wfile.write(body)


@dataclass
class AuthServer(NotaryServer):
    """A notary-server with token auth (see `TokenService`)."""

    tokens: TokenService | None = None


def auth_section(directory: Path, tokens: TokenService) -> dict[str, object]:
    return {
        "auth": {
            "type": "token",
            "options": {
                "realm": tokens.realm,
                "service": SERVICE,
                "issuer": ISSUER,
                "rootcertbundle": str(directory / "auth.crt"),
            },
        }
    }


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    directory = tmp_path_factory.mktemp("notary-auth-server")
    tokens = TokenService(directory)
    try:
        local = start_server(directory, auth_section(directory, tokens)).local
        server = AuthServer(local, tokens=tokens)
        yield server
        server.stop()
    finally:
        tokens.stop()


def auth_config(server: AuthServer, env: dict[str, str]) -> ServerConfig:
    config = ServerConfig.from_env(server.url, server.ca, environ=env)
    return replace(config, connect_timeout=2, read_timeout=5, retries=0)


def test_the_auth_server_really_requires_a_token(auth_server: AuthServer) -> None:
    context = ssl.create_default_context(cafile=str(auth_server.ca))
    response = httpx.get(
        f"{auth_server.url}/v2/example.com/app/_trust/tuf/root.json", verify=context
    )
    assert response.status_code == 401
    assert f'realm="{auth_server.tokens.realm}"' in response.headers["www-authenticate"]


def test_token_auth_with_credentials_from_the_environment(
    auth_server: AuthServer,
    tmp_path: Path,
    new_gun: Callable[[], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gun = new_gun()
    # the real notary client publishes through the same token service
    monkeypatch.setenv("NOTARY_AUTH", base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode())
    cli = NotaryCli(auth_server, tmp_path / "trust")  # type: ignore[arg-type]
    cli.run("init", "-p", gun)
    cli.run("add", "-p", gun, "app", str(write(tmp_path / "app.bin", b"app\n")))
    requests = auth_server.tokens.requests
    requests.clear()
    env = {
        "CEREMONY_USERNAME": USERNAME,
        "CEREMONY_PASSWORD": PASSWORD,
        "DOCKER_CONFIG": str(tmp_path),
    }

    with TrustServer(auth_config(auth_server, env)) as server:
        fetched = fetch_repository(server, gun, NOW)
        key = server.get_server_key(gun, "timestamp")  # needs push: anonymous would not do

    assert fetched is not None
    assert [e.name for e in fetched.report.target_entries] == ["app"]
    assert fetched.report.root.body.roles["timestamp"].keyids == (key.key_id,)
    # one token per scope, cached across the five metadata downloads; notary-server names the
    # actions of its challenge in Go map order, so compare them as sets
    assert [(r["user"], normalise_scopes(r["scope"]), r["service"]) for r in requests] == [
        (USERNAME, [f"repository:{gun}:pull"], [SERVICE]),
        (USERNAME, [f"repository:{gun}:pull,push"], [SERVICE]),
    ]


def normalise_scopes(scopes: list[str]) -> list[str]:
    out = []
    for scope in scopes:
        head, _, actions = scope.rpartition(":")
        out.append(f"{head}:{','.join(sorted(actions.split(',')))}")
    return out


def test_token_auth_with_credentials_from_the_docker_config(
    auth_server: AuthServer, tmp_path: Path, new_gun: Callable[[], str]
) -> None:
    gun = new_gun()
    login = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
    host = f"127.0.0.1:{auth_server.port}"
    config_json = {
        "auths": {f"https://{host}": {"auth": login}, "other.example.com": {"auth": "eDp5"}}
    }
    write(tmp_path / "config.json", json.dumps(config_json).encode())
    requests = auth_server.tokens.requests
    requests.clear()

    with TrustServer(auth_config(auth_server, {"DOCKER_CONFIG": str(tmp_path)})) as server:
        key = server.get_server_key(gun, "timestamp")

    assert key.keytype == "ed25519"
    assert [(r["user"], r["ok"]) for r in requests] == [(USERNAME, True)]


def test_anonymous_pull_works_without_any_credentials(
    auth_server: AuthServer, tmp_path: Path, new_gun: Callable[[], str]
) -> None:
    requests = auth_server.tokens.requests
    requests.clear()
    with TrustServer(auth_config(auth_server, {"DOCKER_CONFIG": str(tmp_path)})) as server:
        assert fetch_repository(server, new_gun(), NOW) is None
    assert [r["user"] for r in requests] == [None]


def test_wrong_credentials_are_one_environment_sentence_without_the_password(
    auth_server: AuthServer, tmp_path: Path, new_gun: Callable[[], str]
) -> None:
    env = {"CEREMONY_USERNAME": USERNAME, "CEREMONY_PASSWORD": "wrong-password-123"}
    server = TrustServer(auth_config(auth_server, env))
    with server, pytest.raises(EnvironmentFailure) as info:
        server.get_metadata(new_gun(), "root.json")
    text = one_sentence(info.value)
    assert info.value.exit_code == 3
    assert auth_server.tokens.realm.rsplit("/", 1)[0] in text
    assert "wrong-password-123" not in text and USERNAME not in text


def test_a_token_without_push_access_is_refused_as_environment(
    auth_server: AuthServer, tmp_path: Path, new_gun: Callable[[], str]
) -> None:
    """Anonymous tokens carry pull only: asking for the push-scoped key is unauthorized."""
    server = TrustServer(auth_config(auth_server, {"DOCKER_CONFIG": str(tmp_path)}))
    with server, pytest.raises(EnvironmentFailure) as info:
        server.get_server_key(new_gun(), "timestamp")
    assert "refused access" in one_sentence(info.value)


def test_credentials_are_not_sent_to_a_plain_http_realm_off_loopback() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        challenge = 'Bearer realm="http://auth.example.com/token",service="notary-server"'
        return httpx.Response(401, headers={"WWW-Authenticate": challenge})

    config = ServerConfig(url="https://notary.example.com", credentials=Credentials("a", "b"))
    server = TrustServer(config, transport=httpx.MockTransport(handler))
    with server, pytest.raises(EnvironmentFailure, match="is not HTTPS"):
        server.get_metadata("example.com/app", "root.json")
