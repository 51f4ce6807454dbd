"""`import-changelist`: changes staged by the real notary client become ours, all or nothing."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ceremony.core.changes import (
    AddTarget,
    RemoveDelegation,
    RemoveTarget,
    SetDelegation,
    SetExpiry,
)
from ceremony.core.errors import InputRejected
from online.changelist import changelist_dir, translate
from online.home import Home
from tests.notary_env import NotaryCli, NotaryServer
from tests.online.signer_util import Online, cert_key, plain_key, root_key, sign_request

pytestmark = pytest.mark.notary
NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture
def online(notary_server: NotaryServer, tmp_path: Path) -> Online:
    return Online(tmp_path / "online-home", notary_server.url, notary_server.ca)


def test_notary_staged_targets_delegation_and_witness_are_imported_and_published(
    online: Online, notary_cli: NotaryCli, new_gun: Callable[[], str], tmp_path: Path
) -> None:
    gun = new_gun()
    root, targets = root_key(gun), plain_key("targets")
    releases = cert_key("targets/releases")
    online.create(gun, tmp_path, root, targets)
    online.ok("add", gun, "old.txt", "--sha256", "cd" * 32, "--length", "3")
    online.publish_staged(gun, tmp_path, [targets])

    payload = tmp_path / "new.txt"
    payload.write_bytes(b"new from notary\n")
    cert = tmp_path / "releases.crt"
    cert.write_bytes(releases.public_pem())
    notary_cli.run("add", gun, "new.txt", str(payload))
    notary_cli.run("remove", gun, "old.txt")
    notary_cli.run("delegation", "add", gun, "targets/releases", str(cert), "--all-paths")
    notary_cli.run("witness", gun, "targets")
    assert len(list(changelist_dir(notary_cli.trust_dir, gun).glob("*.change"))) == 5

    imported = online.sub("import-changelist", gun, "--notary-trust-dir", str(notary_cli.trust_dir))
    assert imported.code == 0, imported.text
    staged = [s.change for s in Home(online.home).repository(gun).staged()]
    assert [type(c) for c in staged] == [AddTarget, RemoveTarget, SetDelegation, SetExpiry]
    delegation = staged[2]
    assert isinstance(delegation, SetDelegation)
    assert delegation.paths == ("",) and delegation.threshold == 1
    assert [k.key_id for k in delegation.keys] == [releases.key_id]  # ecdsa-x509, as notary has it

    online.publish_staged(gun, tmp_path, [targets])
    digest = hashlib.sha256(b"new from notary\n").hexdigest()
    assert notary_cli.list_targets(gun) == {"new.txt": digest}

    # The imported delegation works: a target signed by its key is listed by notary.
    online.ok(
        "add", gun, "rel.bin", "--sha256", "ef" * 32, "--length", "9", "--role", "targets/releases"
    )
    request = tmp_path / "rel.request.json"
    online.ok("export", gun, "--out", str(request))
    signatures = tmp_path / "rel.signatures.json"
    signatures.write_bytes(sign_request(request.read_bytes(), [releases]))
    online.ok("publish", str(signatures))
    assert notary_cli.list_targets(gun, "targets/releases") == {"rel.bin": "ef" * 32}


def test_unsupported_notary_change_refuses_the_whole_import(
    online: Online, notary_cli: NotaryCli, new_gun: Callable[[], str], tmp_path: Path
) -> None:
    gun = new_gun()
    payload = tmp_path / "f.txt"
    payload.write_bytes(b"f\n")
    notary_cli.run("add", gun, "f.txt", str(payload))
    notary_cli.run("delegation", "remove", gun, "targets/qa", "--paths", "x")
    (bad,) = [
        p.name
        for p in changelist_dir(notary_cli.trust_dir, gun).glob("*.change")
        if b"delegation" in p.read_bytes()
    ]
    result = online.sub("import-changelist", gun, "--notary-trust-dir", str(notary_cli.trust_dir))
    assert result.code == 1, result.text
    assert bad in result.err and "removes paths" in result.err
    assert Home(online.home).repository(gun).staged() == ()


def test_missing_changelist_is_one_sentence(online: Online, tmp_path: Path) -> None:
    result = online.run(
        "import-changelist", "example.com/none", "--notary-trust-dir", str(tmp_path)
    )
    assert result.code == 1
    assert "no notary changelist" in result.err


def _change(action: str, role: str, kind: str, path: str, data: object) -> bytes:
    encoded = None if data is None else base64.b64encode(json.dumps(data).encode()).decode()
    doc = {"action": action, "role": role, "type": kind, "path": path, "data": encoded}
    return json.dumps(doc, separators=(",", ":")).encode()


KEY = plain_key("targets/x").key.to_dict()


@pytest.mark.parametrize(
    ("files", "why"),
    [
        (
            [
                (
                    "1.change",
                    _change("create", "root", "role", "snapshot", {"keys": [], "role": "snapshot"}),
                )
            ],
            "root",
        ),
        (
            [
                (
                    "1.change",
                    _change("update", "targets/x", "delegation", "", {"remove_keys": ["ab"]}),
                )
            ],
            "removes keys",
        ),
        (
            [("1.change", _change("update", "targets/x", "delegation", "", {"clear_paths": True}))],
            "clears the paths",
        ),
        (
            [
                (
                    "1.change",
                    _change("update", "targets/*", "delegation", "", {"remove_keys": ["ab"]}),
                )
            ],
            "targets/*",
        ),
        (
            [
                (
                    "1.change",
                    _change(
                        "create", "targets/x", "delegation", "", {"threshold": 1, "add_keys": [KEY]}
                    ),
                )
            ],
            "without paths",
        ),
        (
            [("1.change", _change("create", "targets/x", "delegation", "", {"add_paths": [""]}))],
            "without keys",
        ),
        ([("1.change", b"{not json")], "1.change"),
        ([], "empty"),
    ],
)
def test_translate_refuses(files: list[tuple[str, bytes]], why: str) -> None:
    with pytest.raises(InputRejected) as caught:
        translate(files, NOW)
    assert why in caught.value.message


def test_translate_merges_keys_and_paths_and_keeps_order() -> None:
    meta = {"length": 3, "hashes": {"sha256": base64.b64encode(b"\x01" * 32).decode()}}
    files = [
        (
            "1.change",
            _change("create", "targets/x", "delegation", "", {"threshold": 1, "add_keys": [KEY]}),
        ),
        ("2.change", _change("create", "targets", "target", "a", meta)),
        ("3.change", _change("create", "targets/x", "delegation", "", {"add_paths": ["p/", "q/"]})),
        (
            "4.change",
            _change("create", "targets/x", "target", "p/b", {**meta, "custom": {"z": 1, "a": 2}}),
        ),
        ("5.change", _change("delete", "targets/y", "delegation", "", None)),
        ("6.change", _change("update", "targets/x", "witness", "", None)),
    ]
    changes = translate(files, NOW)
    assert [type(c) for c in changes] == [
        SetDelegation,
        AddTarget,
        AddTarget,
        RemoveDelegation,
        SetExpiry,
    ]
    first = changes[0]
    assert isinstance(first, SetDelegation) and first.paths == ("p/", "q/")
    custom_target = changes[2]
    assert isinstance(custom_target, AddTarget) and custom_target.meta.custom is not None
    assert list(custom_target.meta.custom.value) == ["a", "z"]  # stored sorted (canonical)
    expiry = changes[4]
    assert isinstance(expiry, SetExpiry) and expiry.expires.format() == "2033-01-01T03:04:05Z"
