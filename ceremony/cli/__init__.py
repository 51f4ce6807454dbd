"""The `ceremony` command (the offline half): prompts and printing live only here."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import typer

from ceremony.edge.clikit import new_app, run_app

app = new_app("Offline half of the Notary signing ceremony: keys, review, signing, verification.")


def default_home() -> Path:
    return Path.home() / ".ceremony"


@app.callback()
def _global(
    ctx: typer.Context,
    home: Path | None = typer.Option(
        None,
        "--home",
        envvar="CEREMONY_HOME",
        help="Offline home (keys and trust state).",
        show_default="~/.ceremony",
    ),
) -> None:
    ctx.obj = home if home is not None else default_home()


def home_of(ctx: typer.Context) -> Path:
    """The offline home chosen by --home / CEREMONY_HOME."""
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Path) else default_home()


def _register() -> None:
    # Sub-command modules register themselves on `app` when imported.
    from ceremony.cli import commands  # noqa: F401


def main(argv: list[str] | None = None) -> NoReturn:
    _register()
    run_app(app, argv)
