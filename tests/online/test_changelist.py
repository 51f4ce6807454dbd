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
    SetExpiry,
    UpdateDelegation,
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
    assert [type(c) for c in staged] == [AddTarget, RemoveTarget, UpdateDelegation, SetExpiry]
    delegation = staged[2]
    assert isinstance(delegation, UpdateDelegation)
    assert delegation.add_paths == ("",) and delegation.paths_if_new == ("",)
    assert [k.key_id for k in delegation.add_keys] == [releases.key_id]  # ecdsa-x509, as notary

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
                        "create", "targets/x", "delegation", "", {"threshold": 2, "add_keys": [KEY]}
                    ),
                )
            ],
            "threshold 2",
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
        UpdateDelegation,
        AddTarget,
        AddTarget,
        RemoveDelegation,
        SetExpiry,
    ]
    first = changes[0]
    assert isinstance(first, UpdateDelegation) and first.add_paths == ("p/", "q/")
    assert first.paths_if_new == ("p/", "q/") and first.add_keys[0].to_dict() == KEY
    custom_target = changes[2]
    assert isinstance(custom_target, AddTarget) and custom_target.meta.custom is not None
    assert list(custom_target.meta.custom.value) == ["a", "z"]  # stored sorted (canonical)
    expiry = changes[4]
    assert isinstance(expiry, SetExpiry) and expiry.expires.format() == "2033-01-01T03:04:05Z"


def test_keys_alone_or_paths_alone_import_as_an_update_of_an_existing_delegation() -> None:
    files = [
        (
            "1.change",
            _change("create", "targets/x", "delegation", "", {"threshold": 1, "add_keys": [KEY]}),
        ),
        ("2.change", _change("create", "targets/y", "delegation", "", {"add_paths": ["p/"]})),
    ]
    keys_only, paths_only = translate(files, NOW)
    assert isinstance(keys_only, UpdateDelegation) and isinstance(paths_only, UpdateDelegation)
    assert keys_only.role == "targets/x" and keys_only.add_keys[0].to_dict() == KEY
    assert not keys_only.add_paths and keys_only.paths_if_new is None  # the role must exist
    assert paths_only.add_paths == ("p/",) and not paths_only.add_keys
    assert paths_only.paths_if_new is None


def test_notary_adding_a_key_and_a_path_to_an_existing_delegation_imports_as_an_update(
    online: Online, notary_cli: NotaryCli, new_gun: Callable[[], str], tmp_path: Path
) -> None:
    gun = new_gun()
    root, targets = root_key(gun), plain_key("targets")
    first, second = plain_key("targets/releases"), plain_key("targets/releases")
    online.create(gun, tmp_path, root, targets)
    pems = []
    for i, k in enumerate((first, second)):
        pem = tmp_path / f"k{i}.pem"
        pem.write_bytes(k.public_pem())
        pems.append(pem)
    online.ok("delegation", "add", gun, "targets/releases", "--cert", str(pems[0]), "--path", "a/")
    online.publish_staged(gun, tmp_path, [targets])

    # What `notary delegation add` writes for an existing role: keys alone, then paths alone.
    notary_cli.run("delegation", "add", gun, "targets/releases", str(pems[1]))
    notary_cli.run("delegation", "add", gun, "targets/releases", "--paths", "b/")
    imported = online.sub("import-changelist", gun, "--notary-trust-dir", str(notary_cli.trust_dir))
    assert imported.code == 0, imported.text
    staged = [s.change for s in Home(online.home).repository(gun).staged()]
    assert len(staged) == 1 and isinstance(staged[0], UpdateDelegation)
    online.publish_staged(gun, tmp_path, [targets])

    listed = online.ok("delegation", "list", gun, "--json")
    (releases,) = json.loads(listed.out)["delegations"]
    assert releases["paths"] == ["a/", "b/"]  # added to, not replaced
    assert [k["id"] for k in releases["keys"]] == [first.key_id, second.key_id]
    assert releases["threshold"] == 1
