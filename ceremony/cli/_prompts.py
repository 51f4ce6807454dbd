"""Prompts live only in the CLI layer: passphrases and confirmations.

Library code receives a `PassphraseSource` callable and never prompts. Without
a terminal, a prompt fails at once (exit 4) instead of hanging.
"""

from __future__ import annotations

import getpass
import os
import sys

import typer

from ceremony.core.errors import Aborted, printable
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
