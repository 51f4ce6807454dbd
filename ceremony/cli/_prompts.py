"""Prompts live only in the CLI layer: passphrases and confirmations.

Library code receives a `PassphraseSource` callable and never prompts. Without
a terminal, a prompt fails at once (exit 4) instead of hanging.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TypeVar

import typer

from ceremony.core.errors import Aborted, InputRejected, printable
from ceremony.offline.review import MIN_ACK_PREFIX, Acknowledgements, Needed, normalise_fingerprint
from ceremony.signing.pkcs11uri import token_of_pin_alias

MIN_PASSPHRASE = 8
PIN_ENV = "CEREMONY_PKCS11_PIN"

_ENV_FOR_ALIAS = {
    "root": "NOTARY_ROOT_PASSPHRASE",
    "targets": "NOTARY_TARGETS_PASSPHRASE",
    "snapshot": "NOTARY_SNAPSHOT_PASSPHRASE",
}


def passphrase_env(alias: str) -> str:
    """Notary's variable for a key's role alias; any non-base role uses the delegation one."""
    return _ENV_FOR_ALIAS.get(alias, "NOTARY_DELEGATION_PASSPHRASE")


def interactive() -> bool:
    return sys.stdin.isatty()


def get_passphrase(alias: str, *, new: bool, label: str = "") -> str:
    """A passphrase for a key with role `alias`, from Notary's variable or a prompt (or the
    PIN a token backend asks for)."""
    token = token_of_pin_alias(alias)
    if token is not None:
        return get_pin(token)
    var = passphrase_env(alias)
    value = os.environ.get(var)
    if value:
        return value
    if not interactive():
        raise Aborted(f"No passphrase for the {alias} key{label}: set {var} or run at a terminal.")
    what = f"the {alias} key{label}"
    if not new:
        return getpass.getpass(f"Passphrase for {what}: ")
    for _ in range(3):
        first = getpass.getpass(f"New passphrase for {what}: ")
        if len(first) < MIN_PASSPHRASE:
            typer.echo(f"Use at least {MIN_PASSPHRASE} characters.", err=True)
            continue
        if getpass.getpass("Repeat it: ") == first:
            return first
        typer.echo("The two passphrases differ.", err=True)
    raise Aborted("No new passphrase was agreed; nothing was written.")


def get_pin(token: str) -> str:
    """The user PIN of a PKCS#11 token, from CEREMONY_PKCS11_PIN or a prompt (asked once)."""
    value = os.environ.get(PIN_ENV)
    if value:
        return value
    name = printable(token)
    if not interactive():
        raise Aborted(f"No PIN for token {name!r}: set {PIN_ENV} or run at a terminal.")
    return getpass.getpass(f"PIN for token {name!r}: ")


def confirm(question: str, *, assume_yes: bool) -> None:
    """Ask the operator to type `yes`; without a terminal and without --yes, abort (exit 4)."""
    if assume_yes:
        return
    if not interactive():
        raise Aborted("Confirmation needed but there is no terminal: re-run with --yes to confirm.")
    answer = typer.prompt(f"{question} Type 'yes' to continue", default="", show_default=False)
    if answer.strip().lower() != "yes":
        raise Aborted("Not confirmed; nothing was written.")


def _typed(question: str) -> str:
    return str(typer.prompt(question, default="", show_default=False))


def ask_acknowledgements(
    given: Acknowledgements, needs: Iterable[tuple[Needed, str]]
) -> Acknowledgements:
    """`given` plus, for each need, what the operator types by name: a fingerprint prefix, a
    role name or a request id.

    Each need comes with `where`, added to a key or role question (a batch says how many
    repositories need it). One prompt loop serves `review`/`sign` of one request and of a
    batch, so the two ask the same questions in the same words.
    """
    keys: list[str] = []
    roles: list[str] = []
    abandoned: list[str] = []
    for need, where in needs:
        if need.kind == "key":
            keys.append(
                normalise_fingerprint(
                    _typed(
                        f"{need.why}{where}. Type at least {MIN_ACK_PREFIX} hex digits of its "
                        "fingerprint"
                    )
                )
            )
        elif need.kind == "role":
            roles.append(
                _typed(
                    f"{need.why}{where}. Type the role name {need.names[0]!r} to accept it"
                ).strip()
            )
        else:
            abandoned.append(
                _typed(f"{need.why}. Type its request id {need.names[0]} to abandon it")
                .strip()
                .lower()
            )
    return replace(
        given,
        keys=(*given.keys, *keys),
        roles=(*given.roles, *roles),
        abandoned=(*given.abandoned, *abandoned),
    )


PASSPHRASE_TRIES = 3
T = TypeVar("T")


class KeySecret:
    """The passphrase source for ONE key: its prompt names the role, old or new, and the key id,
    and it remembers where the answer came from, so a wrong one is retried only if typed."""

    def __init__(self, role: str, key_id: str, *, age: str = "") -> None:
        self.what = f"the {age} {role} key {key_id}" if age else f"the {role} key {key_id}"
        self.env_var: str | None = None
        self.pin = False

    def __call__(self, alias: str) -> str:
        token = token_of_pin_alias(alias)
        if token is not None:
            self.pin = True
            self.env_var = PIN_ENV if os.environ.get(PIN_ENV) else None
            return get_pin(token)
        var = passphrase_env(alias)
        value = os.environ.get(var)
        if value:
            self.env_var = var
            return value
        self.env_var = None
        if not interactive():
            raise Aborted(f"No passphrase for {self.what}: set {var} or run at a terminal.")
        return getpass.getpass(f"Passphrase for {self.what}: ")


def unlock(opener: Callable[[KeySecret], T], secret: KeySecret) -> T:
    """`opener(secret)`, allowing 3 tries for a passphrase typed at the prompt.

    A token PIN is never retried here (a YubiKey PIV locks after 3 wrong PINs; the token
    backend says how many tries are left), and a wrong secret from an environment
    variable is reported as such and not retried.
    """
    from ceremony.signing.keyfile import WrongPassphrase

    for attempt in range(1, PASSPHRASE_TRIES + 1):
        try:
            return opener(secret)
        except InputRejected as exc:
            wrong_passphrase = isinstance(exc, WrongPassphrase)
            if secret.env_var is not None and secret.pin:
                raise type(exc)(
                    f"{exc.message.rstrip('.')}. The PIN came from {secret.env_var}: correct "
                    f"or unset it (it is not retried)."
                ) from None
            if secret.env_var is not None and wrong_passphrase:
                raise type(exc)(
                    f"The passphrase in {secret.env_var} does not open {secret.what}: correct "
                    f"or unset {secret.env_var} (it is not retried); nothing was signed or "
                    "written."
                ) from None
            if not wrong_passphrase or secret.pin:
                raise
            if attempt == PASSPHRASE_TRIES:
                raise WrongPassphrase(
                    f"{PASSPHRASE_TRIES} wrong passphrases for {secret.what}; nothing was "
                    "signed or written."
                ) from None
            left = PASSPHRASE_TRIES - attempt
            typer.echo(
                f"That passphrase does not open {secret.what}; {left} "
                f"{'try' if left == 1 else 'tries'} left.",
                err=True,
            )
    raise AssertionError("unreachable")  # pragma: no cover
