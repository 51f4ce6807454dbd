"""Names on the way to notary-server: what it takes is published, what it refuses never signed.

notary-server takes `<`, `>`, `&`, U+2028 and U+2029 in target names (the real `notary list`
shows them); it refuses C0 control characters (and we refuse DEL with them). Those are
refused at staging, at changelist import and in the offline review, before anything is
signed, each with one sentence.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from online.changelist import changelist_dir
from tests.attacker import edit
from tests.e2e.rig import Rig, full_ceremony, one_sentence
from tests.notary_env import NotaryCli, NotaryServer
from tests.online.signer_util import Online

pytestmark = pytest.mark.notary

PUBLISHABLE = ["line\u2028sep", "para\u2029sep", "a<b", "a>b", "a&b", "<&>"]
UNPUBLISHABLE = [chr(c) for c in (*range(0x20), 0x7F)]


def test_names_notary_server_takes_are_published_and_listed(
    notary_server: NotaryServer, notary_cli: NotaryCli, new_gun: Callable[[], str], tmp_path: Path
) -> None:
    rig = Rig(notary_server, tmp_path, new_gun())
    rig.setup_repository()
    for i, name in enumerate(PUBLISHABLE):
        rig.run(
            "ceremony-online", "add", rig.gun, name, "--sha256", f"{i:02x}" * 32, "--length", "5"
        )
    full_ceremony(rig, "special")
    listed = notary_cli.run("list", rig.gun).stdout
    for i, name in enumerate(PUBLISHABLE):
        assert f"{name}  " in listed or f"{name} " in listed, (name, listed)
        assert f"{i:02x}" * 32 in listed


def test_every_c0_control_and_del_is_refused_at_staging(tmp_path: Path) -> None:
    online = Online(tmp_path / "online", "https://127.0.0.1:9", tmp_path / "none.crt")
    gun = "example.com/names/app"
    for ch in UNPUBLISHABLE:
        result = online.run("add", gun, f"app{ch}x", "--sha256", "ab" * 32, "--length", "1")
        assert result.code == 1, (repr(ch), result.text)
        assert f"U+{ord(ch):04X}" in result.err and "cannot publish" in result.err
        assert "Traceback" not in result.err and result.err.count("\n") == 1
    assert not (tmp_path / "online").exists() or not list((tmp_path / "online").rglob("*.json"))
    # and through the real process, for the ones a shell can pass
    for ch in ("\x1b", "\x07", "\r", "\n", "\x7f"):
        result = online.sub("add", gun, f"app{ch}x", "--sha256", "ab" * 32, "--length", "1")
        assert result.code == 1 and "cannot publish" in result.err, result.text


def test_a_control_character_in_a_notary_changelist_is_refused_at_import(tmp_path: Path) -> None:
    online = Online(tmp_path / "online", "https://127.0.0.1:9", tmp_path / "none.crt")
    gun = "example.com/names/cl"
    trust = tmp_path / "notary-trust"
    data = {"length": 3, "hashes": {"sha256": base64.b64encode(b"\x01" * 32).decode()}}
    for ch in UNPUBLISHABLE:
        folder = changelist_dir(trust, gun)
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
        change = {
            "action": "create",
            "role": "targets",
            "type": "target",
            "path": f"evil{ch}name",
            "data": base64.b64encode(json.dumps(data).encode()).decode(),
        }
        (folder / "1.change").write_text(json.dumps(change))
        result = online.run("import-changelist", gun, "--notary-trust-dir", str(trust))
        assert result.code == 1, (repr(ch), result.text)
        assert f"U+{ord(ch):04X}" in result.err, result.err
        assert result.err.count("\n") == 1 and result.err.isprintable() is False  # one line + \n
        assert result.err.rstrip("\n").isprintable()


def test_a_control_character_forged_into_a_request_is_refused_by_the_offline_review(
    notary_server: NotaryServer, new_gun: Callable[[], str], tmp_path: Path
) -> None:
    rig = Rig(notary_server, tmp_path, new_gun())
    rig.setup_repository()
    rig.run(
        "ceremony-online", "add", rig.gun, "placeholder", "--sha256", "ab" * 32, "--length", "1"
    )
    request = tmp_path / "r.json"
    rig.run("ceremony-online", "export", rig.gun, "--out", str(request))

    def rename(doc: dict[str, object]) -> None:
        changes = doc["changes"]
        assert isinstance(changes, list)
        for change in changes:
            if change["type"] == "add-target":
                change["name"] = "evil\x1b]52;c;aGk=\x07name"

    forged = edit(request, tmp_path / "forged.json", rename)
    before = sorted(
        p.stat().st_mtime_ns
        for p in (tmp_path / "offline").rglob("*")
        if p.is_file() and "transcript" not in p.name  # every command adds its line
    )
    out = str(tmp_path / "sig.json")
    for args in (["review", "--full"], ["sign", "--yes", "--out", out]):
        proc = rig.run("ceremony", args[0], str(forged), *args[1:], code=1)
        sentence = one_sentence(proc)
        assert "U+001B" in sentence and "cannot publish" in sentence, sentence
        assert "\x1b" not in proc.stdout + proc.stderr
    after = sorted(
        p.stat().st_mtime_ns
        for p in (tmp_path / "offline").rglob("*")
        if p.is_file() and "transcript" not in p.name  # every command adds its line
    )
    assert before == after
    assert not Path(out).exists()
