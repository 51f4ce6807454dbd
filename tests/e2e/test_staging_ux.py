"""Staging: unstage and discard, a warning for conflicting changes, and the GUN checked at the
first staging (a typo is refused at once; a new GUN is said to be new)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.rig import Rig, full_ceremony, one_sentence
from tests.notary_env import NotaryServer

pytestmark = pytest.mark.notary


@pytest.fixture
def published(notary_server: NotaryServer, tmp_path: Path, new_gun: Callable[[], str]) -> Rig:
    rig = Rig(notary_server, tmp_path, new_gun())
    rig.setup_repository()
    full_ceremony(rig, "init")
    return rig


def _add(rig: Rig, name: str, digest: str, *extra: str, gun: str | None = None, code: int = 0):  # type: ignore[no-untyped-def]
    return rig.run(
        "ceremony-online",
        "add",
        gun or rig.gun,
        name,
        "--sha256",
        digest * 64,
        "--length",
        "1",
        *extra,
        code=code,
    )


def test_conflicting_changes_warn_and_unstage_discard_undo_them(published: Rig) -> None:
    rig = published
    first = _add(rig, "a.txt", "a")
    assert "warning" not in first.stderr
    one = _staged_id(first.stdout)
    second = _add(rig, "a.txt", "b")
    two = _staged_id(second.stdout)
    assert f"warning: #{two} conflicts with #{one} on target 'a.txt' in targets" in second.stderr
    assert f"ceremony-online unstage {rig.gun} {one}" in second.stderr
    again = _add(rig, "a.txt", "b")
    three = _staged_id(again.stdout)
    assert f"#{three} stages the same change again" in again.stderr
    removal = rig.run("ceremony-online", "remove", rig.gun, "a.txt")
    four = _staged_id(removal.stdout)
    assert f"warning: #{four} conflicts with #{one}, #{two}, #{three}" in removal.stderr
    other = _add(rig, "b.txt", "c")
    assert "warning" not in other.stderr

    rig.run("ceremony-online", "unstage", rig.gun, str(one), str(three))
    status = rig.run("ceremony-online", "status", rig.gun).stdout
    assert "Staged changes: 3" in status and f"#{one}:" not in status and f"#{two}:" in status
    unknown = rig.run("ceremony-online", "unstage", rig.gun, str(one), code=1)
    assert f"No staged change #{one}" in one_sentence(unknown)

    rig.run("ceremony-online", "discard", rig.gun)
    assert "Staged changes: 0" in rig.run("ceremony-online", "status", rig.gun).stdout
    assert rig.run("ceremony-online", "discard", rig.gun, code=2)


def test_a_mistyped_gun_is_refused_at_first_staging_and_a_new_one_is_named(
    published: Rig,
) -> None:
    rig = published
    typo = rig.gun + "x"
    refused = _add(rig, "a.txt", "a", gun=typo, code=1)
    sentence = one_sentence(refused)
    assert f"{typo} does not exist on" in sentence and "typo" in sentence
    assert "nothing was staged" in sentence
    assert "Staged changes: 0" in rig.run("ceremony-online", "status", typo).stdout

    new_gun = rig.gun + "-new"
    pub = rig.tmp / "new-keys.json"
    rig.run("ceremony", "key", "generate", "root", "--gun", new_gun)
    rig.run("ceremony", "key", "generate", "targets", "--gun", new_gun)
    rig.run("ceremony", "key", "export-public", "--gun", new_gun, "--out", str(pub))
    init = rig.run("ceremony-online", "init", new_gun, "--public-keys", str(pub))
    assert f"{new_gun} is a NEW repository" in init.stderr
    # Once init is staged, targets may be staged for the new GUN.
    _add(rig, "a.txt", "a", gun=new_gun)


def test_without_a_server_setting_staging_says_the_name_was_not_checked(published: Rig) -> None:
    rig = published
    env = {k: v for k, v in rig.env.items() if k not in ("CEREMONY_SERVER", "CEREMONY_TLS_CA")}
    env["CEREMONY_ONLINE_HOME"] = str(rig.tmp / "other-online")
    proc = rig.run_env(
        env,
        "ceremony-online",
        "add",
        "example.com/ux/unchecked",
        "x",
        "--sha256",
        "a" * 64,
        "--length",
        "1",
    )
    assert "was not checked" in proc.stderr
    fresh = dict(rig.env, CEREMONY_ONLINE_HOME=str(rig.tmp / "fresh-online"))
    checked = rig.run_env(
        fresh, "ceremony-online", "add", rig.gun, "y", "--sha256", "b" * 64, "--length", "2"
    )
    assert f"{rig.gun} exists on " in checked.stderr


def _staged_id(stdout: str) -> int:
    return int(stdout.split("staged #", 1)[1].split(":", 1)[0])
