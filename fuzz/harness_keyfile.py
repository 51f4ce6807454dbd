"""Notary key files: PEM with `role:`/`gun:` headers, encrypted PKCS#8 (PBES2), plain and legacy.

An input that is not PEM is taken as PKCS#8 DER and wrapped twice, as a plain
`PRIVATE KEY` and as an `ENCRYPTED PRIVATE KEY` encrypted with the harness's
passphrase, so mutations reach the key decoders behind the decryption too.

Properties of a key read: the file's headers read the same without a passphrase,
and the key written back in Notary's format (plain and encrypted) reads back to
the same key.
"""

from __future__ import annotations

from ceremony.core.keys import pem_encode
from ceremony.signing.keyfile import (
    ENCRYPTED_TYPE,
    PLAIN_TYPE,
    _encrypt_pbes2,
    decode_key_file,
    encode_key_file,
    read_key_file_headers,
)
from fuzz.driver import PASSPHRASE, REFUSED, Target, expect, mutate_bytes, mutate_pem, refused

_HEADERS = {"role": "targets", "gun": "example.com/fuzz/app"}


def _one(data: bytes) -> None:
    headers = refused(lambda: read_key_file_headers(data))
    for passphrase in (PASSPHRASE, None):  # one PBKDF2 per input: a file may ask for 10^7 rounds
        key = refused(lambda p=passphrase: decode_key_file(data, p))
        if key is REFUSED:
            continue
        expect(headers is not REFUSED, "a key file whose headers cannot be read opens")
        for secret in (None, PASSPHRASE):
            written = encode_key_file(key, role="targets", gun="example.com/x", passphrase=secret)
            again = refused(lambda w=written, s=secret: decode_key_file(w, s))
            expect(again is not REFUSED, "a key written in Notary's format does not read back")
            expect(again.canonical_id == key.canonical_id, "a key reads back as another key")
        if headers.encrypted:
            break  # no need to try without a passphrase


def check(data: bytes) -> None:
    if b"-----BEGIN" in data:
        _one(data)
        return
    _one(pem_encode(PLAIN_TYPE, data, _HEADERS))
    _one(pem_encode(ENCRYPTED_TYPE, _encrypt_pbes2(data, PASSPHRASE), _HEADERS))


def mutator(data: bytes, max_size: int, seed: int) -> bytes:
    """Mutate the DER inside the PEM armour half of the time (libFuzzer's bytes otherwise)."""
    if seed % 2 and b"-----BEGIN" in data:
        return mutate_pem(data)[:max_size]
    return mutate_bytes(data, max(0, max_size - len(data)))[:max_size]


TARGET = Target(
    "keyfile",
    check,
    "Notary key files (ceremony.signing.keyfile.read_key_file_headers / decode_key_file)",
    mutator,
    max_len=8192,
)
