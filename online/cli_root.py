"""The `ceremony-online` app, its global options and its entry point, without the commands.

`ceremony-online --help` is drawn from here alone (`OVERVIEW`); any command line that names a
command imports `online.cli`, which registers every command on `app`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from ceremony.core.errors import UsageError
from ceremony.edge.clikit import Overview, VersionOption, new_app, run_app
from online.settings import ENV_DOCKER_SERVER, ENV_SERVER, ENV_TLS_CA, HOME_ENV, default_home

if TYPE_CHECKING:
    from online.client.config import ServerConfig
    from online.client.http import TrustServer

app = new_app(
    "Online half of the Notary signing ceremony: stage changes, export signing requests, "
    "publish signatures. Holds no private key.\n\n"
    "\b\nA routine change:\n"
    "  ceremony-online add example.com/app v1.tar.gz ./v1.tar.gz\n"
    "  ceremony-online export example.com/app --out request.json\n"
    "  ceremony-online publish signatures.json\n"
    "  ceremony-online status example.com/app"
)


@dataclass(frozen=True, slots=True)
class Globals:
    """The global options, resolved."""

    home: Path
    server: str | None
    tls_ca: Path | None
    allow_http: bool = False

    def config(self) -> ServerConfig:
        from online.client.config import ServerConfig

        return ServerConfig.from_env(self.server, self.tls_ca, allow_http=self.allow_http)

    def connect(self) -> TrustServer:
        """The trust server the options name (a context manager that closes its connections)."""
        from online.client.http import TrustServer

        return TrustServer(self.config())


@app.callback()
def _global(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            envvar=HOME_ENV,
            help="Online home (staged changes, requests, signatures).",
            show_default="~/.ceremony-online",
        ),
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            envvar=[ENV_SERVER, ENV_DOCKER_SERVER],
            help="Trust server URL, e.g. https://notary.example.com:4443.",
        ),
    ] = None,
    tls_ca: Annotated[
        Path | None,
        typer.Option("--tls-ca", envvar=ENV_TLS_CA, help="CA certificate of the trust server."),
    ] = None,
    allow_http: Annotated[
        bool,
        typer.Option(
            "--allow-http",
            help="Accept a plain http:// server URL (credentials and metadata in the clear).",
        ),
    ] = False,
    _version: VersionOption = False,
) -> None:
    ctx.obj = Globals(home if home is not None else default_home(), server, tls_ca, allow_http)
    CURRENT.append(ctx.obj)


CURRENT: list[Globals] = []  # this run's global options (the first staging asks the server)


def globals_of(ctx: typer.Context) -> Globals:
    obj = ctx.find_root().obj
    if not isinstance(obj, Globals):  # pragma: no cover - the callback always runs first
        raise UsageError("The global options were not read.")
    return obj


# `ceremony-online --help` without importing a command (tests/test_cold_start.py keeps it exact).
OVERVIEW = Overview(
    commands=(  # overview: begin
        (
            "init",
            "Stage a new repository: offline root and targets keys, server-held snapshot and timestamp.",
        ),
        ("add", "Stage adding target(s) to targets or a delegation."),
        ("remove", "Stage removing a target."),
        ("rotate", "Stage replacing the root or targets keys with those in the public keys file."),
        ("refresh", "Stage re-signing roles with a new expiry (and nothing else)."),
        (
            "import-changelist",
            "Stage the changes the notary client staged (notary add/remove/delegation/witness).",
        ),
        (
            "status",
            "Show what is published, staged, exported and signed for GUN (or every repository).",
        ),
        (
            "export",
            "Export everything staged for GUN as one signing request (a file and/or QR codes); with a repeated --gun or --all, one batch request for many repositories.",
        ),
        (
            "publish",
            "Check the signatures, upload the signed metadata, and verify what the server serves (a batch signatures document: every repository, a few at a time).",
        ),
        (
            "check-liveness",
            "Which keys the published repository lists are proven to work, and can each role sign?",
        ),
        (
            "local-server",
            "Run a throwaway notary-server on 127.0.0.1 (memory store, TLS) until Ctrl-C.",
        ),
        (
            "drill",
            "Rehearse a whole ceremony on this machine, with nothing to set up, and report it.",
        ),
        ("unstage", "Drop staged changes by number; the others stay staged."),
        ("discard", "Drop every staged change for GUN (exported requests stay until cancelled)."),
        ("delegation", "Delegations (defined in their parent role): list, add, update, remove."),
        (
            "signer",
            "Docker signers: a signer's keys sign in targets/NAME and targets/releases (as `docker trust signer add/remove`).",
        ),
        (
            "requests",
            "Exported requests: list them, or cancel one so the next export makes a new one.",
        ),
    ),  # overview: end
    value_options=frozenset({"--home", "--server", "--tls-ca"}),
)


def main(argv: list[str] | None = None) -> NoReturn:
    """Console script `ceremony-online`."""
    if argv is None:  # the console script: the home is the operator's only, whatever the umask
        os.umask(0o077)
    if OVERVIEW.wanted(sys.argv[1:] if argv is None else argv):
        run_app(app, argv, prepare=lambda: OVERVIEW.draw(app))
    run_app(app, argv, prepare=_register)


def _register() -> None:
    import online.cli  # noqa: F401 - registers every command on `app`
