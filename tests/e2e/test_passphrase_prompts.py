"""Passphrase prompts during signing: labelled (role, old or new, key id), 3 tries when typed,
no retry when the passphrase came from an environment variable.

A root rotation is signed at a pty, as an operator types, against a real notary-server.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.pty_util import PtyProcess
from tests.e2e.rig import Rig, full_ceremony, new_key, one_sentence
from tests.notary_env import PASSPHRASE, NotaryServer

pytestmark = pytest.mark.notary


def _rotation_request(
    notary_server: NotaryServer, tmp_path: Path, gun: str = "example.com/ux/prompts"
) -> tuple[Rig, Path, str, str]:
    rig = Rig(notary_server, tmp_path, gun)
    rig.setup_repository()
    full_ceremony(rig, "init")
    keys = json.loads(rig.run("ceremony", "key", "list", "--json").stdout)["keys"]
    old_id = next(k["id"] for k in keys if k["role"] == "root")
    new_id, new_keys = new_key(rig, "root")
    rig.run("ceremony-online", "rotate", rig.gun, "root", "--public-keys", str(new_keys))
    request = tmp_path / "rotate.request.json"
    rig.run("ceremony-online", "export", rig.gun, "--out", str(request))
    return rig, request, old_id, new_id


def test_rotation_prompts_name_old_and_new_and_allow_three_tries(
    notary_server: NotaryServer, tmp_path: Path
) -> None:
    rig, request, old_id, new_id = _rotation_request(notary_server, tmp_path)
    env = {k: v for k, v in rig.env.items() if not k.startswith("NOTARY_")} | {"PAGER": "cat"}
    session = PtyProcess(
        [
            "ceremony",
            "sign",
            str(request),
            "--out",
            str(tmp_path / "rotate.sig"),
            "--yes",
            "--accept",
            "root",
        ],
        env,
    )
    session.read_until("Passphrase for the ")
    session.read_until(": ")
    session.send(b"wrong passphrase\n")
    session.read_until("2 tries left")
    session.read_until(": ")
    session.send(PASSPHRASE.encode() + b"\n")
    session.read_until("Passphrase for the ")
    after = session.read_until(": ")
    session.send(PASSPHRASE.encode() + b"\n")
    code = session.finish()
    assert code == 0, session.output
    assert f"Passphrase for the old root key {old_id[:16]}: " in session.output
    assert f"Passphrase for the new root key {new_id[:16]}: " in session.output
    assert (
        f"does not open the old root key {old_id[:16]}; 2 tries left" in session.output
        or f"does not open the new root key {new_id[:16]}; 2 tries left" in session.output
    )
    assert "root key" in after  # the other key is asked for by its own label
    rig.run("ceremony-online", "publish", str(tmp_path / "rotate.sig"))


def test_three_wrong_passphrases_stop_and_nothing_is_written(
    notary_server: NotaryServer, tmp_path: Path
) -> None:
    rig = Rig(notary_server, tmp_path, "example.com/ux/prompts3")
    rig.setup_repository()
    request = tmp_path / "init.request.json"
    rig.run("ceremony-online", "export", rig.gun, "--out", str(request))
    env = {k: v for k, v in rig.env.items() if not k.startswith("NOTARY_")} | {"PAGER": "cat"}
    out = tmp_path / "init.sig"
    session = PtyProcess(["ceremony", "sign", str(request), "--out", str(out), "--yes"], env)
    for left in ("2 tries left", "1 try left"):
        session.read_until("Passphrase for the ")
        session.read_until(": ")
        session.send(b"not the passphrase\n")
        session.read_until(left)
    session.read_until("Passphrase for the ")
    session.read_until(": ")
    session.send(b"still not it\n")
    code = session.finish()
    assert code == 1, session.output
    assert "3 wrong passphrases for the " in session.output
    assert not out.exists()


def test_a_wrong_passphrase_from_the_environment_is_not_retried(
    notary_server: NotaryServer, tmp_path: Path
) -> None:
    rig = Rig(notary_server, tmp_path, "example.com/ux/prompts-env")
    rig.setup_repository()
    request = tmp_path / "init.request.json"
    rig.run("ceremony-online", "export", rig.gun, "--out", str(request))
    env = dict(rig.env, NOTARY_ROOT_PASSPHRASE="not the passphrase")
    out = tmp_path / "init.sig"
    proc = rig.run_env(env, "ceremony", "sign", str(request), "--out", str(out), "--yes", code=1)
    line = one_sentence(proc)
    assert "The passphrase in NOTARY_ROOT_PASSPHRASE does not open the root key" in line
    assert "not retried" in line
    assert not out.exists()


def test_a_root_change_not_acknowledged_by_option_is_asked_for_by_name_at_the_terminal(
    notary_server: NotaryServer, tmp_path: Path
) -> None:
    rig, request, _, _ = _rotation_request(notary_server, tmp_path, "example.com/ux/ack-prompt")
    signatures = tmp_path / "rotate.sig"
    session = PtyProcess(
        ["ceremony", "sign", str(request), "--out", str(signatures), "--yes"],
        rig.env | {"PAGER": "cat"},
    )
    session.read_until("Type the role name 'root' to accept it")
    session.send(b"targets\n")  # a role this request does not change
    assert session.finish() == 1, session.output
    assert "does not change who signs targets" in session.output
    assert not signatures.exists()
    session = PtyProcess(
        ["ceremony", "sign", str(request), "--out", str(signatures), "--yes"],
        rig.env | {"PAGER": "cat"},
    )
    session.read_until("Type the role name 'root' to accept it")
    session.send(b"root\n")
    assert session.finish() == 0, session.output
    rig.run("ceremony-online", "publish", str(signatures))
