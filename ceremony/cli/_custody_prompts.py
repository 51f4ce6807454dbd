"""Prompts for backups: share words, share passphrases, the home backup passphrase.

Share words are typed hidden (like a passphrase: the terminal keeps no copy), one or
more words per entry; each word is checked against the SLIP-39 list as it is entered,
and each share's checksum as soon as it is complete. Without a terminal every prompt
fails at once (exit 4).
"""

from __future__ import annotations

import getpass
import os

import typer

from ceremony.cli._prompts import MIN_PASSPHRASE, interactive
from ceremony.core.errors import Aborted, InputRejected
from ceremony.signing.shares import (
    WORDS_PER_SHARE,
    ShareInfo,
    check_share_passphrase,
    is_share_word,
    set_of,
)

SHARE_PASSPHRASE_ENV = "CEREMONY_SHARE_PASSPHRASE"  # noqa: S105 (a variable name)
BACKUP_PASSPHRASE_ENV = "CEREMONY_BACKUP_PASSPHRASE"  # noqa: S105 (a variable name)
_TRIES = 3


def _say(text: str) -> None:
    typer.echo(text, err=True)


def _need_terminal(what: str, env: str | None = None) -> None:
    if not interactive():
        hint = f"set {env} or run at a terminal" if env else "run at a terminal"
        raise Aborted(f"{what} is needed but there is no terminal: {hint}.")


def new_share_passphrase() -> str:
    """The passphrase the new shares will need: env, else typed twice."""
    value = os.environ.get(SHARE_PASSPHRASE_ENV)
    if value:
        check_share_passphrase(value)
        return value
    _need_terminal("A share passphrase", SHARE_PASSPHRASE_ENV)
    for _ in range(_TRIES):
        first = getpass.getpass("New share passphrase (printable ASCII): ")
        if len(first) < MIN_PASSPHRASE or not all(32 <= ord(c) <= 126 for c in first):
            _say(f"Use at least {MIN_PASSPHRASE} printable ASCII characters.")
            continue
        if getpass.getpass("Repeat it: ") == first:
            return first
        _say("The two passphrases differ.")
    raise Aborted("No share passphrase was agreed; nothing was written.")


def share_passphrase(*, required: bool) -> str:
    """The passphrase the shares need: env, else typed once ("" when they have none)."""
    value = os.environ.get(SHARE_PASSPHRASE_ENV)
    if value:
        return value
    if not interactive():
        if required:
            raise Aborted(
                f"The shares need their share passphrase: set {SHARE_PASSPHRASE_ENV} or run at "
                "a terminal."
            )
        return ""
    prompt = "Share passphrase" + ("" if required else " (press Enter if the shares have none)")
    return getpass.getpass(f"{prompt}: ")


def backup_passphrase(*, new: bool) -> str:
    """The home backup's passphrase: env, else typed (twice for a new backup)."""
    value = os.environ.get(BACKUP_PASSPHRASE_ENV)
    if value:
        return value
    _need_terminal("The home backup passphrase", BACKUP_PASSPHRASE_ENV)
    if not new:
        return getpass.getpass("Home backup passphrase: ")
    for _ in range(_TRIES):
        first = getpass.getpass("New home backup passphrase: ")
        if len(first) < MIN_PASSPHRASE:
            _say(f"Use at least {MIN_PASSPHRASE} characters.")
            continue
        if getpass.getpass("Repeat it: ") == first:
            return first
        _say("The two passphrases differ.")
    raise Aborted("No home backup passphrase was agreed; nothing was written.")


def expected_key() -> str:
    """The key id (or fingerprint) printed on the sheet, typed by the operator."""
    _need_terminal("The key id printed on the share sheet (--expect-key)")
    return str(typer.prompt("Key id or fingerprint printed on the share sheet")).strip()


def _one_share(number: int) -> list[str]:
    """Words of one share, each checked against the list as it is entered."""
    words: list[str] = []
    while len(words) < WORDS_PER_SHARE:
        entry = getpass.getpass(
            f"Share {number}, word {len(words) + 1} of {WORDS_PER_SHARE} (hidden; several "
            "words at once are fine): "
        )
        typed = entry.split()
        if not typed:
            if not words:
                raise Aborted("No share was typed; nothing was restored.")
            continue
        for word in typed:
            if len(words) == WORDS_PER_SHARE:
                _say(f"Share {number} has {WORDS_PER_SHARE} words; the rest were ignored.")
                break
            if not is_share_word(word):
                _say(
                    f"Word {len(words) + 1} is not on the SLIP-39 word list; type it again "
                    "(and the words after it)."
                )
                break
            words.append(word.lower())
    return words


def prompt_shares() -> list[list[str]]:
    """Shares typed one at a time until the set's threshold is reached."""
    _need_terminal("The share words")
    shares: list[list[str]] = []
    first: ShareInfo | None = None
    seen: set[int] = set()
    failures = 0
    while first is None or len(shares) < first.threshold:
        number = len(shares) + 1
        words = _one_share(number)
        try:
            info = set_of(words, number)
        except InputRejected as exc:
            failures += 1
            if failures >= _TRIES:
                raise
            _say(f"{exc.message} Type share {number} again from its first word.")
            continue
        if first is not None and info.set_id != first.set_id:
            raise InputRejected(
                f"Share {number} is from a different backup set than share 1: use shares of "
                "one set only."
            )
        if info.index in seen:
            _say(f"That is share {info.index} of the set again; type another keyholder's share.")
            continue
        first = first or info
        seen.add(info.index)
        shares.append(words)
        _say(f"Share {number} checks out (share {info.index} of the set; {info.threshold} needed).")
    return shares
