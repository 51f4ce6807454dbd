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

import hashlib
import ipaddress
import json
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
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
    Key,
)
from online.client import TIMESTAMP_MAX_LENGTH
from online.client.config import ServerConfig, docker_credentials
from online.client.names import DIGESTS, check_role, split_name

KEY_MAX_LENGTH = 64 * 1024
ERROR_MAX_LENGTH = 64 * 1024
TOKEN_MAX_LENGTH = 1 * 1024 * 1024
# The slowest rate, in bytes a second, at which a trust server is expected to take in and
# check an upload before it answers (notary-server parses and verifies the whole body
# first: a 1,000,000-target targets.json, about 160 MB, takes it well over 30 s on a busy
# 2-core machine). Deliberately low, so only a server that has truly stalled is cut.
UPLOAD_FLOOR_BYTES_PER_SECOND = 1024 * 1024

_USER_AGENT = "notary-ceremony-online/0.1"
_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')
# notary-server reports a dead notary-signer as an INVALID_UPDATE carrying the gRPC error
_SIGNER_DOWN = re.compile(r"rpc error|code = Unavailable|unable to reach trust server", re.I)
_UPDATE_KINDS = {
    "ErrBadRoot": "bad root",
    "ErrBadTargets": "bad targets",
    "ErrBadSnapshot": "bad snapshot",
    "ErrBadHierarchy": "incomplete hierarchy",
    "ErrValidation": "invalid update",
}


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


class _TooSlow(Exception):
    def __init__(self, received: int, deadline: float) -> None:
        super().__init__(received)
        self.received = received
        self.deadline = deadline


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

    @property
    def location(self) -> str:
        return self.config.url

    @property
    def max_download(self) -> int:
        return self.config.max_download

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
        role, digest = split_name(name)
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
            actual = hashlib.new(DIGESTS[len(digest)], answer.body).hexdigest()
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
            check_role(role)
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
        read_timeout, deadline = upload_allowance(self.config, files)
        attempt = 0
        while True:
            try:
                answer = self._send(
                    client, method, url, cap, headers, params, auth, files, read_timeout, deadline
                )
            except _Oversize as exc:
                raise InputRejected(
                    f"The {endpoint} sent more than {exc.cap} bytes for {what}: "
                    "refusing it as faulty or malicious."
                ) from None
            except _TooSlow as exc:
                raise EnvironmentFailure(
                    f"The {endpoint} at {_origin(url)} sent only {exc.received} bytes of {what} "
                    f"in {exc.deadline:g} s, so the connection was cut (a stalled or malicious "
                    "server): check it or the network, or raise CEREMONY_DOWNLOAD_DEADLINE."
                ) from None
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                if attempt < retries:
                    self._sleep(self.config.backoff * 2**attempt)
                    attempt += 1
                    continue
                raise _unreachable(endpoint, _origin(url), exc, self.config, read_timeout) from None
            except httpx.HTTPError as exc:
                raise _unreachable(endpoint, _origin(url), exc, self.config, read_timeout) from None
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
        read_timeout: float,
        deadline: float,
    ) -> _Answer:
        started = time.monotonic()
        timeout = httpx.Timeout(min(read_timeout, deadline), connect=client.timeout.connect)
        request = client.build_request(
            method,
            url,
            headers=headers,
            params=params,
            files=files,
            timeout=timeout,
        )
        response = client.send(request, stream=True, auth=httpx.BasicAuth(*auth) if auth else None)
        try:
            ok = response.status_code == 200
            # only downloads are refused past the cap; other answers are just truncated
            strict = ok and method == "GET"
            body = _read_capped(
                response,
                cap if ok else ERROR_MAX_LENGTH,
                strict=strict,
                deadline=started + deadline,
                seconds=deadline,
            )
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
        credentials = self.config.credentials or docker_credentials(
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


def upload_allowance(
    config: ServerConfig, files: list[tuple[str, tuple[str, bytes, str]]] | None
) -> tuple[float, float]:
    """The read timeout and the whole-request deadline, in seconds, for one request.

    A download (no `files`) keeps the configured read timeout and total deadline, so a
    stalled or dripping server is still cut as before. An upload grows both by its size
    over `UPLOAD_FLOOR_BYTES_PER_SECOND` (1 MiB/s): the server reads and checks the whole
    body before it answers a byte, so a fixed 30 s would cut a healthy server taking in a
    1,000,000-target targets.json (about 160 MB: 30 + 153 s read timeout). The answer's
    body is still capped at `ERROR_MAX_LENGTH`.
    """
    if not files:
        return config.read_timeout, config.deadline
    size = sum(len(part[1][1]) for part in files)
    extra = size / UPLOAD_FLOOR_BYTES_PER_SECOND
    return config.read_timeout + extra, config.deadline + extra


def _read_capped(
    response: httpx.Response, cap: int, *, strict: bool, deadline: float, seconds: float
) -> bytes:
    """Read at most `cap` bytes by the `deadline` (a monotonic time); past the cap, raise
    (strict) or truncate (error documents); past the deadline, raise `_TooSlow`."""
    declared = response.headers.get("content-length")
    if strict and declared is not None and declared.isdigit() and int(declared) > cap:
        raise _Oversize(cap)
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        if time.monotonic() > deadline:
            raise _TooSlow(size, seconds)
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
        if detail is None:
            # A real rejection names its kind in the detail; notary-server answers this
            # bare form when its own storage fails (PostgreSQL down), after we checked
            # every signature and threshold here.
            return EnvironmentFailure(
                f"The trust server at {url} refused the update of {gun} without a reason, as "
                "notary-server does when its database fails: ask its operator to check it, "
                "then publish again (everything is kept)."
            )
        if _SIGNER_DOWN.search(reason):
            return EnvironmentFailure(
                f"The trust server at {url} could not reach its signing service (notary-signer) "
                f"for the update of {gun}: ask its operator to check it, then publish again "
                "(everything is kept)."
            )
        return InputRejected(f"The trust server rejected the update of {gun} ({kind}): {reason}.")
    if status == 409:
        return InputRejected(
            f"The trust server refused {what} as a conflict (HTTP 409): another update of "
            f"{gun} reached it first; run publish again, and re-export if the server moved "
            "(everything is kept)."
        )
    if 300 <= status < 400:
        return EnvironmentFailure(
            f"The trust server at {url} redirects {what} elsewhere (HTTP {status}), and "
            "redirects are not followed: point --server at the address that answers itself."
        )
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


def _reason(exc: httpx.HTTPError, config: ServerConfig, read_timeout: float) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return f"no connection within {config.connect_timeout:g} s"
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within {read_timeout:g} s"
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate verification failed: {_compact(cause.verify_message, 80)}"
        if isinstance(cause, ssl.SSLError):
            return "the TLS handshake failed"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ConnectionResetError):
            return "the connection was reset"
        if isinstance(cause, socket.gaierror):
            return "the host name does not resolve"
    text = str(exc).lower()
    if "certificate verify failed" in text:
        return "TLS certificate verification failed"
    if "connection refused" in text or "errno 111" in text:
        return "connection refused"
    if "name or service not known" in text or "name resolution" in text:
        return "the host name does not resolve"
    if "reset" in text:
        return "the connection was reset"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return "the connection broke off"
    return type(exc).__name__


def _unreachable(
    endpoint: str, origin: str, exc: httpx.HTTPError, config: ServerConfig, read_timeout: float
) -> EnvironmentFailure:
    return EnvironmentFailure(
        f"Cannot reach the {endpoint} at {origin} ({_reason(exc, config, read_timeout)}): "
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
