"""A private key split into SLIP-39 shares, and put back together.

The master secret is the key's own secret: the 32-byte P-256 scalar, or the 32-byte
Ed25519 seed, so 33 words a share. Only those two kinds: an RSA key's secret is its
primes, which would make shares of about 1,000 words. The splitting and the checks
(RS1024 checksum, digest, set identifier) are `shamir-mnemonic`'s, the reference
implementation of SLIP-39.

Every error here is one sentence that never quotes a word of a share: share words
are secrets, and an error message can end up in a log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import shamir_mnemonic
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from shamir_mnemonic.share import Share
from shamir_mnemonic.wordlist import WORD_INDEX_MAP

from ceremony.core.errors import InputRejected, UsageError
from ceremony.signing.private import PrivateKey

SECRET_SIZE = 32
WORDS_PER_SHARE = 33  # SLIP-39 for a 256-bit secret: 7 words of metadata and checksum + 26
MAX_SHARES = 16  # SLIP-39's limit on shares in a group
SHARE_ALGORITHMS = ("ecdsa", "ed25519")
ITERATION_EXPONENT = 1  # SLIP-39's default: the passphrase is stretched 20,000 PBKDF2 rounds


@dataclass(frozen=True, slots=True)
class ShareInfo:
    """What a share says about its set, without the secret part."""

    set_id: int  # SLIP-39's 15-bit identifier, the same on every share of a set
    index: int  # 1-based member index
    threshold: int


def master_secret(private: PrivateKey) -> bytes:
    """The 32 bytes a P-256 or Ed25519 key is made from; refuses every other key."""
    native = private.native
    if isinstance(native, ec.EllipticCurvePrivateKey):
        if not isinstance(native.curve, ec.SECP256R1):
            raise InputRejected(
                f"Only P-256 and Ed25519 keys can be split into shares, and key "
                f"{private.canonical_id[:12]} is on curve {native.curve.name}."
            )
        return native.private_numbers().private_value.to_bytes(SECRET_SIZE, "big")
    if isinstance(native, ed25519.Ed25519PrivateKey):
        return native.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
    raise InputRejected(
        f"Key {private.canonical_id[:12]} is an RSA key, which cannot be backed up as shares "
        "(each share would be about 1,000 words): keep its encrypted key file, or a home backup."
    )


def private_from_secret(algorithm: str, secret: bytes) -> PrivateKey | None:
    """The key a master secret makes, or None if it makes none (only after a wrong passphrase)."""
    if len(secret) != SECRET_SIZE:
        return None
    if algorithm == "ed25519":
        return PrivateKey(ed25519.Ed25519PrivateKey.from_private_bytes(secret))
    if algorithm != "ecdsa":
        raise UsageError(f"Shares hold only {' or '.join(SHARE_ALGORITHMS)} keys, not {algorithm}.")
    try:
        return PrivateKey(ec.derive_private_key(int.from_bytes(secret, "big"), ec.SECP256R1()))
    except ValueError:  # 0 or above the group order: no P-256 key
        return None


def check_split(count: int, threshold: int) -> None:
    """Refuse a split SLIP-39 cannot make, or one that is no backup at all."""
    if not 2 <= threshold <= count:
        raise UsageError(
            f"A threshold of {threshold} with {count} shares cannot be made: choose 2 <= "
            "--threshold <= --shares (a threshold of 1 would make every sheet a whole key)."
        )
    if count > MAX_SHARES:
        raise UsageError(f"SLIP-39 makes at most {MAX_SHARES} shares; choose --shares <= 16.")


def check_share_passphrase(passphrase: str) -> None:
    """SLIP-39 passphrases are printable ASCII."""
    if not passphrase or not all(32 <= ord(c) <= 126 for c in passphrase):
        raise UsageError(
            "A share passphrase must be printable ASCII (letters, digits, punctuation, spaces)."
        )


def split(secret: bytes, count: int, threshold: int, passphrase: str = "") -> list[str]:
    """`count` mnemonics, any `threshold` of which give `secret` back (with `passphrase`)."""
    check_split(count, threshold)
    if passphrase:
        check_share_passphrase(passphrase)
    groups = shamir_mnemonic.generate_mnemonics(
        1,
        [(threshold, count)],
        secret,
        passphrase.encode("ascii"),
        iteration_exponent=ITERATION_EXPONENT,
    )
    return list(groups[0])


def is_share_word(word: str) -> bool:
    """Whether `word` is on the SLIP-39 word list."""
    return word.lower() in WORD_INDEX_MAP


def share_words(text: str) -> list[str]:
    """The words of one share as typed or read (any whitespace, any case)."""
    return [w.lower() for w in text.split()]


def check_share(words: Sequence[str], number: int) -> Share:
    """One share, its words and checksum checked; `number` names it in errors (1-based)."""
    for position, word in enumerate(words, 1):
        if not is_share_word(word):
            raise InputRejected(
                f"Word {position} of share {number} is not on the SLIP-39 word list: it is "
                "mistyped; check it against the sheet."
            )
    if len(words) != WORDS_PER_SHARE:
        raise InputRejected(
            f"Share {number} has {len(words)} words, not {WORDS_PER_SHARE}: a word is missing "
            "or extra; check it against the sheet."
        )
    try:
        share = Share.from_mnemonic(" ".join(words))
    except shamir_mnemonic.MnemonicError:  # its text quotes share words: never shown
        raise InputRejected(
            f"Share {number} fails its checksum: a word is mistyped or out of order; check it "
            "against the sheet."
        ) from None
    if share.group_count != 1 or share.group_threshold != 1:
        raise InputRejected(
            f"Share {number} belongs to a multi-group SLIP-39 set, which this tool does not make."
        )
    return share


def combine(shares: Sequence[Sequence[str]], passphrase: str = "") -> bytes:
    """The master secret from typed or read shares, each checked.

    Refuses (exit 1, one sentence each): a mistyped word or checksum, shares of
    different sets, fewer distinct shares than the threshold. With more shares than
    the threshold, every extra share must agree with the others. A wrong passphrase
    is NOT detected here (SLIP-39 cannot): it gives another secret, which the caller
    checks against the key id on the sheet.
    """
    parsed = [check_share(words, number) for number, words in enumerate(shares, 1)]
    if not parsed:
        raise InputRejected("No share was given; give at least the threshold of shares.")
    first = parsed[0]
    for number, share in enumerate(parsed[1:], 2):
        if share.group_parameters() != first.group_parameters():
            raise InputRejected(
                f"Share {number} is from a different backup set than share 1 (they were made "
                "by different `key backup` runs): use shares of one set only."
            )
    distinct = list({s.index: s for s in parsed}.values())
    for share in parsed:
        if share.value != next(d for d in distinct if d.index == share.index).value:
            raise InputRejected(
                f"Two shares claim to be share {share.index + 1} of the set but differ: one is "
                "from another set; use shares of one set only."
            )
    threshold = first.member_threshold
    if len(distinct) < threshold:
        raise InputRejected(
            f"Only {len(distinct)} different share(s) of the set were given, and it needs "
            f"{threshold}: find more keyholders' sheets."
        )
    base = distinct[:threshold]
    try:
        ems = _recover(base)
        for extra in distinct[threshold:]:
            if _recover([*base[: threshold - 1], extra]).ciphertext != ems.ciphertext:
                raise InputRejected(
                    f"Share {extra.index + 1} of the set does not agree with the others: it is "
                    "from another set; use shares of one set only."
                )
    except shamir_mnemonic.MnemonicError:
        raise InputRejected(
            "The shares do not fit together (their digest is wrong): they come from different "
            "backup sets; use shares of one set only."
        ) from None
    if passphrase:
        check_share_passphrase(passphrase)
    secret: bytes = ems.decrypt(passphrase.encode("ascii"))
    return secret


def _recover(shares: Sequence[Share]) -> shamir_mnemonic.EncryptedMasterSecret:
    return shamir_mnemonic.recover_ems(
        shamir_mnemonic.decode_mnemonics(share.mnemonic() for share in shares)
    )


def set_of(words: Sequence[str], number: int) -> ShareInfo:
    """The set a share belongs to (the number of shares made is not in a share; the sheet
    says it), its words and checksum checked."""
    share = check_share(words, number)
    return ShareInfo(share.identifier, share.index + 1, share.member_threshold)
