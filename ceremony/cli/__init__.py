"""The `ceremony` command (the offline half): prompts and printing live only here.

Every command is registered explicitly below, in the order `--help` lists them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

from ceremony.edge.clikit import new_app, run_app
from ceremony.edge.hardening import harden_process, tighten_home

app = new_app("Offline half of the Notary signing ceremony: keys, review, signing, verification.")


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
) -> None:
    ctx.obj = home if home is not None else default_home()
    note = tighten_home(ctx.obj)
    if note is not None:
        typer.echo(f"note: {note}", err=True)


def home_of(ctx: typer.Context) -> Path:
    """The offline home chosen by --home / CEREMONY_HOME."""
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Path) else default_home()


def _register() -> None:
    from ceremony.cli import (
        backup_cmds,
        key_cmds,
        liveness_cmds,
        retire_cmds,
        review_cmds,
        token_cmds,
        trust_cmds,
    )

    app.command("review")(review_cmds.review)
    app.command("sign")(review_cmds.sign)
    app.command("verify")(review_cmds.verify)
    key_cmds.key_app.command("check")(liveness_cmds.check)
    key_cmds.key_app.command("retire")(retire_cmds.retire)
    key_cmds.key_app.command("import-token")(token_cmds.import_token)
    app.add_typer(key_cmds.key_app, name="key")
    app.add_typer(trust_cmds.trust_app, name="trust")
    key_cmds.key_app.command("backup")(backup_cmds.key_backup)
    key_cmds.key_app.command("restore")(backup_cmds.key_restore)
    backup_cmds.backup_app.command("home")(backup_cmds.backup_home)
    backup_cmds.restore_app.command("home")(backup_cmds.restore_home)
    app.add_typer(backup_cmds.backup_app, name="backup")
    app.add_typer(backup_cmds.restore_app, name="restore")


def main(argv: list[str] | None = None) -> NoReturn:
    harden_process()  # no core dumps, umask 077: before any key is read
    _register()
    run_app(app, argv)
