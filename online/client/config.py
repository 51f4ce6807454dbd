"""Where the trust server is and how to reach it: the command line, the environment, Docker's config."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

from ceremony.core.errors import (
    EnvironmentFailure,
    UsageError,
    clipped,
)
from ceremony.edge.fsutil import MAX_INPUT, Flaw, read_regular_file
from online.client import DEFAULT_MAX_DOWNLOAD
from online.settings import ENV_DOCKER_SERVER, ENV_SERVER, ENV_TLS_CA

ENV_USERNAME = "CEREMONY_USERNAME"
ENV_PASSWORD = "CEREMONY_PASSWORD"  # noqa: S105 - the name of a variable, not a secret
ENV_DOCKER_CONFIG = "DOCKER_CONFIG"
ENV_ALLOW_HTTP = "CEREMONY_ALLOW_HTTP"
ENV_DEADLINE = "CEREMONY_DOWNLOAD_DEADLINE"
MAX_URL_LENGTH = 2048  # far beyond any real server URL (a host name is at most 253)
DEFAULT_DEADLINE = 120.0  # seconds for one whole download, however slowly it drips


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
        deadline: seconds one download may take in all (a server dripping a byte a
            second restarts the read timeout with every byte; this bound does not).
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
    deadline: float = DEFAULT_DEADLINE

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", _normalise_url(self.url))
        if self.connect_timeout <= 0 or self.read_timeout <= 0 or self.deadline <= 0:
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
        allow_http: bool = False,
    ) -> ServerConfig:
        """Resolve the command line and the environment into a configuration.

        The server is `--server`, else `CEREMONY_SERVER`, else
        `DOCKER_CONTENT_TRUST_SERVER`; the CA is `--tls-ca`, else
        `CEREMONY_TLS_CA`. Credentials come from `CEREMONY_USERNAME` and
        `CEREMONY_PASSWORD`; without them the Docker config in `DOCKER_CONFIG`
        (default `~/.docker`) is consulted when a token is needed. Timeouts,
        retries and caps keep their defaults (`dataclasses.replace` to change them);
        `CEREMONY_DOWNLOAD_DEADLINE` bounds one download in seconds.

        A plain `http://` URL is refused unless `allow_http` (the `--allow-http`
        option) or `CEREMONY_ALLOW_HTTP=1`: tokens and credentials would travel in the
        clear, and anyone on the path could serve or withhold metadata unnoticed
        until verification.

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
        _check_length(url)
        if _split(url).scheme == "http" and not (allow_http or env.get(ENV_ALLOW_HTTP) == "1"):
            raise UsageError(
                f"The trust server URL {clipped(url)} is plain http, so tokens, credentials and "
                "metadata would travel in the clear: use https, or pass --allow-http "
                "(CEREMONY_ALLOW_HTTP=1) for a server you reach privately."
            )
        deadline = DEFAULT_DEADLINE
        if env.get(ENV_DEADLINE):
            try:
                deadline = float(env[ENV_DEADLINE])
            except ValueError:
                deadline = -1.0
            if not 0 < deadline < 86400:
                raise UsageError(f"{ENV_DEADLINE} must be a number of seconds between 0 and 86400.")
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
            deadline=deadline,
        )


def _check_length(url: str) -> None:
    """A URL longer than any server's is refused before anything quotes or resolves it."""
    if len(url) > MAX_URL_LENGTH:
        raise UsageError(
            f"The trust server URL is {len(url)} characters long, more than {MAX_URL_LENGTH}: "
            "check --server or CEREMONY_SERVER."
        )


def _split(url: str) -> SplitResult:
    """The parts of a server URL; one that cannot be split (`https://[`) is a usage error."""
    try:
        return urlsplit(url.strip())
    except ValueError:
        raise UsageError(
            f"The trust server {clipped(url)} is not a valid URL: pass --server https://HOST[:PORT]."
        ) from None


def _normalise_url(url: str) -> str:
    _check_length(url)
    parts = _split(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"The trust server {clipped(url)} is not an http(s) URL: pass --server https://HOST[:PORT]."
        )
    try:  # a label over 63 characters or a port out of range fails here, not deep in httpx
        parts.hostname.encode("idna")
        _ = parts.port
    except (UnicodeError, ValueError):
        raise UsageError(
            f"The trust server URL {clipped(url)} has no valid host name and port: "
            "pass --server https://HOST[:PORT]."
        ) from None
    if parts.username is not None or parts.password is not None:
        raise UsageError(
            "Do not put credentials in the server URL: set CEREMONY_USERNAME and "
            "CEREMONY_PASSWORD instead."
        )
    if parts.query or parts.fragment:
        raise UsageError(f"The trust server URL {clipped(url)} must not carry a query or fragment.")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def auth_host(key: str) -> str:
    """`https://host:port/v1/` or `host:port` -> `host:port` (how Docker keys `auths`)."""
    text = key.strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    return text.split("/", 1)[0].lower()


class _NoDockerConfig(EnvironmentFailure):
    """No config.json at all: nothing to read credentials from, which is fine."""


def docker_credentials(directory: Path | None, hosts: tuple[str, ...]) -> Credentials | None:
    """Basic credentials from `auths.<host>.auth` of Docker's config.json, if any match."""
    if directory is None:
        return None
    path = directory / "config.json"
    advice = "fix it or set CEREMONY_USERNAME and CEREMONY_PASSWORD"

    def fault(sentence: str, flaw: Flaw) -> EnvironmentFailure:
        return (
            _NoDockerConfig(sentence)
            if flaw == "missing"
            else EnvironmentFailure(f"{sentence}: {advice}.")
        )

    try:
        doc = json.loads(read_regular_file(path, "Docker config", cap=MAX_INPUT, fault=fault))
    except _NoDockerConfig:
        return None
    except (OSError, ValueError, RecursionError):  # RecursionError: nesting 100,000 deep
        raise EnvironmentFailure(
            f"The Docker config {path} cannot be read as JSON: {advice}."
        ) from None
    auths = doc.get("auths") if isinstance(doc, dict) else None
    if not isinstance(auths, dict):
        return None
    by_host = {auth_host(k): v for k, v in auths.items() if isinstance(v, dict)}
    for host in hosts:
        entry = by_host.get(host.lower())
        encoded = entry.get("auth") if entry else None
        if not isinstance(encoded, str) or not encoded:
            continue
        try:
            username, sep, password = (
                base64.b64decode(encoded, validate=True).decode().partition(":")
            )
        except ValueError:  # not base64 (binascii.Error), not ASCII, not UTF-8 once decoded
            username, sep, password = "", "", ""
        if not sep or not username:
            raise EnvironmentFailure(
                f"The Docker config {path} holds a malformed auth entry for {host}: "
                "run docker login again."
            )
        return Credentials(username, password)
    return None
