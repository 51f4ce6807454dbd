"""Retiring keys after a rotation: `key list` shows a rotated-out key, `key retire` removes it.

A key is rotated out once the newest root this machine trusts (its trust state)
lists it in no role, for every repository it serves. The machine trusts a new
root once it signs a request built on it. Everything runs through the real CLIs
against the real server.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ceremony.signing.keystore import KeyStore
from tests.e2e.rig import (
    Rig,
    full_ceremony,
    new_key,
    one_sentence,
    publish_new,
    stage_text_target,
)
from tests.notary_env import NotaryCli, NotaryServer

pytestmark = pytest.mark.notary


def store(rig: Rig) -> KeyStore:
    return KeyStore(Path(rig.env["CEREMONY_HOME"]))


def block_of(listing: str, key_id: str) -> str:
    """The `key list` block of one key."""
    (block,) = [b for b in listing.split("\n\n") if f"id          {key_id}" in b]
    return block


def ids_by_role(rig: Rig) -> dict[str, str]:
    records = store(rig).records()
    return {r.role: r.canonical_id for r in records if r.retired is None}


def rotate(rig: Rig, role: str, name: str) -> str:
    """Generate a new `role` key, stage and publish its rotation; the new key's id."""
    new, pub = new_key(rig, role)
    rig.run("ceremony-online", "rotate", rig.gun, role, "--public-keys", str(pub))
    full_ceremony(rig, name, None, "--accept", role)
    return new


def test_a_rotated_out_root_key_is_shown_retired_then_removed(
    notary_server: NotaryServer, notary_cli: NotaryCli, new_gun, tmp_path: Path
) -> None:
    rig = publish_new(notary_server, tmp_path, new_gun())
    old = ids_by_role(rig)["root"]
    new = rotate(rig, "root", "rotate")
    # Signed, but this machine still trusts root v1 (the base of the rotation it signed).
    assert "retired" not in block_of(rig.run("ceremony", "key", "list").stdout, old)

    stage_text_target(rig, "b", "b\n")
    full_ceremony(rig, "after")  # built on root v2: now trusted here
    listing = rig.run("ceremony", "key", "list").stdout
    assert f"retired     no longer listed by the root trusted for {rig.gun} (root v2)" in block_of(
        listing, old
    )
    assert "retired" not in block_of(listing, new)
    old_file = store(rig).key_path(old)
    assert old_file.is_file()

    # A confirmation that names another key, or too few digits: refused, nothing removed.
    wrong = rig.run("ceremony", "key", "retire", old, "--confirm", new[:16], code=1)
    assert "does not name key" in one_sentence(wrong)
    short = rig.run("ceremony", "key", "retire", old, "--confirm", old[:8], code=1)
    assert "at least 16 hex digits" in one_sentence(short)
    # No confirmation and no terminal: aborted, never a hang.
    unasked = rig.run("ceremony", "key", "retire", old, code=4)
    assert "--confirm" in one_sentence(unasked)
    assert old_file.is_file() and store(rig).get(old).retired is None  # type: ignore[union-attr]

    fingerprint = rig.run("ceremony", "key", "fingerprint", old).stdout.strip()
    done = rig.run("ceremony", "key", "retire", old, "--confirm", fingerprint[:20])
    assert f"Removed {old_file}" in done.stdout
    assert not old_file.exists()
    record = store(rig).get(old)
    assert record is not None and record.retired is not None  # the record stays
    listing = rig.run("ceremony", "key", "list").stdout
    assert f"RETIRED {record.retired}: its private half was removed" in block_of(listing, old)
    again = rig.run("ceremony", "key", "retire", old, "--confirm", old[:16])
    assert "already retired" in again.stdout

    # The retired key is not checked for liveness; the live ones still sign a ceremony.
    checked = rig.run("ceremony", "key", "check", "--out", str(tmp_path / "live.json")).stdout
    assert checked.count("works   ") == 2
    refused = rig.run("ceremony", "key", "check", old, "--out", str(tmp_path / "x.json"), code=1)
    assert "was retired" in one_sentence(refused)
    stage_text_target(rig, "c", "c\n")
    full_ceremony(rig, "later")
    assert set(notary_cli.list_targets(rig.gun)) == {"a", "b", "c"}


def test_a_rotated_out_targets_key_is_shown_retired(
    notary_server: NotaryServer, new_gun, tmp_path: Path
) -> None:
    rig = publish_new(notary_server, tmp_path, new_gun())
    old = ids_by_role(rig)["targets"]
    new = rotate(rig, "targets", "rotate-targets")
    stage_text_target(rig, "b", "b\n")
    full_ceremony(rig, "after")
    listing = rig.run("ceremony", "key", "list").stdout
    assert "retired     no longer listed" in block_of(listing, old)
    assert "retired" not in block_of(listing, new)
    rig.run("ceremony", "key", "retire", old, "--confirm", old[:16])
    assert not store(rig).key_path(old).exists()


def test_a_live_key_is_not_retired(notary_server: NotaryServer, new_gun, tmp_path: Path) -> None:
    rig = publish_new(notary_server, tmp_path, new_gun())
    root = ids_by_role(rig)["root"]
    refused = rig.run("ceremony", "key", "retire", root, "--confirm", root[:16], code=1)
    assert f"is still listed in the root this machine trusts for {rig.gun} (root v1)" in (
        one_sentence(refused)
    )
    assert store(rig).key_path(root).is_file()
    assert store(rig).get(root).retired is None  # type: ignore[union-attr]

    # A key for a repository this machine never verified: it cannot tell, so --force only.
    spare = rig.run(
        "ceremony", "key", "generate", "targets", "--gun", "example.com/test/never-published"
    ).stdout.strip()
    unsure = rig.run("ceremony", "key", "retire", spare, "--confirm", spare[:16], code=1)
    assert "cannot tell whether the key is still in use" in one_sentence(unsure)
    rig.run("ceremony", "key", "retire", spare, "--confirm", spare[:16], "--force")
    assert not store(rig).key_path(spare).exists()
