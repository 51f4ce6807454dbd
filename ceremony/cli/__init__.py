"""The `ceremony` command (the offline half): prompts and printing live only here.

Every command is registered explicitly below, in the order `--help` lists them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from ceremony.edge.clikit import Overview, VersionOption, new_app, run_app
from ceremony.edge.hardening import harden_process, tighten_home

app = new_app(
    "Offline half of the Notary signing ceremony: keys, review, signing, verification.\n\n"
    "\b\nA routine signing:\n"
    "  ceremony review request.json          (or --qr frames/ or --qr webcam)\n"
    "  ceremony sign request.json --out signatures.json\n"
    "  ceremony key list"
)


def default_home() -> Path:
    return Path.home() / ".ceremony"


@app.callback()
def _global(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            envvar="CEREMONY_HOME",
            help="Offline home (keys and trust state).",
            show_default="~/.ceremony",
        ),
    ] = None,
    _version: VersionOption = False,
) -> None:
    ctx.obj = home if home is not None else default_home()
    note = tighten_home(ctx.obj)
    if note is not None:
        typer.echo(f"note: {note}", err=True)


def home_of(ctx: typer.Context) -> Path:
    """The offline home chosen by --home / CEREMONY_HOME."""
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Path) else default_home()


_REVIEW_COMMANDS = ("review", "sign", "verify")


def _register(command: str | None = None) -> None:
    """Register every command, or for `review`, `sign` and `verify` (the commands a ceremony
    runs on large requests) only those: the other command modules cost a tenth of a second
    of start-up (key files, shares, tokens) that they do not need."""
    from ceremony.cli import review_cmds

    app.command("review")(review_cmds.review)
    app.command("sign")(review_cmds.sign)
    app.command("verify")(review_cmds.verify)
    if command in _REVIEW_COMMANDS:
        return
    from ceremony.cli import (
        backup_cmds,
        fleet_key_cmds,
        key_cmds,
        liveness_cmds,
        preflight_cmds,
        retire_cmds,
        token_cmds,
        transcript_cmds,
        trust_cmds,
    )

    key_cmds.key_app.command("check")(liveness_cmds.check)
    key_cmds.key_app.command("retire")(retire_cmds.retire)
    key_cmds.key_app.command("import-token")(token_cmds.import_token)
    key_cmds.key_app.command("certify")(fleet_key_cmds.certify)
    app.add_typer(key_cmds.key_app, name="key")
    app.add_typer(trust_cmds.trust_app, name="trust")
    key_cmds.key_app.command("backup")(backup_cmds.key_backup)
    key_cmds.key_app.command("restore")(backup_cmds.key_restore)
    backup_cmds.backup_app.command("home")(backup_cmds.backup_home)
    backup_cmds.restore_app.command("home")(backup_cmds.restore_home)
    app.add_typer(backup_cmds.backup_app, name="backup")
    app.add_typer(backup_cmds.restore_app, name="restore")
    app.add_typer(transcript_cmds.transcript_app, name="transcript")
    app.command("preflight")(preflight_cmds.preflight)


# `ceremony --help` without importing a command (tests/test_cold_start.py keeps it exact).
OVERVIEW = Overview(
    commands=(  # overview: begin
        (
            "review",
            "Verify a request against this machine's trust state and show exactly what would be signed.",
        ),
        (
            "sign",
            "Review a request, confirm, sign with every key held here, and write the signatures.",
        ),
        ("verify", "Verify a Notary metadata folder from its root down and print what it holds."),
        (
            "preflight",
            "Check the network, radios, clock, transcript, permissions and installed software.",
        ),
        (
            "key",
            "Offline keys: generate, list, import Notary/Docker key files, export public keys.",
        ),
        (
            "trust",
            "The trust this machine keeps per repository (GUN): list it, show it, or forget it.",
        ),
        ("backup", "Back up the whole offline home into one encrypted archive."),
        (
            "restore",
            "Restore the offline home from an encrypted archive (merging, never forgetting).",
        ),
        (
            "transcript",
            "The ceremony transcript: one hash-chained line per command run on this machine.",
        ),
    ),  # overview: end
    value_options=frozenset({"--home"}),
)


def main(argv: list[str] | None = None) -> NoReturn:
    harden_process()  # no core dumps, umask 077: before any key is read
    args = list(sys.argv[1:] if argv is None else argv)
    if OVERVIEW.wanted(args):  # `--help` or nothing: help only, not recorded
        run_app(app, args, prepare=lambda: OVERVIEW.draw(app))
    from ceremony.cli import _record

    command = OVERVIEW.command(args)
    if not _record.records(args):  # `--help` of a command only prints help
        run_app(app, args, prepare=lambda: _register(command))
    home = _record.home_from(args, os.environ.get("CEREMONY_HOME"), default_home())
    with _record.recording(home, args) as finish:
        run_app(app, args, prepare=lambda: _register(command), finish=finish)
