"""The online home's cache of metadata files the server served, by SHA-256.

A 10⁵-target repository has a targets file of 10–20 MB, which export and publish would
otherwise download every time. The cache never decides what is trusted: a file is taken
from it only when its length and SHA-256 are exactly those the freshly fetched snapshot
records, and it is then verified like a download (signatures, hashes, versions). Anything
else in it (a damaged, truncated or planted file) is ignored and the file is downloaded
again, never an error. Files are written without fsync: a torn file fails the hash check.

Layout: ``HOME/repositories/<GUN>/cache/<sha256 hex>.json``, only the files the last
verified snapshot names (older ones are removed when a newer snapshot is verified).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

from ceremony.core.metadata import FileMeta

_NAME = re.compile(r"^([0-9a-f]{64})\.json$")


class MetadataCache:
    """Metadata files by SHA-256 in one folder (created on first write)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, sha256_hex: str) -> Path:
        return self.folder / f"{sha256_hex}.json"

    def get(self, meta: FileMeta) -> bytes | None:
        """The cached file named by `meta`'s SHA-256, if it has `meta`'s length, else None.

        The caller must still compare its SHA-256 with `meta`'s (`fetch_repository` does,
        as for a download) before using it."""
        digest = meta.hashes.get("sha256")
        if digest is None:
            return None
        try:
            with self._path(digest.hex()).open("rb") as f:
                data = f.read(meta.length + 1)
        except OSError:  # absent, unreadable, a folder: download instead
            return None
        return data if len(data) == meta.length else None

    def holds(self, sha256_hex: str, length: int) -> bool:
        """Whether a file of that name and length is there (its bytes are checked on use)."""
        try:
            return self._path(sha256_hex).stat().st_size == length
        except OSError:
            return False

    def put(self, sha256_hex: str, data: bytes) -> None:
        """Keep `data`, whose SHA-256 a verified snapshot records as `sha256_hex` (best effort:
        a failure only means a later download)."""
        path = self._path(sha256_hex)
        with contextlib.suppress(OSError):
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=self.folder)
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                os.replace(tmp, path)
            except OSError:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)

    def keep_only(self, sha256_hexes: Iterable[str]) -> None:
        """Remove every cached file but these (those the newest verified snapshot names)."""
        wanted = set(sha256_hexes)
        with contextlib.suppress(OSError):
            for path in self.folder.iterdir():
                found = _NAME.match(path.name)
                if found is not None and found.group(1) not in wanted:
                    with contextlib.suppress(OSError):
                        path.unlink()
