"""One id per key everywhere (Notary's canonical key id) and --json for lists and reports."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.rig import Rig
from tests.notary_env import NotaryServer

pytestmark = pytest.mark.notary


def test_key_list_status_and_review_show_the_same_id(
    notary_server: NotaryServer, tmp_path: Path, new_gun: Callable[[], str]
) -> None:
    rig = Rig(notary_server, tmp_path, new_gun())
    rig.setup_repository()
    request = tmp_path / "init.json"
    rig.run("ceremony-online", "export", rig.gun, "--out", str(request))

    keys = json.loads(rig.run("ceremony", "key", "list", "--json").stdout)["keys"]
    ids = {k["role"]: k["id"] for k in keys}
    assert set(ids) == {"root", "targets"}
    for key in keys:
        path = Path(key["location"])
        assert path.name == f"{key['id']}.key"  # the key file's name, as Notary names it
        assert len(key["fingerprint"]) == 64 and key["fingerprint"] != key["id"]

    status = json.loads(rig.run("ceremony-online", "status", rig.gun, "--json").stdout)
    (req,) = status["requests"]
    needs = {s["role"]: s["needs"] for s in req["sets"]}
    assert needs["root"] == [ids["root"]]
    assert needs["targets"] == [ids["targets"]]
    text = rig.run("ceremony-online", "status", rig.gun).stdout
    assert f"needs {ids['root']}" in text

    review = json.loads(rig.run("ceremony", "review", str(request), "--json").stdout)
    assert review["request"] == req["id"] and review["words"] == req["words"]
    assert any(f"id {ids['root']}" in line for line in review["root_keys"])
    shown = rig.run("ceremony", "review", str(request)).stdout
    assert f"id {ids['root']}" in shown


def test_key_list_fits_80_columns(
    notary_server: NotaryServer, tmp_path: Path, new_gun: Callable[[], str]
) -> None:
    rig = Rig(notary_server, tmp_path, new_gun())
    for role in ("root", "targets", "delegation"):
        rig.run("ceremony", "key", "generate", role, "--gun", rig.gun)
    env = dict(rig.env, COLUMNS="80")
    text = rig.run_env(env, "ceremony", "key", "list").stdout
    lines = [line for line in text.splitlines() if str(tmp_path) not in line]  # paths are long
    assert len(text.splitlines()) < 40
    assert all(len(line) <= 80 for line in lines), text
