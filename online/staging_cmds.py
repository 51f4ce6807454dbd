"""Undo staging: `unstage GUN ID...`, `discard GUN`, and the warning for conflicting changes.

Staged changes apply in order, so two changes to the same target (or delegation, or
role's keys) leave only the later one's effect. That is rarely meant: staging says so
at once and names the `unstage` command that drops the earlier one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated

import typer

from ceremony.core.changes import Change
from ceremony.core.documents import PublicKeyEntry, PublicKeysDocument
from ceremony.core.errors import EnvironmentFailure, InputRejected, UsageError
from ceremony.core.gun import check_gun
from ceremony.edge.clikit import output_console
from online.client.http import TrustServer
from online.home import Home, RepositoryHome, RequestRecord, StagedChange
from online.settings import HOME_ENV

out = output_console()
err = output_console(stderr=True)

_LISTED = 5  # conflicts named one by one; beyond, a count
STAGED_LISTED = 40  # staged changes listed one by one (here and in status); beyond, a summary


def report_staged(gun: str, staged: Sequence[StagedChange]) -> None:
    """What was just staged (stdout), and the export command that comes next (stderr);
    every staging command ends with this, so they all read alike."""
    if len(staged) <= STAGED_LISTED:
        for s in staged:
            out.print(f"staged #{s.id}: {s.change.describe()}", markup=False)
    else:
        out.print(f"staged #{staged[0].id}–#{staged[-1].id}: {len(staged)} changes", markup=False)
    err.print(
        f"{gun}: export with `ceremony-online export {gun} --out FILE` when ready.", markup=False
    )


def subject(change: Change) -> tuple[str, ...]:
    """What a change acts on: a target of a role, a delegation, or a role's keys or expiry."""
    name = getattr(change, "name", None)
    role = str(getattr(change, "role", ""))
    if isinstance(name, str):
        return ("target", role, name)
    kind = type(change).__name__
    if "Delegation" in kind:
        return ("delegation", role)
    return (kind, role)


def _what(key: tuple[str, ...]) -> str:
    if key[0] == "target":
        return f"target {key[2]!r} in {key[1]}"
    if key[0] == "delegation":
        return f"delegation {key[1]}"
    return f"{key[1] or 'the repository'} ({key[0]})"


def conflict_warnings(
    gun: str, existing: Sequence[StagedChange], added: Sequence[StagedChange]
) -> list[str]:
    """One line per subject the new changes share with an earlier staged change."""
    seen: dict[tuple[str, ...], list[StagedChange]] = {}
    for staged in existing:
        seen.setdefault(subject(staged.change), []).append(staged)
    clashes: list[tuple[tuple[str, ...], list[StagedChange], StagedChange]] = []
    for staged in added:
        key = subject(staged.change)
        earlier = seen.get(key)
        if earlier:
            clashes.append((key, list(earlier), staged))
        seen.setdefault(key, []).append(staged)
    lines: list[str] = []
    for key, earlier, later in clashes[:_LISTED]:
        ids = " ".join(str(s.id) for s in earlier)
        same = earlier[-1].change == later.change
        how = "stages the same change again" if same else "conflicts with"
        lines.append(
            f"warning: #{later.id} {how} #{', #'.join(ids.split())} on {_what(key)}; the last "
            f"one staged wins. Drop one with `ceremony-online unstage {gun} {earlier[-1].id}`."
        )
    if len(clashes) > _LISTED:
        lines.append(
            f"warning: {len(clashes) - _LISTED} more new change(s) touch something already "
            f"staged; see `ceremony-online status {gun}`."
        )
    return lines


def unstage(
    ctx: typer.Context,
    gun: Annotated[str, typer.Argument(help="The repository (GUN).")],
    ids: Annotated[
        list[int], typer.Argument(help="Staged change numbers (#N in `status`).", metavar="ID...")
    ],
) -> None:
    """Drop staged changes by number; the others stay staged.

    Example: ceremony-online unstage example.com/app 3 4
    """
    gun = check_gun(gun)
    repo = _home_of(ctx).repository(gun)
    staged = {s.id for s in repo.staged()}
    unknown = [i for i in ids if i not in staged]
    if unknown:
        raise InputRejected(
            f"No staged change #{', #'.join(map(str, unknown))} for {gun}; see "
            f"`ceremony-online status {gun}`. Nothing was dropped."
        )
    dropped = repo.unstage(ids)
    out.print(f"Dropped {dropped} staged change(s) for {gun}.", markup=False)
    _remind_requests(repo.records(), gun)


def discard(
    ctx: typer.Context,
    gun: Annotated[str, typer.Argument(help="The repository (GUN).")],
) -> None:
    """Drop every staged change for GUN (exported requests stay until cancelled).

    Example: ceremony-online discard example.com/app
    """
    gun = check_gun(gun)
    repo = _home_of(ctx).repository(gun)
    staged = repo.staged()
    if not staged:
        raise UsageError(f"Nothing is staged for {gun}.")
    dropped = repo.unstage([s.id for s in staged])
    out.print(f"Dropped all {dropped} staged change(s) for {gun}.", markup=False)
    _remind_requests(repo.records(), gun)


def _remind_requests(records: Sequence[RequestRecord], gun: str) -> None:
    waiting = [r for r in records if r.published is None and r.cancelled is None]
    if waiting:
        err.print(
            f"note: {len(waiting)} exported request(s) still wait for signatures; the next "
            f"export makes a new one, or cancel them with `ceremony-online requests cancel {gun} ID`.",
            markup=False,
        )


def _home_of(ctx: typer.Context) -> Home:
    obj = ctx.find_root().obj
    path = getattr(obj, "home", None)
    if path is None:
        raise UsageError(f"The online home is not set: use --home or {HOME_ENV}.")
    return Home(path)


def check_first_staging(
    repo: RepositoryHome, gun: str, connect: Callable[[], TrustServer] | None
) -> None:
    """At the first staging for a GUN this home never saw, ask the server whether it exists.

    A mistyped GUN is refused here (nothing staged) instead of at export. Without a
    server setting, or when the server cannot be reached, it says the name was not
    checked and stages anyway (staging needs no network).
    """
    if repo.staged() or repo.anchor() is not None or repo.records():
        return
    if connect is None:
        err.print(
            f"note: no trust server is set, so the name {gun} was not checked; export checks it.",
            markup=False,
        )
        return
    try:
        with connect() as server:
            location = server.location
            exists = server.get_metadata(gun, "root.json") is not None
    except EnvironmentFailure as exc:
        err.print(
            f"note: the name {gun} was not checked against the server ({exc.message.rstrip('.')}).",
            markup=False,
        )
        return
    if exists:
        err.print(f"{gun} exists on {location}.", markup=False)
        return
    raise InputRejected(
        f"{gun} does not exist on {location}: check the name for a typo, or create it with "
        f"`ceremony-online init {gun}` first; nothing was staged."
    )


def merge_public_keys(documents: Sequence[tuple[str, PublicKeysDocument]]) -> PublicKeysDocument:
    """One document from several keyholders' files (`init --public-keys A --public-keys B`).

    All must be for one GUN; a key in two files is kept once, and a key listed under two
    different roles is refused.
    """
    if not documents:
        raise UsageError("Give at least one --public-keys file.")
    gun = documents[0][1].gun
    entries: dict[str, PublicKeyEntry] = {}
    for source, document in documents:
        if document.gun != gun:
            raise InputRejected(
                f"{source} holds keys for {document.gun}, but {documents[0][0]} for {gun}: "
                "give the files of one repository."
            )
        for entry in document.keys:
            known = entries.get(entry.canonical_id)
            if known is not None and known.role != entry.role:
                raise InputRejected(
                    f"Key {entry.canonical_id[:16]} is a {known.role} key in one file and a "
                    f"{entry.role} key in {source}: a key serves one role."
                )
            entries.setdefault(entry.canonical_id, entry)
    return PublicKeysDocument(gun, tuple(entries.values()))
