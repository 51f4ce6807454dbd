"""The online half's configuration: its environment variables and Docker's config.json.

The input is `NAME=value` lines, a blank line, then the bytes of config.json.
`ServerConfig.from_env` reads the variables; `docker_credentials` reads the file
(written to a private temporary folder). Property of a configuration read: its URL
is normalised (https, or http only when allowed) and credentials, if found, have a
user name.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from fuzz.driver import REFUSED, Target, expect, refused
from online.client.config import ServerConfig, docker_credentials

_DIR = Path(tempfile.mkdtemp(prefix="fuzz-docker-config-"))
atexit.register(shutil.rmtree, _DIR, True)


def check(data: bytes) -> None:
    head, _, body = data.partition(b"\n\n")
    environ = {}
    for line in head.decode("utf-8", "replace").split("\n"):
        name, sep, value = line.partition("=")
        if sep and "\0" not in line:
            environ[name] = value
    environ.pop("DOCKER_CONFIG", None)
    environ.pop("CEREMONY_TLS_CA", None)  # a path on this machine: not what is fuzzed here
    config = refused(lambda: ServerConfig.from_env(None, None, environ=environ))
    if config is not REFUSED:
        expect(config.url.startswith(("https://", "http://")), "the server URL is not http(s)")
        expect(not config.url.endswith("/"), "the server URL keeps a trailing slash")
    (_DIR / "config.json").write_bytes(body)
    hosts = (config.host,) if config is not REFUSED else ("notary.example.com:4443", "h:1")
    credentials = refused(lambda: docker_credentials(_DIR, hosts))
    if credentials not in (REFUSED, None):
        expect(bool(credentials.username), "credentials without a user name")


TARGET = Target(
    "online_config",
    check,
    "the online configuration (CEREMONY_* variables, Docker config.json)",
    None,
    max_len=4096,
)
