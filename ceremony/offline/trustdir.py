"""Keys brought over from a Docker or Notary trust directory (`~/.docker/trust`, `~/.notary`).

Both layouts are read (notary-formats.md §4.1):

* today's flat `private/<id>.key`, whose `role:` and `gun:` PEM headers say what it is;
* the older `private/root_keys/<id>.key` and `private/tuf_keys/<gun>/<id>.key` (Docker's
  "Sign an image" guide), where the folder says root or the GUN, and the older
  `<id>_<role>.key` names, where the name says the role. Notary's own migration
  (`migrateTo0Dot4`) reads them the same way.

A root key keeps its identity: its certificates come from the trust directory's
own metadata cache (`tuf/<gun>/metadata/root.json`, what the notary client
trusted) or from this machine's trust state, matched by canonical key id, and no
new certificate is made. A certificate is taken only from a root its key signed:
an edited cache cannot pin another certificate on the key. One root key commonly serves many GUNs (§3.4): it keeps
every certificate found. Snapshot and timestamp keys are left where they are: the
ceremony publishes with the server holding them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ceremony.core.errors import CeremonyError, InputRejected, MalformedInput, UsageError
from ceremony.core.gun import check_gun
from ceremony.core.keys import canonical_key_id, check_root_certificate, verify_signature
from ceremony.core.metadata import Envelope, Key, Root, parse_envelope
from ceremony.edge.fsutil import read_input
from ceremony.offline.trust import TrustStore
from ceremony.signing.keyfile import decode_key_file, read_key_file_headers
from ceremony.signing.keystore import KeyRecord, KeyStore
from ceremony.signing.signer import PassphraseSource

ROOT_KEYS_DIR = "root_keys"
TUF_KEYS_DIR = "tuf_keys"
SERVER_ROLES = ("snapshot", "timestamp")
_ID_ROLE = re.compile(r"^([0-9a-f]{64})_([a-z]+)$")
_META_ROOT = "metadata/root.json"

TrustDirPassphrase = Callable[[str, Path, bool], str]
"""(role alias, key file, whether the file is unencrypted and the passphrase is new) -> secret."""


@dataclass(frozen=True, slots=True)
class TrustDirKey:
    """A key file found in a trust directory, and what its place says about it."""

    path: Path
    data: bytes
    role: str | None  # from its folder or name (None: from its headers)
    gun: str | None  # from its folder (None: from its headers)

    def label(self, trust_dir: Path) -> str:
        return self.path.relative_to(trust_dir).as_posix()


def find_key_files(trust_dir: Path) -> list[TrustDirKey]:
    """Every `.key` file under `trust_dir/private`, in both layouts, with its role and GUN."""
    private = trust_dir / "private"
    if not private.is_dir():
        raise UsageError(
            f"{trust_dir} is not a Notary or Docker trust directory (it has no private/ "
            "folder): give the folder that holds private/ and tuf/, e.g. ~/.docker/trust."
        )
    found: list[TrustDirKey] = []
    for path in sorted(private.rglob("*.key")):
        if not path.is_file():
            continue
        parts = path.relative_to(private).parts
        stem = path.name[: -len(".key")]
        named = _ID_ROLE.match(stem)
        role = named.group(2) if named else None
        gun: str | None = None
        if parts[0] == ROOT_KEYS_DIR and len(parts) == 2:
            role = role or "root"
        elif parts[0] == TUF_KEYS_DIR and len(parts) >= 3:
            gun = check_gun("/".join(parts[1:-1]), f"the trust directory's {path.parent}")
        elif len(parts) != 1:
            continue  # not a place Notary keeps keys
        data = read_input(path, "key file")
        found.append(TrustDirKey(path, data, role, gun))
    return found


def _root_certificates(root: Envelope[Root], gun: str) -> dict[str, tuple[int, Key]]:
    """canonical id -> (rank, certificate) for `gun`'s root: each certificate for `gun` whose
    key signed this root (so the key holder made or accepted it); rank 0 if the root role
    lists it, 1 for a certificate kept in `keys` after a rotation."""
    body = root.body
    listed = set(body.roles["root"].keyids) if "root" in body.roles else set()
    signers = {
        sig.keyid
        for sig in root.signatures
        if sig.keyid in body.keys
        and verify_signature(body.keys[sig.keyid], sig, root.signed_map_bytes)
    }
    found: dict[str, tuple[int, Key]] = {}
    for kid in signers:
        key = body.keys[kid]
        if not key.is_x509 or check_root_certificate(key, gun, None) is not None:
            continue
        try:
            cid = canonical_key_id(key)
        except MalformedInput:
            continue
        rank = 0 if kid in listed else 1
        if cid not in found or rank < found[cid][0]:
            found[cid] = (rank, key)
    return found


@dataclass(frozen=True, slots=True)
class CertificateSources:
    """Root certificates per canonical key id and GUN, from a trust dir's cache and the trust
    state (the state, verified here, first; then what the root role lists; then older ones)."""

    by_key: Mapping[str, Mapping[str, Key]]
    notes: tuple[str, ...]

    @classmethod
    def gather(cls, trust_dir: Path, trust: TrustStore) -> CertificateSources:
        ranked: dict[str, dict[str, tuple[int, Key]]] = {}
        notes: list[str] = []

        def add(gun: str, root: Envelope[Root], offset: int) -> None:
            for cid, (rank, key) in _root_certificates(root, gun).items():
                slot = ranked.setdefault(cid, {})
                if gun not in slot or rank + offset < slot[gun][0]:
                    slot[gun] = (rank + offset, key)

        for gun in trust.guns():
            state = trust.load(gun)
            if state is not None:
                add(gun, state.root, 0)
        tuf = trust_dir / "tuf"
        for path in sorted(tuf.rglob(_META_ROOT)) if tuf.is_dir() else []:
            folder = path.parent.parent.relative_to(tuf).as_posix()
            try:
                gun = check_gun(folder, "the trust directory")
                root = parse_envelope(read_input(path, "cached root"), Root, what=str(path))
            except CeremonyError as exc:
                notes.append(f"skipped {path.relative_to(trust_dir)}: {exc.message}")
                continue
            add(gun, root, 10)
        by_key = {cid: {g: k for g, (_, k) in guns.items()} for cid, guns in ranked.items()}
        return cls(by_key, tuple(notes))


@dataclass(frozen=True, slots=True)
class ImportedKey:
    found: TrustDirKey
    record: KeyRecord | None  # None: left in the trust directory (see `skipped`)
    new: bool
    skipped: str | None = None


def _role_and_gun(found: TrustDirKey, label: str) -> tuple[str, str | None]:
    headers = read_key_file_headers(found.data)
    role = found.role or headers.role
    if found.role and headers.role and headers.role != found.role:
        raise InputRejected(
            f"The key file {label} says it is a {headers.role} key but its place in the trust "
            f"directory says {found.role}: check where it came from before importing it."
        )
    if found.gun and headers.gun and headers.gun != found.gun:
        raise InputRejected(
            f"The key file {label} names repository {headers.gun} but lies in the folder of "
            f"{found.gun}: check where it came from before importing it."
        )
    if not role:
        raise InputRejected(
            f"The key file {label} says neither by its headers nor by its name which role it is "
            "for: import it alone with `ceremony key import FILE --role ROLE`."
        )
    return role, found.gun or headers.gun


def import_trust_dir(
    store: KeyStore,
    trust: TrustStore,
    trust_dir: Path,
    passphrase_for: TrustDirPassphrase,
) -> tuple[list[ImportedKey], tuple[str, ...]]:
    """Import every root, targets and delegation key of `trust_dir`; (results, notes).

    Every key file is opened first (its passphrase asked once), so a wrong
    passphrase or a misplaced file imports nothing. Then each is stored
    re-encrypted in Notary's format, a root key with the certificates found for it.
    """
    files = find_key_files(trust_dir)
    if not files:
        raise InputRejected(f"{trust_dir} holds no key files under private/; nothing was imported.")
    sources = CertificateSources.gather(trust_dir, trust)
    opened: list[tuple[TrustDirKey, str, str | None, str, PassphraseSource]] = []
    skipped: list[ImportedKey] = []
    for found in files:
        role, gun = _role_and_gun(found, found.label(trust_dir))
        if role in SERVER_ROLES:
            skipped.append(
                ImportedKey(
                    found,
                    None,
                    False,
                    f"a {role} key stays with the trust server in a ceremony; hand it to the "
                    f"server with `notary key rotate {gun or 'GUN'} {role} -r`",
                )
            )
            continue
        once = _asking_once(passphrase_for, found)
        canonical_id = decode_key_file(found.data, once(role)).canonical_id
        opened.append((found, role, gun, canonical_id, once))
    results: list[ImportedKey] = []
    for found, role, gun, canonical_id, once in opened:
        known = store.get(canonical_id) is not None
        certificates = dict(sources.by_key.get(canonical_id, {})) if role == "root" else {}
        record = store.import_key_file(
            found.data, once, role=role, gun=gun, certificates=certificates, now=None
        )
        results.append(ImportedKey(found, record, not known))
    return results + skipped, sources.notes


def _asking_once(passphrase_for: TrustDirPassphrase, found: TrustDirKey) -> PassphraseSource:
    """The passphrase source for one file: each alias asked once (decrypted, then stored)."""
    asked: dict[str, str] = {}
    new = not read_key_file_headers(found.data).encrypted

    def source(alias: str) -> str:
        if alias not in asked:
            asked[alias] = passphrase_for(alias, found.path, new)
        return asked[alias]

    return source
