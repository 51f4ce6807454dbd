"""The public keys document the offline half hands to the online half.

It tells `ceremony-online init`/`rotate` which keys the offline machine holds:
for root the self-signed certificate key (what goes into root.json), for other
roles the bare public key. It carries no secret, so it may travel by USB or QR.

Parsing is strict (unknown fields, wrong types and private keys are refused) and
every canonical id is recomputed, so a hand-edited document cannot point the
online half at a key the offline half does not hold. Pure: bytes in, bytes out.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ceremony.core.canonical import parse_json
from ceremony.core.errors import MalformedInput
from ceremony.core.gun import check_gun
from ceremony.core.keys import canonical_key_id, check_root_certificate
from ceremony.core.metadata import Key

MEDIA_TYPE = "application/vnd.notary-ceremony.public-keys.v1+json"
MAX_DOCUMENT_SIZE = 1 << 20
_ROLE = re.compile(r"^[A-Za-z0-9][-A-Za-z0-9_./]{0,254}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_WHAT = "public keys document"


def is_role_alias(role: str) -> bool:
    """A role name as key files and this document carry it (root, targets/releases, docker's signer names)."""
    return bool(_ROLE.match(role))


@dataclass(frozen=True, slots=True)
class PublicKeyEntry:
    """One key: the role it is meant for, its canonical id, and the metadata key."""

    role: str
    canonical_id: str
    key: Key

    def __post_init__(self) -> None:
        if not is_role_alias(self.role):
            raise MalformedInput(f"The {_WHAT} has a key entry with an invalid role.")
        if not _HEX64.match(self.canonical_id):
            raise MalformedInput(f"The {_WHAT} has a key entry with a malformed canonical id.")

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "canonical_id": self.canonical_id, "key": self.key.to_dict()}

    @classmethod
    def from_dict(cls, data: Any, gun: str, where: str) -> PublicKeyEntry:
        if not isinstance(data, dict):
            raise MalformedInput(f"The {_WHAT} has a key entry that is not an object.")
        if set(data) != {"role", "canonical_id", "key"}:
            raise MalformedInput(f"The {_WHAT} has a key entry with fields {sorted(data)}.")
        role, canonical_id = data["role"], data["canonical_id"]
        if not isinstance(role, str) or not isinstance(canonical_id, str):
            raise MalformedInput(f"The {_WHAT} has a key entry whose role or id is not a string.")
        entry = cls(role, canonical_id, Key.from_dict(data["key"], where))
        key = entry.key
        if canonical_key_id(key) != canonical_id:
            raise MalformedInput(
                f"The {_WHAT} lists key {canonical_id[:12]} with a key whose id differs."
            )
        if role == "root":
            problem = check_root_certificate(key, gun, None)
            if problem:
                raise MalformedInput(
                    f"The {_WHAT}'s root key {canonical_id[:12]} is unusable: {problem}."
                )
        return entry


@dataclass(frozen=True, slots=True)
class PublicKeysDocument:
    """Public keys for one GUN, in the order they were exported."""

    gun: str
    keys: tuple[PublicKeyEntry, ...]

    def __post_init__(self) -> None:
        ids = [e.canonical_id for e in self.keys]
        if len(set(ids)) != len(ids):
            raise MalformedInput(f"The {_WHAT} lists a key twice.")

    def for_role(self, role: str) -> tuple[PublicKeyEntry, ...]:
        return tuple(e for e in self.keys if e.role == role)

    def to_dict(self) -> dict[str, Any]:
        return {
            "media_type": MEDIA_TYPE,
            "gun": self.gun,
            "keys": [e.to_dict() for e in self.keys],
        }

    def to_bytes(self) -> bytes:
        """Indented JSON, so an operator can read what leaves the machine."""
        return (json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n").encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> PublicKeysDocument:
        """Parse strictly; MalformedInput with one sentence on any problem."""
        if len(data) > MAX_DOCUMENT_SIZE:
            raise MalformedInput(f"The {_WHAT} is too large to be one.")
        doc = parse_json(data, what=_WHAT)
        if not isinstance(doc, dict) or set(doc) != {"media_type", "gun", "keys"}:
            raise MalformedInput(
                f"The {_WHAT} does not have exactly the fields media_type, gun and keys."
            )
        if doc["media_type"] != MEDIA_TYPE:
            raise MalformedInput(f"The file is not a {_WHAT}: its media type is not {MEDIA_TYPE}.")
        gun, entries = doc["gun"], doc["keys"]
        check_gun(gun, f"the {_WHAT}")
        if not isinstance(entries, list):
            raise MalformedInput(f"The {_WHAT}'s keys must be a list.")
        return cls(
            gun,
            tuple(
                PublicKeyEntry.from_dict(e, gun, f"{_WHAT} key {i}") for i, e in enumerate(entries)
            ),
        )
