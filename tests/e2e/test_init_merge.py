"""`init` takes one --public-keys file per keyholder and merges them (it used to keep the last)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ceremony.core.changes import InitRepository
from ceremony.core.documents import Request
from tests.e2e.rig import Rig, fingerprints, one_sentence
from tests.notary_env import NotaryServer

pytestmark = pytest.mark.notary


def test_init_merges_several_public_keys_files(
    notary_server: NotaryServer, tmp_path: Path, new_gun: Callable[[], str]
) -> None:
    gun = new_gun()
    rig = Rig(notary_server, tmp_path, gun)
    alice, bob = rig.offline(tmp_path / "alice"), rig.offline(tmp_path / "bob")
    rig.run_env(alice, "ceremony", "key", "generate", "root", "--gun", gun)
    rig.run_env(bob, "ceremony", "key", "generate", "root", "--gun", gun)
    rig.run_env(bob, "ceremony", "key", "generate", "targets", "--gun", gun)
    files = []
    for name, env in (("alice", alice), ("bob", bob)):
        path = tmp_path / f"{name}.json"
        rig.run_env(env, "ceremony", "key", "export-public", "--gun", gun, "--out", str(path))
        files.append(path)
    expected = {fp for f in files for fps in fingerprints(f).values() for fp in fps}
    assert len(expected) == 3

    rig.run(
        "ceremony-online", "init", gun, "--public-keys", str(files[0]), "--public-keys",
        str(files[1]), "--public-keys", str(files[1]), "--root-threshold", "2",
    )  # fmt: skip
    request = tmp_path / "init.json"
    rig.run("ceremony-online", "export", gun, "--out", str(request))
    changes = Request.from_bytes(request.read_bytes()).changes
    (init,) = [c for c in changes if isinstance(c, InitRepository)]
    assert len(init.root_keys) == 2 and init.root_threshold == 2
    assert len(init.targets_keys) == 1


def test_init_refuses_files_for_different_repositories(
    notary_server: NotaryServer, tmp_path: Path, new_gun: Callable[[], str]
) -> None:
    gun, other = new_gun(), new_gun()
    rig = Rig(notary_server, tmp_path, gun)
    paths = []
    for g in (gun, other):
        rig.run("ceremony", "key", "generate", "root", "--gun", g)
        rig.run("ceremony", "key", "generate", "targets", "--gun", g)
        path = tmp_path / f"{len(paths)}.json"
        rig.run("ceremony", "key", "export-public", "--gun", g, "--out", str(path))
        paths.append(path)
    proc = rig.run(
        "ceremony-online", "init", gun, "--public-keys", str(paths[0]), "--public-keys",
        str(paths[1]), code=1,
    )  # fmt: skip
    assert f"holds keys for {other}" in one_sentence(proc)
