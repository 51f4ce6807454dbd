"""The trust-server client: the online half's only network edge (Notary 0.7 HTTP API).

`TrustServer` speaks the server API of notary-formats.md §6: metadata by name,
by checksum and by version, the server-held timestamp and snapshot keys, and the
atomic multipart publish. `fetch_repository` downloads a repository in TUF order
(notary-formats.md §8.1) and verifies it with the pure `ceremony.core.verify`.

Every way this edge can fail ends as one `CeremonyError` sentence:

* the network (refused, DNS, TLS verification, timeouts), 5xx answers, token
  and credential problems: `EnvironmentFailure` (exit 3);
* what the server says about our input (`VERSION`, `INVALID_UPDATE`, malformed
  uploads) and downloads that are too large or fail verification:
  `InputRejected` and its subclasses (exit 1);
* a server, GUN or file name that cannot be asked for at all: `UsageError` (exit 2).

Only idempotent GETs are retried (connection errors, timeouts, 5xx), with
exponential backoff; a POST is sent once. Every download is streamed and
stopped as soon as it passes its cap. Docker registry token auth is supported:
on a `401` with a `Bearer` challenge a token is requested from the realm (basic
credentials from `CEREMONY_USERNAME`/`CEREMONY_PASSWORD`, else from the
`auths` of the Docker config), cached per scope, and the request retried once.

This module reads no clock for verification (`now` is passed in), holds no
private key and never puts a password or token into a message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import os
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from ceremony.core.canonical import parse_json
from ceremony.core.errors import (
    CeremonyError,
    EnvironmentFailure,
    InputRejected,
    UsageError,
    VerificationFailed,
)
from ceremony.core.gun import check_gun
from ceremony.core.metadata import (
    BASE_ROLES,
    Envelope,
    Key,
    Root,
    Snapshot,
    Targets,
    Timestamp,
    is_delegation_name,
    parse_envelope,
)
from ceremony.core.verify import RepositoryReport, verify_repository

MIB = 1024 * 1024
TIMESTAMP_MAX_LENGTH = 1 * MIB  # what Notary's client allows for timestamp.json
DEFAULT_MAX_DOWNLOAD = 100 * MIB  # Notary's cap for files whose length is not yet known
KEY_MAX_LENGTH = 64 * 1024
ERROR_MAX_LENGTH = 64 * 1024
TOKEN_MAX_LENGTH = 1 * MIB

ENV_SERVER = "CEREMONY_SERVER"
ENV_DOCKER_SERVER = "DOCKER_CONTENT_TRUST_SERVER"
ENV_TLS_CA = "CEREMONY_TLS_CA"
ENV_USERNAME = "CEREMONY_USERNAME"
ENV_PASSWORD = "CEREMONY_PASSWORD"  # noqa: S105 - the name of a variable, not a secret
ENV_DOCKER_CONFIG = "DOCKER_CONFIG"

_USER_AGENT = "notary-ceremony-online/0.1"
_HEX = re.compile(r"^[0-9a-f]+$")
_DIGESTS = {64: "sha256", 96: "sha384", 128: "sha512"}
_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')
_UPDATE_KINDS = {
    "ErrBadRoot": "bad root",
    "ErrBadTargets": "bad targets",
    "ErrBadSnapshot": "bad snapshot",
    "ErrBadHierarchy": "incomplete hierarchy",
    "ErrValidation": "invalid update",
}


# ---------------------------------------------------------------------------
# configuration


@dataclass(frozen=True, slots=True)
class Credentials:
    """A registry account for the token service (the password never appears in a repr)."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    """Where the trust server is and how to talk to it.

    Attributes:
        url: base URL, `https://host[:port][/prefix]` (no trailing slash, no userinfo).
        tls_ca: PEM file of the CA that signed the server's certificate; None uses
            the system trust store.
        connect_timeout / read_timeout: seconds, per connection attempt and per read.
        retries: extra attempts for idempotent GETs after a network error or 5xx.
        backoff: seconds before the first retry; doubled for each further one.
        max_download: cap for files whose length no parent records (root.json, N.root.json).
        credentials: basic credentials for the token service, if given explicitly.
        docker_config: directory holding the Docker `config.json` consulted for
            credentials when `credentials` is None; None consults nothing.
    """

    url: str
    tls_ca: Path | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    retries: int = 3
    backoff: float = 0.5
    max_download: int = DEFAULT_MAX_DOWNLOAD
    credentials: Credentials | None = None
    docker_config: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", _normalise_url(self.url))
        if self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise UsageError("Server timeouts must be positive numbers of seconds.")
        if self.retries < 0 or self.backoff < 0:
            raise UsageError("The retry count and backoff must not be negative.")
        if self.max_download <= 0:
            raise UsageError("The download size cap must be a positive number of bytes.")

    @property
    def host(self) -> str:
        """`host[:port]` of the server, as Docker keys its `auths`."""
        return urlsplit(self.url).netloc

    @classmethod
    def from_env(
        cls,
        server: str | None,
        tls_ca: Path | None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> ServerConfig:
        """Resolve the command line and the environment into a configuration.

        The server is `--server`, else `CEREMONY_SERVER`, else
        `DOCKER_CONTENT_TRUST_SERVER`; the CA is `--tls-ca`, else
        `CEREMONY_TLS_CA`. Credentials come from `CEREMONY_USERNAME` and
        `CEREMONY_PASSWORD`; without them the Docker config in `DOCKER_CONFIG`
        (default `~/.docker`) is consulted when a token is needed. Timeouts,
        retries and caps keep their defaults (`dataclasses.replace` to change them).

        Raises:
            UsageError: no server is configured, or the settings are unusable.
        """
        env = os.environ if environ is None else environ
        url = server or env.get(ENV_SERVER) or env.get(ENV_DOCKER_SERVER)
        if not url:
            raise UsageError(
                "No trust server is configured: pass --server URL or set CEREMONY_SERVER "
                "(or DOCKER_CONTENT_TRUST_SERVER)."
            )
        ca = tls_ca
        if ca is None and env.get(ENV_TLS_CA):
            ca = Path(env[ENV_TLS_CA])
        if ca is not None and not ca.is_file():
            raise UsageError(f"The TLS CA file {ca} does not exist: check --tls-ca.")
        username, password = env.get(ENV_USERNAME), env.get(ENV_PASSWORD)
        if bool(username) != bool(password):
            raise UsageError(
                "Set both CEREMONY_USERNAME and CEREMONY_PASSWORD, or neither of them."
            )
        credentials = Credentials(username, password) if username and password else None
        docker_dir = env.get(ENV_DOCKER_CONFIG)
        docker_config = Path(docker_dir) if docker_dir else Path.home() / ".docker"
        return cls(
            url=url,
            tls_ca=ca,
            credentials=credentials,
            docker_config=docker_config,
        )


def _normalise_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"The trust server {url!r} is not an http(s) URL: pass --server https://HOST[:PORT]."
        )
    if parts.username is not None or parts.password is not None:
        raise UsageError(
            "Do not put credentials in the server URL: set CEREMONY_USERNAME and "
            "CEREMONY_PASSWORD instead."
        )
    if parts.query or parts.fragment:
        raise UsageError(f"The trust server URL {url!r} must not carry a query or fragment.")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


# ---------------------------------------------------------------------------
# names


def _check_role(role: str) -> str:
    if role not in BASE_ROLES and not is_delegation_name(role):
        raise UsageError(f"{role!r} is not a Notary role name.")
    return role


def metadata_name(role: str, *, version: int | None = None, sha256: str | None = None) -> str:
    """The server's file name: `role.json`, `N.role.json` or `role.<sha256hex>.json`."""
    _check_role(role)
    if version is not None and sha256 is not None:
        raise UsageError("Ask for metadata by version or by checksum, not both.")
    if version is not None:
        if version < 1:
            raise UsageError(f"Metadata version {version} does not exist; versions start at 1.")
        return f"{version}.{role}.json"
    if sha256 is not None:
        if len(sha256) != 64 or not _HEX.match(sha256):
            raise UsageError(f"{sha256!r} is not a sha256 hex digest.")
        return f"{role}.{sha256}.json"
    return f"{role}.json"


def _split_name(name: str) -> tuple[str, str | None]:
    """Validate a metadata file name; returns its role and the checksum it names (if any)."""
    bad = UsageError(
        f"{name!r} is not a metadata file name: use ROLE.json, N.ROLE.json or ROLE.HEX.json."
    )
    if not name.endswith(".json"):
        raise bad
    parts = name[: -len(".json")].split(".")
    digest: str | None = None
    if len(parts) == 2 and parts[0].isdigit() and not parts[0].startswith("0"):
        role = parts[1]
    elif len(parts) == 2 and len(parts[1]) in _DIGESTS and _HEX.match(parts[1]):
        role, digest = parts
    elif len(parts) == 1:
        role = parts[0]
    else:
        raise bad
    if role not in BASE_ROLES and not is_delegation_name(role):
        raise bad
    return role, digest


# ---------------------------------------------------------------------------
# the client


@dataclass(frozen=True, slots=True)
class _Challenge:
    realm: str
    service: str | None
    scope: str | None


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: bytes
    challenge: _Challenge | None
    error_code: str | None


class _Oversize(Exception):
    def __init__(self, cap: int) -> None:
        super().__init__(cap)
        self.cap = cap


class TrustServer:
    """A Notary 0.7 trust server, reached over HTTP(S) with httpx.

    Use as a context manager, or call `close()`. Tests may pass a `transport`
    (an httpx transport) and a `sleep` function for the retry backoff.
    """

    def __init__(
        self,
        config: ServerConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self._sleep = sleep
        self._tokens: dict[str, str] = {}
        self._transport = transport
        timeout = httpx.Timeout(config.read_timeout, connect=config.connect_timeout)
        self._timeout = timeout
        self._http = httpx.Client(
            verify=_server_tls(config.tls_ca),
            timeout=timeout,
            follow_redirects=False,
            headers={"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"},
            transport=transport,
        )
        self._token_http: httpx.Client | None = None

    def __enter__(self) -> TrustServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()
        if self._token_http is not None:
            self._token_http.close()

    # -- public API ---------------------------------------------------------

    def get_metadata(self, gun: str, name: str, max_length: int | None = None) -> bytes | None:
        """Download one metadata file, or None if the server does not have it.

        `name` is `root.json`, `timestamp.json`, `N.root.json` (by version) or
        `targets.<sha256hex>.json` (by checksum; the bytes are checked against
        it). The download stops past `max_length` bytes (default: the
        configured cap; never more than 1 MiB for `timestamp.json`).

        Raises:
            InputRejected: the server sent more than the cap.
            VerificationFailed: the bytes do not match the checksum asked for.
            EnvironmentFailure: the server is unreachable, failing or refuses access.
        """
        check_gun(gun)
        role, digest = _split_name(name)
        cap = self.config.max_download if max_length is None else max_length
        if role == "timestamp":
            cap = min(cap, TIMESTAMP_MAX_LENGTH)
        what = f"{name} of {gun}"
        answer = self._call("GET", self._tuf_url(gun, name), _pull(gun), cap, what)
        if answer.status == 404 and answer.error_code == "METADATA_NOT_FOUND":
            return None
        if answer.status != 200:
            raise self._error(answer, gun, what)
        if digest is not None:
            actual = hashlib.new(_DIGESTS[len(digest)], answer.body).hexdigest()
            if actual != digest:
                raise VerificationFailed(
                    f"The trust server answered {what} with bytes of another checksum: "
                    "it is faulty or tampered with."
                )
        return answer.body

    def get_server_key(self, gun: str, role: str) -> Key:
        """The server-held public key for `timestamp` or `snapshot` (`GET <role>.key`).

        Note that while no root is stored for `gun`, every call makes the server
        create a new key; once a root lists one, that key is returned.
        """
        check_gun(gun)
        if role not in ("timestamp", "snapshot"):
            raise UsageError(f"The server holds keys only for timestamp and snapshot, not {role}.")
        what = f"the {role} key of {gun}"
        answer = self._call(
            "GET", self._tuf_url(gun, f"{role}.key"), _push(gun), KEY_MAX_LENGTH, what
        )
        if answer.status != 200:
            raise self._error(answer, gun, what)
        doc = parse_json(answer.body, what=f"{role} key the trust server sent for {gun}")
        return Key.from_dict(doc, f"the {role} key the trust server sent for {gun}")

    def publish(self, gun: str, files: Mapping[str, bytes]) -> None:
        """Upload metadata in one atomic multipart POST (role name -> exact envelope bytes).

        Raises:
            InputRejected: the server refused the update (stale version, bad
                signatures, incomplete hierarchy, malformed upload).
            EnvironmentFailure: the server is unreachable, failing or refuses access.
        """
        check_gun(gun)
        if not files:
            raise UsageError(f"There is nothing to publish for {gun}.")
        for role in files:
            _check_role(role)
        parts = [
            ("files", (role, bytes(data), "application/octet-stream"))
            for role, data in files.items()
        ]
        what = f"the update of {gun}"
        answer = self._call(
            "POST", self._tuf_url(gun, ""), _push(gun), ERROR_MAX_LENGTH, what, files=parts
        )
        if answer.status != 200:
            raise self._error(answer, gun, what)

    # -- transport ----------------------------------------------------------

    def _tuf_url(self, gun: str, name: str) -> str:
        return f"{self.config.url}/v2/{quote(gun, safe='/:@+')}/_trust/tuf/{name}"

    def _call(
        self,
        method: str,
        url: str,
        scope: str,
        cap: int,
        what: str,
        *,
        files: list[tuple[str, tuple[str, bytes, str]]] | None = None,
    ) -> _Answer:
        """One logical request: retries (GET only), one token round on 401, capped body."""
        authenticated = False
        while True:
            token = self._tokens.get(scope)
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            answer = self._with_retries(
                self._http, method, url, cap, what, headers=headers, files=files
            )
            if answer.status != 401 or authenticated or answer.challenge is None:
                return answer
            self._tokens[scope] = self._request_token(answer.challenge, scope)
            authenticated = True

    def _with_retries(
        self,
        client: httpx.Client,
        method: str,
        url: str,
        cap: int,
        what: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: httpx.QueryParams | None = None,
        auth: tuple[str, str] | None = None,
        files: list[tuple[str, tuple[str, bytes, str]]] | None = None,
        endpoint: str = "trust server",
    ) -> _Answer:
        retries = self.config.retries if method == "GET" else 0
        attempt = 0
        while True:
            try:
                answer = self._send(client, method, url, cap, headers, params, auth, files)
            except _Oversize as exc:
                raise InputRejected(
                    f"The {endpoint} sent more than {exc.cap} bytes for {what}: "
                    "refusing it as faulty or malicious."
                ) from None
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                if attempt < retries:
                    self._sleep(self.config.backoff * 2**attempt)
                    attempt += 1
                    continue
                raise _unreachable(endpoint, _origin(url), exc, self.config) from None
            except httpx.HTTPError as exc:
                raise _unreachable(endpoint, _origin(url), exc, self.config) from None
            if answer.status >= 500 and attempt < retries:
                self._sleep(self.config.backoff * 2**attempt)
                attempt += 1
                continue
            return answer

    @staticmethod
    def _send(
        client: httpx.Client,
        method: str,
        url: str,
        cap: int,
        headers: Mapping[str, str] | None,
        params: httpx.QueryParams | None,
        auth: tuple[str, str] | None,
        files: list[tuple[str, tuple[str, bytes, str]]] | None,
    ) -> _Answer:
        request = client.build_request(method, url, headers=headers, params=params, files=files)
        response = client.send(request, stream=True, auth=httpx.BasicAuth(*auth) if auth else None)
        try:
            ok = response.status_code == 200
            # only downloads are refused past the cap; other answers are just truncated
            strict = ok and method == "GET"
            body = _read_capped(response, cap if ok else ERROR_MAX_LENGTH, strict=strict)
        finally:
            response.close()
        return _Answer(
            response.status_code,
            body,
            _challenge(response.headers.get_list("www-authenticate")),
            None if ok else _error_code(body),
        )

    # -- token auth ---------------------------------------------------------

    def _request_token(self, challenge: _Challenge, scope: str) -> str:
        realm = challenge.realm
        origin = _origin(realm)
        parts = urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise EnvironmentFailure(
                f"The trust server asks for a token from {realm!r}, which is not an http(s) "
                "URL: check the server's auth configuration."
            )
        credentials = self.config.credentials or _docker_credentials(
            self.config.docker_config, (self.config.host, parts.netloc)
        )
        if credentials is not None and parts.scheme == "http" and not _is_loopback(parts.hostname):
            raise EnvironmentFailure(
                f"The token server {origin} is not HTTPS, so credentials will not be sent to it: "
                "configure an https realm on the trust server."
            )
        query: dict[str, str | list[str]] = {"scope": (challenge.scope or scope).split()}
        if challenge.service:
            query["service"] = challenge.service
        if credentials is not None:
            query["account"] = credentials.username
        if self._token_http is None:
            self._token_http = httpx.Client(
                verify=_token_tls(self.config.tls_ca),
                timeout=self._timeout,
                follow_redirects=False,
                headers={"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"},
                transport=self._transport,
            )
        answer = self._with_retries(
            self._token_http,
            "GET",
            realm,
            TOKEN_MAX_LENGTH,
            "a token",
            params=httpx.QueryParams(query),
            auth=(credentials.username, credentials.password) if credentials else None,
            endpoint="token server",
        )
        if answer.status in (401, 403):
            source = (
                "the CEREMONY_USERNAME/CEREMONY_PASSWORD credentials"
                if self.config.credentials
                else "the Docker config credentials"
                if credentials
                else "anonymous access"
            )
            raise EnvironmentFailure(
                f"The token server {origin} refused {source} (HTTP {answer.status}): "
                "check the account name and password or run docker login."
            )
        if answer.status != 200:
            raise EnvironmentFailure(
                f"The token server {origin} answered HTTP {answer.status}: "
                "try again later or ask its operator to check it."
            )
        try:
            doc = json.loads(answer.body)
        except ValueError:
            doc = None
        token = None
        if isinstance(doc, dict):
            token = doc.get("token") or doc.get("access_token")
        if not isinstance(token, str) or not token or not token.isascii() or " " in token:
            raise EnvironmentFailure(
                f"The token server {origin} sent no usable token: check the realm configured "
                "on the trust server."
            )
        return token

    # -- errors -------------------------------------------------------------

    def _error(self, answer: _Answer, gun: str, what: str) -> CeremonyError:
        return _error_for(answer, gun, what, self.config.url)


# ---------------------------------------------------------------------------
# helpers for the transport


def _server_tls(ca: Path | None) -> ssl.SSLContext:
    """Trust only the given CA for the trust server (like notary's --tlscacert), else the system."""
    try:
        return ssl.create_default_context(cafile=str(ca)) if ca else ssl.create_default_context()
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(
            f"The TLS CA file {ca} cannot be used ({type(exc).__name__}): "
            "pass a PEM certificate with --tls-ca."
        ) from None


def _token_tls(ca: Path | None) -> ssl.SSLContext:
    """The token service may have a public certificate: trust the system store plus the CA."""
    context = ssl.create_default_context()
    if ca is not None:
        try:
            context.load_verify_locations(cafile=str(ca))
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(
                f"The TLS CA file {ca} cannot be used ({type(exc).__name__}): "
                "pass a PEM certificate with --tls-ca."
            ) from None
    return context


def _read_capped(response: httpx.Response, cap: int, *, strict: bool) -> bytes:
    """Read at most `cap` bytes; past it, raise (strict) or truncate (error documents)."""
    declared = response.headers.get("content-length")
    if strict and declared is not None and declared.isdigit() and int(declared) > cap:
        raise _Oversize(cap)
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > cap:
            if strict:
                raise _Oversize(cap)
            chunks.append(chunk[: cap - (size - len(chunk))])
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _challenge(headers: list[str]) -> _Challenge | None:
    for header in headers:
        scheme, _, rest = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            continue
        params = {
            m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
            for m in _PARAM.finditer(rest)
        }
        realm = params.get("realm")
        if realm:
            return _Challenge(realm, params.get("service"), params.get("scope"))
    return None


def _error_documents(body: bytes) -> list[dict[str, Any]]:
    try:
        doc = json.loads(body)
    except ValueError:
        return []
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if not isinstance(errors, list):
        return []
    return [e for e in errors if isinstance(e, dict)]


def _error_code(body: bytes) -> str | None:
    for error in _error_documents(body):
        code = error.get("code")
        if isinstance(code, str):
            return code
    return None


def _compact(text: Any, limit: int = 240) -> str:
    """The server's words as one clause: no newlines, no inner full stops, bounded."""
    clean = " ".join(str(text).split())
    clean = re.sub(r"[\x00-\x1f\x7f]", "", clean).replace(". ", "; ").rstrip(" .;:")
    return clean if len(clean) <= limit else clean[: limit - 1].rstrip() + "…"


def _error_for(answer: _Answer, gun: str, what: str, url: str) -> CeremonyError:
    errors = _error_documents(answer.body)
    first = errors[0] if errors else {}
    code = answer.error_code
    message = _compact(first.get("message", "")) if first else ""
    detail = first.get("detail")
    status = answer.status
    if code == "VERSION":
        return InputRejected(
            f"The server already holds a newer version of {gun} metadata: re-export the request."
        )
    if code == "INVALID_UPDATE":
        kind, reason = "invalid update", message or "no reason given"
        if isinstance(detail, dict):
            name = detail.get("Name")
            kind = _UPDATE_KINDS.get(name, _compact(name)) if isinstance(name, str) else kind
            inner = detail.get("Error")
            if isinstance(inner, dict) and inner.get("Msg"):
                reason = _compact(inner["Msg"])
        return InputRejected(f"The trust server rejected the update of {gun} ({kind}): {reason}.")
    if status == 401 or code == "UNAUTHORIZED":
        return EnvironmentFailure(
            f"The trust server at {url} refused access to {gun} (unauthorized): check "
            "CEREMONY_USERNAME/CEREMONY_PASSWORD or your docker login for it."
        )
    if status >= 500:
        suffix = f", {code}" if code else ""
        return EnvironmentFailure(
            f"The trust server at {url} failed (HTTP {status}{suffix}) on {what}: "
            "try again later or ask its operator to check its logs."
        )
    if status == 400 and code:
        extra = f" {_compact(detail, 80)!r}" if code == "INVALID_ROLE" and detail else ""
        text = message or "no reason given"
        return InputRejected(f"The trust server rejected {what} ({code}{extra}): {text}.")
    if status == 400:
        return EnvironmentFailure(
            f"The server at {url} answered HTTP 400 without a Notary error to {what}: "
            "check the scheme of --server (http or https) and that it is a Notary server."
        )
    if status == 404:
        return EnvironmentFailure(
            f"The trust server at {url} has no such endpoint for {what} (HTTP 404): "
            "check that --server points at a Notary server."
        )
    return EnvironmentFailure(
        f"The trust server at {url} answered HTTP {status} to {what}: "
        "check that --server points at a Notary server."
    )


def _origin(url: str) -> str:
    """`scheme://host[:port]` of a URL: no userinfo, path or query in messages."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _reason(exc: httpx.HTTPError, config: ServerConfig) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return f"no connection within {config.connect_timeout:g} s"
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within {config.read_timeout:g} s"
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate verification failed: {_compact(cause.verify_message, 80)}"
        if isinstance(cause, ssl.SSLError):
            return "the TLS handshake failed"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return "the host name does not resolve"
    text = str(exc).lower()
    if "certificate verify failed" in text:
        return "TLS certificate verification failed"
    if "connection refused" in text or "errno 111" in text:
        return "connection refused"
    if "name or service not known" in text or "name resolution" in text:
        return "the host name does not resolve"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the connection broke off"
    return type(exc).__name__


def _unreachable(
    endpoint: str, origin: str, exc: httpx.HTTPError, config: ServerConfig
) -> EnvironmentFailure:
    return EnvironmentFailure(
        f"Cannot reach the {endpoint} at {origin} ({_reason(exc, config)}): "
        "check --server/--tls-ca and that it is running."
    )


def _pull(gun: str) -> str:
    return f"repository:{gun}:pull"


def _push(gun: str) -> str:
    return f"repository:{gun}:push,pull"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _auth_host(key: str) -> str:
    """`https://host:port/v1/` or `host:port` -> `host:port` (how Docker keys `auths`)."""
    text = key.strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    return text.split("/", 1)[0].lower()


def _docker_credentials(directory: Path | None, hosts: tuple[str, ...]) -> Credentials | None:
    """Basic credentials from `auths.<host>.auth` of Docker's config.json, if any match."""
    if directory is None:
        return None
    path = directory / "config.json"
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        raise EnvironmentFailure(
            f"The Docker config {path} cannot be read as JSON: fix it or set "
            "CEREMONY_USERNAME and CEREMONY_PASSWORD."
        ) from None
    auths = doc.get("auths") if isinstance(doc, dict) else None
    if not isinstance(auths, dict):
        return None
    by_host = {_auth_host(k): v for k, v in auths.items() if isinstance(v, dict)}
    for host in hosts:
        entry = by_host.get(host.lower())
        encoded = entry.get("auth") if entry else None
        if not isinstance(encoded, str) or not encoded:
            continue
        try:
            username, sep, password = (
                base64.b64decode(encoded, validate=True).decode().partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            username, sep, password = "", "", ""
        if not sep or not username:
            raise EnvironmentFailure(
                f"The Docker config {path} holds a malformed auth entry for {host}: "
                "run docker login again."
            )
        return Credentials(username, password)
    return None


# ---------------------------------------------------------------------------
# fetching a repository in TUF order


@dataclass(frozen=True, slots=True)
class FetchedRepository:
    """Raw files exactly as served, and the report of their verification.

    `files` uses the keys `verify_repository` takes: `root`, `N.root` (every
    older root fetched for the chain), `timestamp`, `snapshot`, `targets` and
    each delegation by role name.
    """

    files: Mapping[str, bytes]
    report: RepositoryReport


def _required(server: TrustServer, gun: str, name: str, cap: int, listed_by: str) -> bytes:
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


def fetch_root_chain(
    server: TrustServer,
    gun: str,
    *,
    start: int = 1,
    newest: Envelope[Root] | None = None,
    newest_bytes: bytes | None = None,
) -> dict[int, bytes] | None:
    """Every root version `start`..N as served (`N.root.json`), N being the current root.

    The current root is downloaded as `root.json` unless given (`newest` and
    its `newest_bytes`). Each older version is checked to parse as a root of
    the version asked for; signatures are left to `ceremony.core.verify`, which
    walks the chain from whatever root the verifier trusts. None if the
    repository does not exist.
    """
    if newest is None or newest_bytes is None:
        newest_bytes = server.get_metadata(gun, metadata_name("root"))
        if newest_bytes is None:
            return None
        newest = parse_envelope(newest_bytes, Root, what=f"root metadata of {gun}")
    top = newest.body.version
    chain: dict[int, bytes] = {}
    for version in range(max(start, 1), top):
        name = metadata_name("root", version=version)
        data = _required(server, gun, name, server.config.max_download, f"root v{top}")
        env = parse_envelope(data, Root, what=f"{name} of {gun}")
        if env.body.version != version:
            raise VerificationFailed(
                f"The trust server answered {name} for {gun} with root v{env.body.version}: "
                "it is faulty or tampered with."
            )
        chain[version] = data
    chain[top] = newest_bytes
    return chain


def fetch_repository(
    server: TrustServer,
    gun: str,
    now: datetime,
    *,
    trusted_root: Envelope[Root] | None = None,
    previous_versions: Mapping[str, int] | None = None,
    full_root_chain: bool = False,
    expired_ok: bool = False,
) -> FetchedRepository | None:
    """Download `gun` in TUF order and verify it; None if the server has no such repository.

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
    root = parse_envelope(root_bytes, Root, what=f"root metadata of {gun}")
    files: dict[str, bytes] = {"root": root_bytes}
    start = 1 if full_root_chain else None
    if start is None and trusted_root is not None:
        start = trusted_root.body.version + 1
    if start is not None and start < root.body.version:
        chain = fetch_root_chain(server, gun, start=start, newest=root, newest_bytes=root_bytes)
        for version, data in (chain or {}).items():
            if version != root.body.version:
                files[f"{version}.root"] = data

    timestamp_bytes = _required(
        server, gun, metadata_name("timestamp"), TIMESTAMP_MAX_LENGTH, "root"
    )
    files["timestamp"] = timestamp_bytes
    timestamp = parse_envelope(timestamp_bytes, Timestamp, what=f"timestamp metadata of {gun}")
    snap_meta = timestamp.body.meta["snapshot"]
    snapshot_bytes = _required(
        server,
        gun,
        metadata_name("snapshot", sha256=_sha256_of(snap_meta.hashes, "snapshot", "The timestamp")),
        min(snap_meta.length, server.config.max_download),
        "the timestamp",
    )
    files["snapshot"] = snapshot_bytes
    snapshot = parse_envelope(snapshot_bytes, Snapshot, what=f"snapshot metadata of {gun}")

    # targets, then delegations in pre-order; only roles the snapshot lists are fetched
    pending: list[str] = ["targets"]
    while pending:
        role = pending.pop()
        meta = snapshot.body.meta.get(role)
        if meta is None or role in files:
            continue
        data = _required(
            server,
            gun,
            metadata_name(role, sha256=_sha256_of(meta.hashes, role, "The snapshot")),
            min(meta.length, server.config.max_download),
            "the snapshot",
        )
        files[role] = data
        body = parse_envelope(data, Targets, what=f"{role} metadata of {gun}").body
        pending.extend(r.name for r in reversed(body.delegations.roles))

    report = verify_repository(
        files,
        gun,
        now,
        trusted_root=trusted_root,
        previous_versions=previous_versions,
        expired_ok=expired_ok,
    )
    return FetchedRepository(files, report)
