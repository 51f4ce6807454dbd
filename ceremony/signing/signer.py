"""One signing interface, backends chosen by the URI a key record holds.

Modelled on securesystemslib's `Signer.from_priv_key_uri` and `SIGNER_FOR_URI_SCHEME`:
`file:PATH` is a Notary encrypted key file (`ceremony.signing.filekey`), `pkcs11:…`
(RFC 7512) a key on a token (`ceremony.signing.pkcs11`). A backend module registers
itself when it is first needed. A backend only signs bytes the Notary way; `KeySigner`
turns that into metadata signatures, each verified right after it is made. Secrets come
from the `PassphraseSource` the caller injects; nothing here prompts.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ceremony.core.errors import MalformedInput, UsageError, VerificationFailed
from ceremony.core.keys import canonical_key_id, verify_signature
from ceremony.core.metadata import Key, Signature

PassphraseSource = Callable[[str], str]
"""Given a key's role alias (root, targets, delegation, …), return its passphrase or PIN."""

RawSign = Callable[[bytes], tuple[str, bytes]]
"""Sign a message the Notary way: (method, signature bytes), e.g. ("ecdsa", r‖s)."""


class Backend(Protocol):
    """Where a private key lives: it signs bytes and tells its public half."""

    def public_key(self) -> Key:
        """The bare public key (its TUF id is the key's canonical id)."""
        ...

    def sign_raw(self, message: bytes) -> tuple[str, bytes]:
        """(method, signature) in Notary's encoding; checked by the caller."""
        ...


@runtime_checkable
class Signer(Protocol):
    """Something that signs for one metadata key."""

    @property
    def key(self) -> Key:
        """The metadata key the signatures are for (its id goes into `keyid`)."""
        ...

    def sign(self, message: bytes) -> Signature:
        """A verified Notary signature over `message`."""
        ...


def sign_metadata(backend: Backend, key: Key, message: bytes) -> Signature:
    """Sign `message` for metadata key `key`, then verify the result before returning it.

    `keyid` is `key.key_id` (for a root key, its certificate's id). The immediate
    check catches a wrong key or a faulty signer while the ceremony is still in the
    room.
    """
    public = backend.public_key()
    try:
        matches = canonical_key_id(key) == public.key_id
    except MalformedInput:
        matches = False
    if not matches:
        raise VerificationFailed(
            f"Key {key.key_id[:12]} is not the public half of private key "
            f"{public.key_id[:12]}; nothing was signed."
        )
    method, raw = backend.sign_raw(message)
    signature = Signature(key.key_id, method, raw)
    if not verify_signature(key, signature, message):
        raise VerificationFailed(
            f"The signature just made with key {key.key_id[:12]} does not verify; "
            "do not use this key until the cause is found."
        )
    return signature


@dataclass(frozen=True, slots=True)
class KeySigner:
    """A `Signer`: one backend, one metadata key (a certificate or the bare key)."""

    backend: Backend
    key: Key

    def __post_init__(self) -> None:
        if canonical_key_id(self.key) != self.backend.public_key().key_id:
            raise VerificationFailed(
                f"Key {self.key.key_id[:12]} is not the public half of private key "
                f"{self.backend.public_key().key_id[:12]}."
            )

    def sign(self, message: bytes) -> Signature:
        return sign_metadata(self.backend, self.key, message)


BackendFactory = Callable[[str, PassphraseSource], Backend]
"""(URI, secrets) -> the backend, or an error with one sentence."""

SIGNER_FOR_URI_SCHEME: dict[str, BackendFactory] = {}
_BACKENDS = {"file": "ceremony.signing.filekey", "pkcs11": "ceremony.signing.pkcs11"}


def open_backend(uri: str, secrets: PassphraseSource) -> Backend:
    """The backend a key record's URI names."""
    scheme = uri.partition(":")[0]
    if scheme not in SIGNER_FOR_URI_SCHEME and scheme in _BACKENDS:
        importlib.import_module(_BACKENDS[scheme])
    factory = SIGNER_FOR_URI_SCHEME.get(scheme)
    if factory is None:
        raise UsageError(f"No signing backend handles {scheme!r} keys ({uri}).")
    return factory(uri, secrets)


def signer_from_uri(uri: str, key: Key, secrets: PassphraseSource) -> KeySigner:
    """A signer for metadata key `key` through the backend `uri` names."""
    return KeySigner(open_backend(uri, secrets), key)


def raw_signer_from_uri(uri: str, public: Key, secrets: PassphraseSource) -> RawSign:
    """The raw signing function of the key `uri` names, after checking it is `public`'s."""
    backend = open_backend(uri, secrets)
    if backend.public_key().key_id != public.key_id:
        raise VerificationFailed(
            f"The key at {uri} is not key {public.key_id[:12]}; nothing was signed."
        )
    return backend.sign_raw
