"""Signers as Docker users know them, and the delegations a repository publishes.

`docker trust signer add NAME` gives the signer's keys to `targets/NAME` (for
attribution) and to `targets/releases` (the role `docker pull` reads), creating
either with all paths when it is missing; `signer remove` takes the keys out of
both and deletes `targets/NAME` (notary-formats.md §9.2). Here both are staged
as additive `UpdateDelegation`s (and a `RemoveDelegation`), so the offline half
plans and reviews them like any other change to who can sign.

The state a staging command reads is what the server serves (verified from the
home's trust anchor) with the changes already staged applied: a signer added
and not yet published can be removed again before export.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ceremony.core.changes import Change, RemoveDelegation, UpdateDelegation
from ceremony.core.errors import InputRejected, UsageError
from ceremony.core.keys import describe_key
from ceremony.core.metadata import Body, Key, Targets, role_order
from ceremony.core.plan import plan
from online.client import Server
from online.flow import with_default_expiries
from online.home import Home
from online.operations import fetch

RELEASES = "targets/releases"
ALL_PATHS = ("",)
_SIGNER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_MIN_KEY_PREFIX = 12  # hex digits of a key id or fingerprint that name one key


def check_signer_name(name: str) -> str:
    """A Docker signer name (`^[a-z0-9][a-z0-9_-]*$`, not `releases`), or UsageError."""
    if name == "releases":
        raise UsageError(
            "releases is reserved: a signer's keys go into targets/releases by themselves, "
            "so give the signer its own name."
        )
    if not _SIGNER_NAME.match(name) or len(f"targets/{name}") >= 256:
        raise UsageError(
            f"The signer name {name!r} is not valid: use lowercase letters, digits, _ and -, "
            "starting with a letter or digit."
        )
    return name


def signer_role(name: str) -> str:
    return f"targets/{name}"


# ---------------------------------------------------------------------------
# the delegations a state holds


@dataclass(frozen=True, slots=True)
class Delegation:
    """One delegation as its parent defines it, with its keys."""

    role: str
    parent: str
    threshold: int
    paths: tuple[str, ...]
    keys: tuple[Key, ...]

    def to_dict(self) -> dict[str, Any]:
        keys = []
        for key in self.keys:
            d = describe_key(key)
            keys.append(
                {
                    "id": key.key_id,
                    "canonical_id": d.canonical_id,
                    "fingerprint": d.fingerprint,
                    "keytype": key.keytype,
                }
            )
        return {
            "role": self.role,
            "parent": self.parent,
            "threshold": self.threshold,
            "paths": list(self.paths),
            "keys": keys,
        }


def delegations_of(bodies: Mapping[str, Body]) -> list[Delegation]:
    """Every delegation the targets roles in `bodies` define, parents first."""
    out: list[Delegation] = []
    for parent in sorted(bodies, key=role_order):
        body = bodies[parent]
        if not isinstance(body, Targets):
            continue
        for spec in body.delegations.roles:
            keys = tuple(body.delegations.keys[k] for k in spec.keyids)
            out.append(Delegation(spec.name, parent, spec.threshold, spec.paths, keys))
    return sorted(out, key=lambda d: role_order(d.role))


def find_delegation(bodies: Mapping[str, Body], role: str) -> Delegation | None:
    return next((d for d in delegations_of(bodies) if d.role == role), None)


def resolve_key(delegation: Delegation, ref: str) -> Key:
    """The key of `delegation` that `ref` names: its key id, canonical id or fingerprint
    (or at least 12 leading hex digits of one), exactly one."""
    wanted = ref.strip().lower().replace(":", "")
    if len(wanted) < _MIN_KEY_PREFIX or not all(c in "0123456789abcdef" for c in wanted):
        raise UsageError(
            f"{ref!r} is not a key id: give the key id or fingerprint `delegation list` shows "
            f"(at least {_MIN_KEY_PREFIX} hex digits)."
        )
    matches = []
    for key in delegation.keys:
        d = describe_key(key)
        if any(name.startswith(wanted) for name in (key.key_id, d.canonical_id, d.fingerprint)):
            matches.append(key)
    if not matches:
        raise InputRejected(
            f"{delegation.role} has no key {ref}: `ceremony-online delegation list` shows its keys."
        )
    if len(matches) > 1:
        raise UsageError(f"{ref} names more than one key of {delegation.role}: give more digits.")
    return matches[0]


# ---------------------------------------------------------------------------
# the changes


def signer_add_changes(name: str, keys: Sequence[Key]) -> list[Change]:
    """Add the keys to targets/NAME and to targets/releases, creating either with all paths."""
    added = tuple(dict.fromkeys(keys))
    return [
        UpdateDelegation(signer_role(name), add_keys=added, paths_if_new=ALL_PATHS),
        UpdateDelegation(RELEASES, add_keys=added, paths_if_new=ALL_PATHS),
    ]


@dataclass(frozen=True, slots=True)
class SignerRemoval:
    changes: tuple[Change, ...]
    removed: tuple[Key, ...]  # the keys taken from targets/NAME
    kept_in_releases: tuple[Key, ...]  # still in releases because another signer holds them
    deletes_role: bool


def signer_remove_changes(
    gun: str,
    state: State,
    name: str,
    key_refs: Sequence[str] = (),
    *,
    remove_releases: bool = False,
) -> SignerRemoval:
    """Take the signer's keys (or those named) out of targets/releases and targets/NAME,
    deleting targets/NAME once it holds no key.

    A key another signer (`targets/OTHER`) also holds stays in releases, so removing
    one signer never silently removes another. Leaving releases with no key is refused
    unless `remove_releases` (then releases is deleted, and `docker pull` reads targets).
    """
    bodies = state.bodies
    role = signer_role(name)
    signer = find_delegation(bodies, role)
    if signer is None or signer.parent != "targets":
        raise InputRejected(
            f"There is no signer {name} ({role} is not delegated): "
            "`ceremony-online delegation list` shows the signers."
        )
    chosen = [resolve_key(signer, ref) for ref in key_refs] if key_refs else list(signer.keys)
    chosen = list(dict.fromkeys(chosen))
    chosen_ids = {k.key_id for k in chosen}
    changes: list[Change] = []
    kept: list[Key] = []
    releases = find_delegation(bodies, RELEASES)
    if releases is not None:
        others = {
            kid
            for d in delegations_of(bodies)
            if d.parent == "targets" and d.role not in (role, RELEASES)
            for kid in (k.key_id for k in d.keys)
        }
        out_of_releases = tuple(
            k.key_id for k in releases.keys if k.key_id in chosen_ids and k.key_id not in others
        )
        kept = [k for k in releases.keys if k.key_id in chosen_ids and k.key_id in others]
        left = len(releases.keys) - len(out_of_releases)
        if out_of_releases and left == 0:
            if not remove_releases:
                raise InputRejected(
                    f"Removing {name} would leave {RELEASES} with no key, so nothing could sign "
                    "releases: add another signer first, or pass --remove-releases to delete "
                    f"{RELEASES} too (docker pull then reads targets only)."
                )
            changes.append(RemoveDelegation(RELEASES))
        elif out_of_releases and left < releases.threshold:
            raise InputRejected(
                f"Removing {name} would leave {RELEASES} with {left} key(s), fewer than its "
                f"threshold of {releases.threshold}: add another signer first."
            )
        elif out_of_releases:
            kept_ids = [k.key_id for k in releases.keys if k.key_id not in out_of_releases]
            check_still_verifies(gun, state, RELEASES, kept_ids, releases.threshold)
            changes.append(UpdateDelegation(RELEASES, remove_keys=out_of_releases))
    deletes = len(chosen_ids) == len(signer.keys)
    if deletes:
        changes.append(RemoveDelegation(role))
    else:
        remaining = [k.key_id for k in signer.keys if k.key_id not in chosen_ids]
        if len(remaining) < signer.threshold:
            raise InputRejected(
                f"Removing those keys would leave {role} with {len(remaining)} key(s), fewer "
                f"than its threshold of {signer.threshold}: remove the whole signer instead."
            )
        check_still_verifies(gun, state, role, remaining, signer.threshold)
        changes.append(UpdateDelegation(role, remove_keys=tuple(k.key_id for k in chosen)))
    return SignerRemoval(tuple(changes), tuple(chosen), tuple(kept), deletes)


# ---------------------------------------------------------------------------
# reading the state (the edge: the server and the home)


@dataclass(frozen=True, slots=True)
class State:
    """Root and the targets roles (role -> body), and which keys validly signed each file
    the server serves (a role staged but not published has none)."""

    bodies: Mapping[str, Body]
    signed_by: Mapping[str, tuple[str, ...]]


def published_state(home: Home, server: Server, gun: str, now: datetime) -> State:
    """What the server serves, verified from the home's anchor (empty if GUN is new)."""
    fetched = fetch(home.repository(gun), server, now)
    if fetched is None:
        return State({}, {})
    bodies = {
        name: env.body
        for name, env in fetched.envelopes.items()
        if name == "root" or isinstance(env.body, Targets)
    }
    return State(bodies, {r.name: r.signed_by for r in fetched.report.roles})


def current_state(home: Home, server: Server, gun: str, now: datetime) -> State:
    """What is published with the changes staged in this home applied: the state the
    next export would produce."""
    state = published_state(home, server, gun, now)
    staged = [s.change for s in home.repository(gun).staged()]
    if not state.bodies and not staged:
        raise InputRejected(
            f"{gun} does not exist on the server and nothing is staged for it: check the GUN, "
            "or stage its creation with `ceremony-online init`."
        )
    if not staged:
        return state
    planned = plan(state.bodies, with_default_expiries(staged, now))
    bodies = {**state.bodies, **{role: rp.body for role, rp in planned.roles.items()}}
    return State(bodies, state.signed_by)


def check_fits(bodies: Mapping[str, Body], changes: Sequence[Change], now: datetime) -> None:
    """Refuse (ChangeError, one sentence) changes that do not apply to the current state."""
    plan(bodies, with_default_expiries(changes, now))


def check_still_verifies(
    gun: str, state: State, role: str, remaining: Sequence[str], threshold: int
) -> None:
    """Refuse removing keys whose signatures the served file of `role` needs.

    After the removal, the file the server serves would no longer verify (Notary's
    clients skip it, so `docker pull` loses its tags) until a remaining key re-signs
    it. Notary's way is a witness by a remaining signer, done first.
    """
    signed = state.signed_by.get(role)
    if signed is None:
        return
    if len(set(signed) & set(remaining)) < threshold:
        raise InputRejected(
            f"The served {role} is signed with the key(s) being removed and would no longer "
            f"verify: have a remaining signer of {role} re-sign it first (`notary witness "
            f"{gun} {role}`, then `notary publish {gun}`), then remove them."
        )
