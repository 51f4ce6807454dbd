"""`ceremony-online` end to end against a real notary-server, checked with the real notary client."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ceremony.core.changes import SetExpiry
from ceremony.core.documents import Request
from ceremony.core.gotime import GoTime
from ceremony.core.metadata import Root, parse_envelope
from online.home import Home
from tests.notary_env import NotaryCli, NotaryServer, free_port
from tests.online.signer_util import (
    Online,
    cert_key,
    plain_key,
    root_key,
    sign_request,
    sign_with_foreign_key,
    write_public_keys,
)

pytestmark = pytest.mark.notary


@pytest.fixture
def online(notary_server: NotaryServer, tmp_path: Path) -> Online:
    return Online(tmp_path / "online-home", notary_server.url, notary_server.ca)


def _target(directory: Path, name: str, content: bytes) -> tuple[Path, str]:
    path = directory / name.replace("/", "_")
    path.write_bytes(content)
    return path, hashlib.sha256(content).hexdigest()


def test_init_add_publish_and_the_notary_client_lists_it(
    online: Online, notary_cli: NotaryCli, new_gun: Callable[[], str], tmp_path: Path
) -> None:
    gun = new_gun()
    root, targets = root_key(gun), plain_key("targets")
    keys = write_public_keys(tmp_path / "keys.json", gun, [root, targets])

    staged = online.sub("init", gun, "--public-keys", str(keys))
    assert staged.code == 0, staged.text
    assert "initialise the repository" in staged.out
    request = tmp_path / "init.request.json"
    exported = online.sub("export", gun, "--out", str(request))
    assert exported.code == 0, exported.text
    parsed = Request.from_bytes(request.read_bytes())
    assert f"request: {parsed.id}" in exported.out and parsed.digest in exported.out
    assert {e.role for e in parsed.expect} == {"root", "targets"}
    signatures = tmp_path / "init.signatures.json"
    signatures.write_bytes(sign_request(request.read_bytes(), [root, targets]))
    published = online.sub("publish", str(signatures))
    assert published.code == 0, published.text
    assert "Published request" in published.out
    assert notary_cli.list_targets(gun) == {}

    expected = {}
    for name in ("app.tar.gz", "docs/readme.txt", "v1.2.3"):
        path, digest = _target(tmp_path, name, f"content of {name}\n".encode())
        online.ok("add", gun, name, str(path))
        expected[name] = digest
    online.publish_staged(gun, tmp_path, [targets])
    assert notary_cli.list_targets(gun) == expected

    status = online.ok("status", gun)
    assert "Staged changes: 0" in status.out
    assert "published" in status.out
    assert root.key_id in status.out and targets.key_id in status.out
    assert "WARNING" not in status.out

    # Nothing the online half wrote holds a private key (it never has one).
    for path in online.home.rglob("*"):
        if path.is_file():
            assert b"PRIVATE KEY" not in path.read_bytes(), path


def test_delegation_and_a_target_signed_by_the_delegation_key(
    online: Online, notary_cli: NotaryCli, new_gun: Callable[[], str], tmp_path: Path
) -> None:
    gun = new_gun()
    root, targets = root_key(gun), plain_key("targets")
    releases = cert_key("targets/releases")
    online.create(gun, tmp_path, root, targets)

    cert = tmp_path / "releases.crt"
    cert.write_bytes(releases.public_pem())
    online.ok("delegation", "add", gun, "targets/releases", "--cert", str(cert), "--all-paths")
    online.publish_staged(gun, tmp_path, [targets])

    path, digest = _target(tmp_path, "release.bin", b"released bits\n")
    online.ok("add", gun, "release.bin", str(path), "--role", "targets/releases")
    request = tmp_path / "rel.request.json"
    online.ok("export", gun, "--out", str(request))
    assert [e.role for e in Request.from_bytes(request.read_bytes()).expect] == ["targets/releases"]
    signatures = tmp_path / "rel.signatures.json"
    signatures.write_bytes(sign_request(request.read_bytes(), [releases]))
    online.ok("publish", str(signatures))

    assert notary_cli.list_targets(gun, "targets/releases") == {"release.bin": digest}
    status = online.ok("status", gun)
    assert "targets/releases" in status.out and releases.key_id in status.out


def test_delegation_remove_after_it_signed(
    online: Online, notary_cli: NotaryCli, new_gun: Callable[[], str], tmp_path: Path
) -> None:
    gun = new_gun()
    root, targets, releases = root_key(gun), plain_key("targets"), plain_key("targets/releases")
    online.create(gun, tmp_path, root, targets)
    cert = tmp_path / "releases.pem"
    cert.write_bytes(releases.public_pem())
    online.ok("delegation", "add", gun, "targets/releases", "--cert", str(cert), "--path", "rel/")
    online.ok("add", gun, "top.txt", "--sha256", "aa" * 32, "--length", "1")
    online.publish_staged(gun, tmp_path, [targets])
    online.ok(
        "add", gun, "rel/x", "--sha256", "bb" * 32, "--length", "2", "--role", "targets/releases"
    )
    online.publish_staged(gun, tmp_path, [releases])
    online.ok("delegation", "remove", gun, "targets/releases")
    online.ok("remove", gun, "top.txt")
    online.publish_staged(gun, tmp_path, [targets])
    assert notary_cli.list_targets(gun) == {}
    status = online.ok("status", gun).out
    assert "note: the snapshot still lists targets/releases" in status


def test_named_refresh_needs_no_server(
    online: Online, new_gun: Callable[[], str], tmp_path: Path
) -> None:
    gun = new_gun()
    result = online.run("refresh", gun, "--role", "targets", "--role", "root", url="")
    assert result.code == 0, result.text
    changes = [s.change for s in Home(online.home).repository(gun).staged()]
    assert [(c.role, type(c)) for c in changes] == [("targets", SetExpiry), ("root", SetExpiry)]  # type: ignore[union-attr]


def test_root_rotation_is_followed_by_a_client_holding_the_old_root(
    online: Online, notary_cli: NotaryCli, new_gun: Callable[[], str], tmp_path: Path
) -> None:
    gun = new_gun()
    old_root, targets = root_key(gun), plain_key("targets")
    online.create(gun, tmp_path, old_root, targets)
    path, digest = _target(tmp_path, "a.txt", b"a\n")
    online.ok("add", gun, "a.txt", str(path))
    online.publish_staged(gun, tmp_path, [targets])
    assert notary_cli.list_targets(gun) == {"a.txt": digest}  # the client caches root v1

    new_root = root_key(gun)
    keys = write_public_keys(tmp_path / "new-root.json", gun, [new_root])
    online.ok("rotate", gun, "root", "--public-keys", str(keys))
    request = tmp_path / "rotate.request.json"
    online.ok("export", gun, "--out", str(request))
    parsed = Request.from_bytes(request.read_bytes())
    (root_expect,) = parsed.expect
    assert len(root_expect.signers) == 2  # the new root keys and the previous ones

    only_new = tmp_path / "new-only.signatures.json"
    only_new.write_bytes(sign_request(request.read_bytes(), [new_root]))
    short_of_old = online.run("publish", str(only_new))
    assert short_of_old.code == 1
    assert "previous root keys" in short_of_old.err and old_root.key_id in short_of_old.err
    only_old = tmp_path / "old-only.signatures.json"
    only_old.write_bytes(sign_request(request.read_bytes(), [old_root]))
    assert online.run("publish", str(only_old)).code == 0  # combined with the kept one

    assert notary_cli.list_targets(gun) == {"a.txt": digest}
    cached = notary_cli.metadata_dir(gun) / "root.json"
    root_body = parse_envelope(cached.read_bytes(), Root).body
    assert root_body.version == 2
    assert root_body.roles["root"].keyids == (new_root.key_id,)


def test_two_of_two_targets_threshold(
    online: Online, notary_cli: NotaryCli, new_gun: Callable[[], str], tmp_path: Path
) -> None:
    gun = new_gun()
    root, alice, bob = root_key(gun), plain_key("targets"), plain_key("targets")
    keys = write_public_keys(tmp_path / "keys.json", gun, [root, alice, bob])
    online.ok("init", gun, "--public-keys", str(keys))
    online.publish_staged(gun, tmp_path, [root, alice, bob])

    path, digest = _target(tmp_path, "two.txt", b"two keys\n")
    online.ok("add", gun, "two.txt", str(path))
    request = tmp_path / "two.request.json"
    online.ok("export", gun, "--out", str(request))
    by_alice = tmp_path / "alice.signatures.json"
    by_alice.write_bytes(sign_request(request.read_bytes(), [alice]))
    by_bob = tmp_path / "bob.signatures.json"
    by_bob.write_bytes(sign_request(request.read_bytes(), [bob]))
    stranger = plain_key("targets")
    by_stranger = tmp_path / "stranger.signatures.json"
    by_stranger.write_bytes(sign_with_foreign_key(request.read_bytes(), "targets", stranger))

    alone = online.sub("publish", str(by_alice))
    assert alone.code == 1, alone.text
    assert "targets needs 1 more signature, from one of: " + bob.key_id in alone.err
    assert "Traceback" not in alone.err
    assert len([ln for ln in alone.err.splitlines() if ln.startswith("error:")]) == 1

    foreign = online.sub("publish", str(by_stranger))
    assert foreign.code == 1, foreign.text
    assert stranger.key_id in foreign.err

    status = online.ok("status", gun)
    assert "targets: 1 of 2 signatures" in status.out

    done = online.sub("publish", str(by_bob))  # alice's document was kept by the first attempt
    assert done.code == 0, done.text
    assert notary_cli.list_targets(gun) == {"two.txt": digest}
    again = online.run("publish", str(by_bob))
    assert again.code == 0 and "already published" in again.out


def test_stale_request_is_refused_and_nothing_is_lost(
    online: Online,
    notary_server: NotaryServer,
    notary_cli: NotaryCli,
    new_gun: Callable[[], str],
    tmp_path: Path,
) -> None:
    gun = new_gun()
    root, targets = root_key(gun), plain_key("targets")
    online.create(gun, tmp_path, root, targets)
    path, digest = _target(tmp_path, "mine.txt", b"mine\n")
    online.ok("add", gun, "mine.txt", str(path))
    signatures = online.export_and_sign(gun, tmp_path, [targets])

    # Another online machine publishes a change to the same repository first.
    other = Online(tmp_path / "other-home", notary_server.url, notary_server.ca)
    other.ok("add", gun, "theirs.txt", "--sha256", "ab" * 32, "--length", "5")
    other.publish_staged(gun, tmp_path, [targets])

    stale = online.sub("publish", str(signatures))
    assert stale.code == 1, stale.text
    assert "the server moved" in stale.err.lower() and "targets is now v2" in stale.err
    assert "re-export" in stale.err
    repo = Home(online.home).repository(gun)
    assert [s.change.name for s in repo.staged()] == ["mine.txt"]  # type: ignore[union-attr]
    (record,) = [r for r in repo.records() if r.published is None]
    assert len(repo.signatures(record.id)) == 1

    online.publish_staged(gun, tmp_path, [targets])
    assert notary_cli.list_targets(gun) == {"mine.txt": digest, "theirs.txt": "ab" * 32}


def test_dead_server_then_the_same_signatures_publish(
    online: Online, notary_cli: NotaryCli, new_gun: Callable[[], str], tmp_path: Path
) -> None:
    gun = new_gun()
    root, targets = root_key(gun), plain_key("targets")
    online.create(gun, tmp_path, root, targets)
    path, digest = _target(tmp_path, "later.txt", b"later\n")
    online.ok("add", gun, "later.txt", str(path))
    signatures = online.export_and_sign(gun, tmp_path, [targets])

    dead = f"https://127.0.0.1:{free_port()}"
    down = online.sub("publish", str(signatures), url=dead)
    assert down.code == 3, down.text
    assert "Traceback" not in down.err and "connection refused" in down.err
    assert online.sub("export", gun, "--out", str(tmp_path / "x.json"), url=dead).code == 3
    status = online.run("status", gun, url=dead)
    assert status.code == 3 and "later.txt" in status.out  # the local state is still shown
    assert len(Home(online.home).repository(gun).staged()) == 1

    back = online.sub("publish", str(signatures))
    assert back.code == 0, back.text
    assert notary_cli.list_targets(gun) == {"later.txt": digest}
    assert Home(online.home).repository(gun).staged() == ()


def test_expiring_role_is_flagged_and_refreshed(
    online: Online, new_gun: Callable[[], str], tmp_path: Path
) -> None:
    gun = new_gun()
    root, targets = root_key(gun), plain_key("targets")
    online.create(gun, tmp_path, root, targets)
    soon = GoTime.from_datetime(datetime.now(UTC) + timedelta(days=30))
    Home(online.home).repository(gun).stage([SetExpiry("targets", soon)])
    online.publish_staged(gun, tmp_path, [targets])

    status = online.ok("status", gun)
    (line,) = [ln for ln in status.out.splitlines() if ln.strip().startswith("targets ")]
    assert "WARNING" in line

    refreshed = online.ok("refresh", gun)
    assert "set targets to expire" in refreshed.out
    online.publish_staged(gun, tmp_path, [targets])
    assert "WARNING" not in online.ok("status", gun).out


def test_bulk_add_of_twenty_thousand_targets_is_one_write(
    online: Online, new_gun: Callable[[], str], tmp_path: Path
) -> None:
    gun = new_gun()
    listing = tmp_path / "targets.txt"
    lines = [
        f"pkg/{i:05d}.tar {hashlib.sha256(str(i).encode()).hexdigest()} {i * 7}"
        for i in range(20_000)
    ]
    listing.write_text("# name sha256 length\n" + "\n".join(lines) + "\n")
    result = online.run("add", gun, "--from", str(listing))  # timings: bench/scale.py
    assert result.code == 0, result.text
    repo = Home(online.home).repository(gun)
    staged = repo.staged()
    assert len(staged) == 20_000
    assert [p.name for p in repo.path.iterdir() if not p.name.startswith(".")] == ["staged.json"]
    assert staged[123].change.name == "pkg/00123.tar"  # type: ignore[union-attr]


def test_bulk_add_with_a_bad_line_stages_nothing(
    online: Online, new_gun: Callable[[], str], tmp_path: Path
) -> None:
    gun = new_gun()
    listing = tmp_path / "targets.txt"
    good = f"ok {'0' * 64} 1"
    listing.write_text(f"{good}\n{good}\nbroken {'0' * 63} 1\n")
    result = online.sub("add", gun, "--from", str(listing))
    assert result.code == 1, result.text
    assert "Line 3" in result.err and "nothing was staged" in result.err
    assert Home(online.home).repository(gun).staged() == ()


def test_usage_errors_exit_2(online: Online, new_gun: Callable[[], str], tmp_path: Path) -> None:
    gun = new_gun()
    assert online.run("add", gun, "x", "--sha256", "ab" * 32).code == 2  # no --length
    assert online.run("add", gun, "x", "--role", "releases", "--sha256", "ab" * 32).code == 2
    assert online.run("export", "bad gun*", "--out", str(tmp_path / "r")).code == 1  # GUN rule
    no_server = online.sub("export", gun, "--out", str(tmp_path / "r"), url="")
    assert no_server.code == 2, no_server.text


def test_custom_data_must_be_a_json_object(online: Online, new_gun: Callable[[], str]) -> None:
    gun = new_gun()
    args = ("add", gun, "x", "--sha256", "ab" * 32, "--length", "1", "--custom")
    assert online.run(*args, "[1, 2]").code == 1
    assert online.run(*args, '{"a": "<b>"}').code == 1
    assert online.run(*args, "{not json").code == 2
    assert Home(online.home).repository(gun).staged() == ()


def test_custom_data_is_staged_sorted_and_notary_verifies_it(
    online: Online, notary_cli: NotaryCli, new_gun: Callable[[], str], tmp_path: Path
) -> None:
    gun = new_gun()
    root, targets = root_key(gun), plain_key("targets")
    online.create(gun, tmp_path, root, targets)
    custom = '{"z": 1, "a": {"y": 2, "b": "q"}}'
    online.ok("add", gun, "x", "--sha256", "ab" * 32, "--length", "1", "--custom", custom)
    (staged,) = Home(online.home).repository(gun).staged()
    meta = staged.change.meta  # type: ignore[union-attr]
    assert meta.custom is not None
    assert json.dumps(meta.custom.value, separators=(",", ":")) == '{"a":{"b":"q","y":2},"z":1}'
    online.publish_staged(gun, tmp_path, [targets])
    assert notary_cli.list_targets(gun) == {"x": "ab" * 32}
