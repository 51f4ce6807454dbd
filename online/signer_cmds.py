"""`ceremony-online signer add/remove` and `delegation list/update`: signers as Docker users
know them (`docker trust signer add/remove`), and Notary's additive delegation update.

The commands stage changes like every other staging command; the offline review shows
each as a change to who can sign (`!` lines) that the keyholders accept by role name,
with every key not held offline confirmed by fingerprint. Registered in `online.cli`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ceremony.core.changes import Change, UpdateDelegation
from ceremony.core.errors import InputRejected, UsageError
from ceremony.core.gotime import utc_now
from ceremony.core.gun import check_gun
from ceremony.core.keys import describe_key, key_from_pem
from ceremony.core.metadata import Key, is_delegation_name
from ceremony.edge.clikit import new_app, output_console
from ceremony.edge.fsutil import read_input
from online.cli_root import Globals, globals_of
from online.home import Home
from online.signers import (
    RELEASES,
    check_fits,
    check_signer_name,
    check_still_verifies,
    current_state,
    delegations_of,
    find_delegation,
    published_state,
    resolve_key,
    signer_add_changes,
    signer_remove_changes,
    signer_role,
)
from online.staging_cmds import report_staged

signer_app = new_app(
    "Docker signers: a signer's keys sign in targets/NAME and targets/releases "
    "(as `docker trust signer add/remove`)."
)

out = output_console()
err = output_console(stderr=True)


def _globals(ctx: typer.Context) -> Globals:
    return globals_of(ctx)


def _stage(ctx: typer.Context, gun: str, changes: list[Change]) -> None:
    staged = Home(_globals(ctx).home).repository(gun).stage(changes)
    report_staged(gun, staged)


def _read_keys(files: list[Path], option: str) -> list[Key]:
    """Delegation keys from PEM files: a bare PUBLIC KEY (as `docker trust key generate`
    writes) or a certificate, as Notary reads them."""
    now = utc_now()
    keys = [key_from_pem(read_input(path, "public key file"), now) for path in files]
    if len(set(keys)) != len(keys):
        raise UsageError(f"{option} names one key twice.")
    return keys


def _say_keys(label: str, keys: list[Key]) -> None:
    for key in keys:
        out.print(
            f"{label} key {describe_key(key).summary()}: compare the fingerprint aloud with "
            "the signer's record",
            markup=False,
        )


def _delegation(role: str) -> str:
    if not is_delegation_name(role):
        raise UsageError(f"{role!r} is not a delegation name: use targets/NAME (lowercase).")
    return role


# ---------------------------------------------------------------------------
# signer add / remove


@signer_app.command("add")
def signer_add(
    ctx: typer.Context,
    gun: Annotated[str, typer.Argument(help="The repository (GUN).")],
    name: Annotated[str, typer.Argument(help="Signer name: lowercase letters, digits, _ and -.")],
    key: Annotated[
        list[Path],
        typer.Option(
            "--key",
            help="The signer's public key (PEM from `docker trust key generate`) or "
            "certificate; repeatable.",
        ),
    ],
) -> None:
    """Stage adding a signer: its keys go into targets/NAME and targets/releases.

    Either role is created (threshold 1, all paths) when it is missing; an existing one
    keeps its threshold and paths and gains the keys.
    """
    gun = check_gun(gun)
    name = check_signer_name(name)
    keys = _read_keys(key, "--key")
    _say_keys(f"signer {name}", keys)
    if any(k.is_x509 for k in keys):
        err.print(
            "Note: a certificate key signs with the notary client, but `docker trust sign` "
            "finds only bare public keys (as `docker trust key generate` writes).",
            markup=False,
        )
    _stage(ctx, gun, signer_add_changes(name, keys))


@signer_app.command("remove")
def signer_remove(
    ctx: typer.Context,
    gun: Annotated[str, typer.Argument(help="The repository (GUN).")],
    name: Annotated[str, typer.Argument(help="Signer name.")],
    key: Annotated[
        list[str] | None,
        typer.Option(
            "--key",
            help="Remove only this key (key id or fingerprint, as `delegation list` shows); "
            "repeatable. Default: all the signer's keys.",
        ),
    ] = None,
    remove_releases: Annotated[
        bool,
        typer.Option(
            "--remove-releases",
            help="If the signer holds the last key of targets/releases, delete targets/releases.",
        ),
    ] = False,
) -> None:
    """Stage removing a signer: its keys leave targets/releases and targets/NAME, and
    targets/NAME is deleted once it holds no key."""
    gun = check_gun(gun)
    name = check_signer_name(name)
    g = _globals(ctx)
    with g.connect() as server:
        state = current_state(Home(g.home), server, gun, utc_now())
    removal = signer_remove_changes(gun, state, name, key or (), remove_releases=remove_releases)
    for k in removal.removed:
        out.print(f"signer {name} loses key {describe_key(k).summary()}", markup=False)
    for k in removal.kept_in_releases:
        err.print(
            f"Key {describe_key(k).fingerprint} stays in {RELEASES}: another signer holds it.",
            markup=False,
        )
    if removal.deletes_role:
        err.print(f"{signer_role(name)} is deleted (it holds no other key).", markup=False)
    _stage(ctx, gun, list(removal.changes))


# ---------------------------------------------------------------------------
# delegation list / update (registered on the delegation app in online.cli)


def delegation_list(
    ctx: typer.Context,
    gun: Annotated[str, typer.Argument(help="The repository (GUN).")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the delegations as one JSON document.")
    ] = False,
) -> None:
    """List the delegations GUN publishes: role, threshold, paths and keys (by fingerprint)."""
    gun = check_gun(gun)
    g = _globals(ctx)
    with g.connect() as server:
        bodies = published_state(Home(g.home), server, gun, utc_now()).bodies
    if not bodies:
        raise InputRejected(f"{gun} does not exist on the server: check the GUN.")
    found = delegations_of(bodies)
    if as_json:
        document = {"gun": gun, "delegations": [d.to_dict() for d in found]}
        out.print(json.dumps(document, indent=2, sort_keys=True), markup=False)
        return
    if not found:
        out.print(f"{gun} publishes no delegation.", markup=False)
    for d in found:
        paths = ", ".join(repr(p) if p else "(all paths)" for p in d.paths) or "(no paths)"
        out.print(
            f"{d.role}  threshold {d.threshold} of {len(d.keys)}  paths {paths}", markup=False
        )
        for k in d.keys:
            out.print(f"  key {describe_key(k).summary()}", markup=False)


def delegation_update(
    ctx: typer.Context,
    gun: Annotated[str, typer.Argument(help="The repository (GUN).")],
    role: Annotated[str, typer.Argument(help="Delegation, e.g. targets/releases.")],
    add_key: Annotated[
        list[Path] | None,
        typer.Option("--add-key", help="PEM public key or certificate to add; repeatable."),
    ] = None,
    remove_key: Annotated[
        list[str] | None,
        typer.Option(
            "--remove-key",
            help="Key id or fingerprint (as `delegation list` shows) to remove; repeatable.",
        ),
    ] = None,
    add_path: Annotated[
        list[str] | None,
        typer.Option("--add-path", help='Target name prefix to add ("" for all); repeatable.'),
    ] = None,
    remove_path: Annotated[
        list[str] | None, typer.Option("--remove-path", help="Path to remove; repeatable.")
    ] = None,
) -> None:
    """Stage adding or removing keys and paths of an existing delegation, keeping the rest
    (Notary's meaning; `delegation add` replaces the whole definition)."""
    gun = check_gun(gun)
    role = _delegation(role)
    if not (add_key or remove_key or add_path or remove_path):
        raise UsageError("Give at least one of --add-key, --remove-key, --add-path, --remove-path.")
    added = _read_keys(add_key or [], "--add-key")
    adds, removes = tuple(dict.fromkeys(add_path or ())), tuple(dict.fromkeys(remove_path or ()))
    if set(adds) & set(removes):
        raise UsageError("A path cannot be both added and removed.")
    g = _globals(ctx)
    with g.connect() as server:
        state = current_state(Home(g.home), server, gun, utc_now())
    current = find_delegation(state.bodies, role)
    if current is None:
        raise InputRejected(
            f"{gun} does not delegate {role}: create it with `ceremony-online delegation add`."
        )
    removed = tuple(dict.fromkeys(resolve_key(current, ref).key_id for ref in remove_key or ()))
    if {k.key_id for k in added} & set(removed):
        raise UsageError("A key cannot be both added and removed.")
    change = UpdateDelegation(
        role, add_keys=tuple(added), remove_keys=removed, add_paths=adds, remove_paths=removes
    )
    check_fits(state.bodies, [change], utc_now())  # refused now, not at export
    if removed:
        remaining = [k.key_id for k in current.keys if k.key_id not in removed]
        check_still_verifies(gun, state, role, remaining, current.threshold)
    _say_keys(role, added)
    _stage(ctx, gun, [change])
