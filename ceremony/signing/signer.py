"""One signing interface, backends chosen by the URI a key record holds.

Modelled on securesystemslib's `Signer.from_priv_key_uri` and
`SIGNER_FOR_URI_SCHEME`: `file:/path/<id>.key` is a Notary encrypted key file
(`ceremony.signing.filekey`); `pkcs11:` (RFC 7512) is a token. A backend
module registers itself when it is first needed. Secrets come from the
`PassphraseSource` the caller injects; nothing here prompts.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from ceremony.core.errors import UsageError
from ceremony.core.metadata import Key, Signature

PassphraseSource = Callable[[str], str]
"""Given a key's role alias (root, targets, delegation, …), return its passphrase or PIN."""


@runtime_checkable
class Signer(Protocol):
    """Something that signs for one metadata key (a key file today, a token later)."""

    @property
    def key(self) -> Key:
        """The metadata key the signatures are for (its id goes into `keyid`)."""
        ...

    def sign(self, message: bytes) -> Signature:
        """A verified Notary signature over `message`."""
        ...


SignerFactory = Callable[[str, Key, PassphraseSource], Signer]
"""(URI, the metadata key to sign for, secrets) -> a signer, or an error with one sentence."""

SIGNER_FOR_URI_SCHEME: dict[str, SignerFactory] = {}
_BACKENDS = {"file": "ceremony.signing.filekey"}  # scheme -> the module that registers it


def signer_from_uri(uri: str, key: Key, secrets: PassphraseSource) -> Signer:
    """The signer a key record's URI names, for metadata key `key`."""
    scheme = uri.partition(":")[0]
    if scheme not in SIGNER_FOR_URI_SCHEME and scheme in _BACKENDS:
        importlib.import_module(_BACKENDS[scheme])
    factory = SIGNER_FOR_URI_SCHEME.get(scheme)
    if factory is None:
        raise UsageError(f"No signing backend handles {scheme!r} keys ({uri}).")
    return factory(uri, key, secrets)
