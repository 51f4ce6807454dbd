"""Retiring keys: which keys the roots this machine trusts no longer list, and removing them.

After a rotation the old root or targets key is still on this machine: it signed
the rotation, and the machine keeps it until the new root is trusted here (it is
trusted once a request built on it is reviewed and signed). A key is *rotated
out* when the newest root this machine trusts lists it in no role, for every
repository the key serves. `ceremony key list` shows it so; `ceremony key
retire` then removes its private half and marks the record retired (the record
stays: it is the history of which keys were held). A token key's objects are
destroyed on the token.

A key this machine cannot place (no trust state for a repository it serves, or a
delegation key, which only targets metadata lists) is never shown as rotated out
and is retired only with `--force`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ceremony.core.errors import CeremonyError, InputRejected, MalformedInput, UsageError
from ceremony.core.keys import canonical_key_id
from ceremony.core.metadata import Envelope, Root
from ceremony.offline.review import MIN_ACK_PREFIX, normalise_fingerprint
from ceremony.offline.trust import TrustStore
from ceremony.signing.keystore import KeyRecord, KeyStore
from ceremony.signing.signer import PassphraseSource

if TYPE_CHECKING:
    from ceremony.signing.pkcs11 import KeyObjects

ROOT_LISTED_ROLES = ("root", "targets")  # the offline roles whose keys root lists


@dataclass(frozen=True, slots=True)
class Standing:
    """Where a key stands in the newest roots this machine trusts, per GUN it serves."""

    listed: tuple[tuple[str, int], ...] = ()  # (GUN, root version) whose root lists it
    rotated_out: tuple[tuple[str, int], ...] = ()  # (GUN, root version) whose root no longer does
    unknown: tuple[str, ...] = ()  # GUNs this machine cannot judge (no trust state, damaged)

    @property
    def is_rotated_out(self) -> bool:
        """No trusted root of any GUN it serves lists it, and every such GUN was judged."""
        return bool(self.rotated_out) and not self.listed and not self.unknown


@dataclass
class TrustedRoots:
    """The newest root this machine trusts per GUN, each loaded once."""

    trust: TrustStore
    _cache: dict[str, Envelope[Root] | None] = field(default_factory=dict)

    def root(self, gun: str) -> Envelope[Root] | None:
        if gun not in self._cache:
            try:
                state = self.trust.load(gun)
            except CeremonyError:  # a damaged state is reported by the commands that use it
                state = None
            self._cache[gun] = state.root if state is not None else None
        return self._cache[gun]

    def standing(self, record: KeyRecord) -> Standing:
        if record.role not in ROOT_LISTED_ROLES:
            return Standing(unknown=tuple(record.guns))
        listed: list[tuple[str, int]] = []
        out: list[tuple[str, int]] = []
        unknown: list[str] = []
        for gun in sorted(record.guns):
            root = self.root(gun)
            if root is None:
                unknown.append(gun)
                continue
            entry = (gun, root.body.version)
            (listed if record.canonical_id in listed_ids(root.body) else out).append(entry)
        return Standing(tuple(listed), tuple(out), tuple(unknown))


def listed_ids(root: Root) -> set[str]:
    """Canonical ids of every key a role of `root` lists (old certificates kept in `keys`
    but listed by no role do not count)."""
    ids: set[str] = set()
    for spec in root.roles.values():
        for kid in spec.keyids:
            key = root.keys.get(kid)
            if key is None:
                continue
            try:
                ids.add(canonical_key_id(key))
            except MalformedInput:
                continue
    return ids


def confirms(record: KeyRecord, text: str) -> bool:
    """Whether `text` names this key: at least 16 hex digits of its id or its fingerprint."""
    given = normalise_fingerprint(text).replace(" ", "")
    if len(given) < MIN_ACK_PREFIX or not all(c in "0123456789abcdef" for c in given):
        return False
    return record.canonical_id.startswith(given) or record.fingerprint.startswith(given)


def retirement_stamp(now: datetime) -> str:
    """When a key was retired, as the record keeps it (UTC, to the second)."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Retired:
    record: KeyRecord
    removed: Path | None  # the key file removed (None: there was none left)
    already: bool
    token: str | None = None  # a token key: the token it was removed from
    token_objects: int = 0  # how many objects (private, public, certificates) were removed


def retire(
    store: KeyStore,
    trust: TrustStore,
    record: KeyRecord,
    *,
    confirmation: str,
    force: bool,
    now: datetime,
    pin_for: PassphraseSource | None = None,
) -> Retired:
    """Remove `record`'s private half and mark it retired, once the operator named it.

    Refuses (exit 1) a confirmation that does not name this key, and, without
    `force`, a key a trusted root still lists or one this machine cannot place.
    The record is marked first, so an interrupted retirement never leaves a live
    record without its key; running it again finishes the removal. A token key
    (PIN from `pin_for`) is found on its token before the record is marked, so a
    wrong PIN or a missing token changes nothing; then its private key, public key
    and certificate objects are destroyed.
    """
    short = record.canonical_id[:12]
    if not confirms(record, confirmation):
        raise InputRejected(
            f"{confirmation!r} does not name key {short}: give at least {MIN_ACK_PREFIX} hex "
            "digits of its id or fingerprint; nothing was removed."
        )
    with trust.locked():
        if record.retired is None and not force:
            _check_rotated_out(record, TrustedRoots(trust).standing(record))
        objects = _token_objects(record, pin_for) if record.on_token else None
        already = record.retired is not None
        if not already:
            record = store.save(replace(record, retired=retirement_stamp(now)))
        if objects is not None:
            return Retired(record, None, already, objects.token, objects.destroy())
        path = store.file_of(record)
        removed = None
        if path is not None and path.exists():
            path.unlink()
            removed = path
    return Retired(record, removed, already)


def _token_objects(record: KeyRecord, pin_for: PassphraseSource | None) -> KeyObjects:
    """The key's objects on its token (logging in: a wrong PIN or a missing token stops here)."""
    from ceremony.signing.pkcs11 import find_key_objects

    if pin_for is None:
        raise UsageError(
            f"Key {record.canonical_id[:12]} lives on a token: its PIN is needed to remove it."
        )
    return find_key_objects(record.uri, record.public, pin_for)


def _check_rotated_out(record: KeyRecord, standing: Standing) -> None:
    short = record.canonical_id[:12]
    if standing.listed:
        where = ", ".join(f"{gun} (root v{v})" for gun, v in standing.listed)
        raise InputRejected(
            f"Key {short} is still listed in the root this machine trusts for {where}: rotate it "
            "out first, or give --force to retire it anyway; nothing was removed."
        )
    if record.role not in ROOT_LISTED_ROLES:
        raise InputRejected(
            f"Key {short} is a {record.role} key, which only targets metadata lists, so this "
            "machine cannot tell whether it is still in use: give --force once you are sure; "
            "nothing was removed."
        )
    if standing.unknown or not standing.rotated_out:
        gun = ", ".join(standing.unknown) or "any repository"
        raise InputRejected(
            f"This machine keeps no trusted root for {gun} that key {short} serves, so it cannot "
            "tell whether the key is still in use: give --force once you are sure; nothing was "
            "removed."
        )


def retired_lines(record: KeyRecord, roots: TrustedRoots) -> list[str]:
    """What `key list` adds for a key the trusted roots no longer list (nothing otherwise)."""
    standing = roots.standing(record)
    if not standing.is_rotated_out:
        return []
    where = ", ".join(f"{gun} (root v{v})" for gun, v in standing.rotated_out)
    return [
        f"  retired     no longer listed by the root trusted for {where}",
        f"              remove it: ceremony key retire {record.canonical_id[:16]}",
    ]
