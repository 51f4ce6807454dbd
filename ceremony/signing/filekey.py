"""The `file:` signing backend: a Notary encrypted key file on this machine."""

from __future__ import annotations

from pathlib import Path

from ceremony.edge.fsutil import read_input
from ceremony.signing.keyfile import decode_key_file, read_key_file_headers
from ceremony.signing.private import PrivateKey
from ceremony.signing.signer import SIGNER_FOR_URI_SCHEME, PassphraseSource

FILE_SCHEME = "file:"


def open_file_key(uri: str, secrets: PassphraseSource) -> PrivateKey:
    """Decrypt the key file `file:PATH` with the passphrase for its role header."""
    path = Path(uri.removeprefix(FILE_SCHEME))
    data = read_input(path, "key file", listed=True)
    alias = read_key_file_headers(data).role or "root"
    return decode_key_file(data, secrets(alias))


SIGNER_FOR_URI_SCHEME["file"] = open_file_key
