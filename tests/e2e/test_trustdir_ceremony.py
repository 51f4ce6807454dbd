"""An existing DCT repository, made by the real notary client, moves its keys offline.

The keys come from the notary trust dir (`ceremony key import --trust-dir`), are
removed from it, and a ceremony signed with them publishes to the real server;
the real notary client lists the result next to what it published itself.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ceremony.signing.keyfile import read_key_file_headers
from tests.e2e.rig import Rig, expect_keys, full_ceremony, stage_text_target
from tests.notary_env import NotaryCli, NotaryServer

pytestmark = pytest.mark.notary


def test_imported_keys_sign_a_ceremony_the_notary_client_lists(
    notary_server: NotaryServer, notary_cli: NotaryCli, new_gun, tmp_path: Path
) -> None:
    gun = new_gun()
    rig = Rig(notary_server, tmp_path, gun)
    first = tmp_path / "first.txt"
    first.write_bytes(b"published by notary\n")
    notary_cli.run("init", "-p", gun)
    notary_cli.run(
        "key", "rotate", gun, "snapshot", "-r"
    )  # as docker does: the server signs snapshots
    notary_cli.run("add", "-p", gun, "first", str(first))

    imported = rig.run("ceremony", "key", "import", "--trust-dir", str(notary_cli.trust_dir))
    ids = imported.stdout.split()
    private = notary_cli.trust_dir / "private"
    roles = {read_key_file_headers((private / f"{i}.key").read_bytes()).role: i for i in ids}
    assert set(roles) == {"root", "targets"}
    for key_id in ids:  # the online machine keeps no private key any more
        (private / f"{key_id}.key").unlink()
    assert not list(private.glob("*.key"))

    stage_text_target(rig, "second", "signed offline\n")
    root_fp = rig.run("ceremony", "key", "fingerprint", roles["root"]).stdout.strip()
    # First contact with an existing repository: its root key, confirmed by fingerprint.
    full_ceremony(rig, "move", gun, *expect_keys(root_fp))

    listed = notary_cli.list_targets(gun)
    assert listed == {
        "first": hashlib.sha256(b"published by notary\n").hexdigest(),
        "second": hashlib.sha256(b"signed offline\n").hexdigest(),
    }
