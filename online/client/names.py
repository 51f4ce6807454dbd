"""The server's metadata file names: `role.json`, `N.role.json`, `role.<sha256hex>.json`."""

from __future__ import annotations

import re

from ceremony.core.errors import (
    UsageError,
)
from ceremony.core.metadata import (
    BASE_ROLES,
    is_delegation_name,
)

_HEX = re.compile(r"^[0-9a-f]+$")
DIGESTS = {64: "sha256", 96: "sha384", 128: "sha512"}


def check_role(role: str) -> str:
    if role not in BASE_ROLES and not is_delegation_name(role):
        raise UsageError(f"{role!r} is not a Notary role name.")
    return role


def metadata_name(role: str, *, version: int | None = None, sha256: str | None = None) -> str:
    """The server's file name: `role.json`, `N.role.json` or `role.<sha256hex>.json`."""
    check_role(role)
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


def split_name(name: str) -> tuple[str, str | None]:
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
    elif len(parts) == 2 and len(parts[1]) in DIGESTS and _HEX.match(parts[1]):
        role, digest = parts
    elif len(parts) == 1:
        role = parts[0]
    else:
        raise bad
    if role not in BASE_ROLES and not is_delegation_name(role):
        raise bad
    return role, digest
