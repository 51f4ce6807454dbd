"""`signer remove` reads the state the next export would produce (published + staged), removes
only what it should, and says why it refuses; against the real notary-server."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ceremony.core.changes import RemoveDelegation, UpdateDelegation
from ceremony.core.keys import key_fingerprint
from online.home import Home
from tests.notary_env import NotaryServer
from tests.online import signer_util
from tests.online.signer_util import Online, plain_key, root_key

pytestmark = pytest.mark.notary


@pytest.fixture
def online(notary_server: NotaryServer, tmp_path: Path) -> Online:
    return Online(tmp_path / "online-home", notary_server.url, notary_server.ca)


def _pem(tmp: Path, name: str, key: signer_util.TestKey) -> str:
    path = tmp / f"{name}.pub"
    path.write_bytes(key.public_pem())
    return str(path)


def _delegations(online: Online, gun: str) -> dict[str, list[str]]:
    listed = json.loads(online.ok("delegation", "list", gun, "--json").out)
    return {d["role"]: [k["id"] for k in d["keys"]] for d in listed["delegations"]}


def test_removing_one_key_a_shared_key_and_the_last_signer(
    online: Online, new_gun: Callable[[], str], tmp_path: Path
) -> None:
    gun = new_gun()
    targets = plain_key("targets")
    online.create(gun, tmp_path, root_key(gun), targets)
    k1, k2, shared = plain_key("a"), plain_key("b"), plain_key("c")
    online.ok("signer", "add", gun, "ci", "--key", _pem(tmp_path, "k1", k1), "--key",
              _pem(tmp_path, "k2", k2))  # fmt: skip
    online.ok("signer", "add", gun, "ops", "--key", _pem(tmp_path, "shared", shared))
    online.ok("signer", "add", gun, "dev", "--key", _pem(tmp_path, "shared", shared))
    online.publish_staged(gun, tmp_path, [targets])
    assert _delegations(online, gun) == {
        "targets/ci": [k1.key_id, k2.key_id],
        "targets/dev": [shared.key_id],
        "targets/ops": [shared.key_id],
        "targets/releases": [k1.key_id, k2.key_id, shared.key_id],
    }

    # One key of ci (named by fingerprint): ci keeps the other; nothing is deleted.
    online.ok("signer", "remove", gun, "ci", "--key", key_fingerprint(k1.key)[:16])
    # ops shares its key with dev: the key stays in releases while dev holds it.
    shared_out = online.ok("signer", "remove", gun, "ops")
    assert "stays in targets/releases" in shared_out.err
    staged = [s.change for s in Home(online.home).repository(gun).staged()]
    assert staged == [
        UpdateDelegation("targets/releases", remove_keys=(k1.key_id,)),
        UpdateDelegation("targets/ci", remove_keys=(k1.key_id,)),
        RemoveDelegation("targets/ops"),
    ]
    online.publish_staged(gun, tmp_path, [targets])
    assert _delegations(online, gun) == {
        "targets/ci": [k2.key_id],
        "targets/dev": [shared.key_id],
        "targets/releases": [k2.key_id, shared.key_id],
    }

    # The last signer of releases: refused, unless releases goes too.
    online.ok("signer", "remove", gun, "ci")
    refused = online.run("signer", "remove", gun, "dev")  # sees ci's staged removal
    assert refused.code == 1 and "--remove-releases" in refused.err
    online.ok("signer", "remove", gun, "dev", "--remove-releases")
    online.publish_staged(gun, tmp_path, [targets])
    assert _delegations(online, gun) == {}
    assert "publishes no delegation" in online.ok("delegation", "list", gun).out


def test_a_signer_added_and_not_yet_published_can_be_removed_again(
    online: Online, new_gun: Callable[[], str], tmp_path: Path
) -> None:
    gun = new_gun()
    targets = plain_key("targets")
    online.create(gun, tmp_path, root_key(gun), targets)
    first, second = plain_key("a"), plain_key("b")
    online.ok("signer", "add", gun, "first", "--key", _pem(tmp_path, "a", first))
    online.ok("signer", "add", gun, "second", "--key", _pem(tmp_path, "b", second))
    online.ok("signer", "remove", gun, "second")
    online.publish_staged(gun, tmp_path, [targets])
    assert _delegations(online, gun) == {
        "targets/first": [first.key_id],
        "targets/releases": [first.key_id],
    }
    missing = online.run("delegation", "list", "example.com/signers/never-made")
    assert missing.code == 1 and "does not exist" in missing.err
