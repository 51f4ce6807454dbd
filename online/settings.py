"""Names of the online half's environment variables and its default home: read by the
command line's global options before any heavier module is imported."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "CEREMONY_ONLINE_HOME"
ENV_SERVER = "CEREMONY_SERVER"
ENV_DOCKER_SERVER = "DOCKER_CONTENT_TRUST_SERVER"
ENV_TLS_CA = "CEREMONY_TLS_CA"


def default_home() -> Path:
    """`$CEREMONY_ONLINE_HOME`, else `~/.ceremony-online`."""
    env = os.environ.get(HOME_ENV)
    return Path(env) if env else Path.home() / ".ceremony-online"
