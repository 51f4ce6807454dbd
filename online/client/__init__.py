"""The online half's one seam to the trust server.

Operations receive a `Server`: `TrustServer` (`online.client.http`) speaks
Notary 0.7's HTTP API; tests also use an in-memory double
(`tests/server_double.py`). `online.client.fetch` reads a repository through
either in TUF order and verifies it with the pure `ceremony.core.verify`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Protocol

from ceremony.core.metadata import Key

# httpx imports its own command-line client (click, rich, pygments: a third of its import
# time, paid by every export and publish) unless that import fails, which it allows for.
# The online half never runs that client.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

MIB = 1024 * 1024
TIMESTAMP_MAX_LENGTH = 1 * MIB  # what Notary's client allows for timestamp.json
DEFAULT_MAX_DOWNLOAD = 100 * MIB  # Notary's cap for files whose length is not yet known
RECORDED_MAX_LENGTH = 1024 * MIB  # a file whose parent records its length: 10⁶ targets fit


class Server(Protocol):
    """A Notary trust server, as the online half uses it."""

    @property
    def location(self) -> str:
        """Where it is, for messages (a URL)."""
        ...

    @property
    def max_download(self) -> int:
        """The cap for files whose length no parent records (root.json, N.root.json)."""
        ...

    def get_metadata(self, gun: str, name: str, max_length: int | None = None) -> bytes | None:
        """One metadata file (`root.json`, `N.root.json`, `ROLE.<sha256>.json`), None if absent."""
        ...

    def get_server_key(self, gun: str, role: str) -> Key:
        """The server-held public key for `timestamp` or `snapshot`."""
        ...

    def publish(self, gun: str, files: Mapping[str, bytes]) -> None:
        """Upload role name -> exact envelope bytes in one atomic update."""
        ...
