"""`ceremony trust …`: the trust this machine keeps per repository; forget one to start over."""

from __future__ import annotations

from typing import Annotated

import typer

from ceremony.cli import home_of
from ceremony.cli._prompts import interactive
from ceremony.core.errors import InputRejected
from ceremony.core.gotime import GoTime, utc_now
from ceremony.core.gun import check_gun
from ceremony.core.keys import describe_key
from ceremony.edge.clikit import new_app, output_console
from ceremony.offline.review import MIN_ACK_PREFIX, normalise_fingerprint
from ceremony.offline.trust import TrustState, TrustStore

trust_app = new_app(
    "The trust this machine keeps per repository (GUN): list it, show it, or forget it."
)
out = output_console()
err = output_console(stderr=True)


def _root_fingerprints(state: TrustState) -> list[str]:
    root = state.root.body
    return [describe_key(root.keys[kid]).fingerprint for kid in root.roles["root"].keyids]


@trust_app.command("list")
def list_trust(ctx: typer.Context) -> None:
    """Every repository this machine trusts: its root version, root keys and requests signed."""
    store = TrustStore(home_of(ctx))
    guns = store.guns()
    if not guns:
        out.print("No repository is trusted on this machine yet.", markup=False)
    for gun in guns:
        state = store.load(gun)
        assert state is not None  # noqa: S101 - listed because its state exists
        out.print(
            f"{gun}: root v{state.root.body.version}, {len(state.requests)} request(s) signed, "
            f"root key(s) {', '.join(_root_fingerprints(state))}",
            markup=False,
        )


@trust_app.command("show")
def show(
    ctx: typer.Context, gun: Annotated[str, typer.Argument(help="The repository (GUN).")]
) -> None:
    """The trusted root, the newest versions verified and every request signed for GUN."""
    state = TrustStore(home_of(ctx)).load(check_gun(gun))
    if state is None:
        raise InputRejected(f"This machine keeps no trust state for {gun}.")
    say = out.print
    say(f"{gun}: trusted root v{state.root.body.version}", markup=False)
    for fingerprint in _root_fingerprints(state):
        say(f"  root key {fingerprint}", markup=False)
    for role, version in sorted(state.versions.items()):
        say(f"  verified {role} v{version}", markup=False)
    for rid, record in state.requests.items():
        roles = ", ".join(f"{r} v{s.version}" for r, s in sorted(record.roles.items()))
        say(f"  signed request {rid} on {', '.join(record.signed_at)}: {roles}", markup=False)


@trust_app.command("forget")
def forget(
    ctx: typer.Context,
    gun: Annotated[str, typer.Argument(help="The repository (GUN) to forget.")],
    root_fingerprint: Annotated[
        str | None,
        typer.Option(
            "--root-fingerprint",
            help="Acknowledge by the fingerprint of its current root key (at least 16 hex digits).",
        ),
    ] = None,
) -> None:
    """Drop the trust kept for GUN (after a re-initialisation, or a lost single root key).

    The next request for it is a first contact. The old state is moved aside, not deleted.
    """
    check_gun(gun)
    store = TrustStore(home_of(ctx))
    with store.locked():
        state = store.load(gun)
        if state is None:
            raise InputRejected(f"This machine keeps no trust state for {gun}; nothing to forget.")
        fingerprints = _root_fingerprints(state)
        err.print(
            f"{gun}: trusted root v{state.root.body.version}, root key(s): "
            + ", ".join(fingerprints),
            markup=False,
        )
        if root_fingerprint is None:
            if not interactive():
                raise InputRejected(
                    f"Forgetting {gun} must be acknowledged with --root-fingerprint and the "
                    "fingerprint of its current root key, shown above."
                )
            if typer.prompt("Type the GUN to forget", default="", show_default=False) != gun:
                raise InputRejected(f"That is not {gun}; nothing was forgotten.")
            root_fingerprint = typer.prompt(
                f"Type at least {MIN_ACK_PREFIX} hex digits of its root key fingerprint",
                default="",
                show_default=False,
            )
        given = normalise_fingerprint(root_fingerprint)
        if len(given) < MIN_ACK_PREFIX or not any(fp.startswith(given) for fp in fingerprints):
            raise InputRejected(
                f"{root_fingerprint!r} is not the fingerprint of {gun}'s current root key; "
                "nothing was forgotten."
            )
        stamp = GoTime.from_datetime(utc_now()).format().replace(":", "")
        moved = store.forget(gun, stamp)
    out.print(
        f"Forgot {gun}: its trust state was moved to {moved}. The next request for it is a "
        "first contact, confirmed by fingerprint.",
        markup=False,
    )
