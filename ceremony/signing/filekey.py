"""The `file:` signing backend: a Notary encrypted key file on this machine."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ceremony.core.errors import MalformedInput, VerificationFailed
from ceremony.core.keys import canonical_key_id
from ceremony.core.metadata import Key, Signature
from ceremony.signing.keyfile import decode_key_file, read_key_file_headers
from ceremony.signing.private import PrivateKey, sign
from ceremony.signing.signer import SIGNER_FOR_URI_SCHEME, PassphraseSource


@dataclass(frozen=True, slots=True)
class FileSigner:
    """A `Signer` over a decrypted key file."""

    private: PrivateKey
    key: Key

    def __post_init__(self) -> None:
        if canonical_key_id(self.key) != self.private.canonical_id:
            raise VerificationFailed(
                f"Key {self.key.key_id[:12]} is not the public half of private key "
                f"{self.private.canonical_id[:12]}."
            )

    def sign(self, message: bytes) -> Signature:
        return sign(self.private, self.key, message)


def file_uri(path: Path) -> str:
    return f"file:{path}"


def file_signer(uri: str, key: Key, secrets: PassphraseSource) -> FileSigner:
    """Open the key file `file:PATH` with the passphrase for its role header."""
    path = Path(uri.removeprefix("file:"))
    data = path.read_bytes()
    alias = read_key_file_headers(data).role or "root"
    private = decode_key_file(data, secrets(alias))
    if private.canonical_id != canonical_key_id(key):
        raise MalformedInput(
            f"The key file {path.name} holds a different key than its name says; restore it "
            "from a backup."
        )
    return FileSigner(private, key)


SIGNER_FOR_URI_SCHEME["file"] = file_signer
