"""Ceremonies beyond the first: delegations, root rotation and a keyholder's first contact.

Every signature here is made by the real `ceremony` CLI from keys in an offline
home, and every result is checked with the real `notary` client.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from tests.e2e.rig import export_change, new_key, offline_delegation, one_sentence, publish_new
from tests.notary_env import NotaryCli, NotaryServer


def test_delegation_key_held_offline_signs_a_release(
    notary_server: NotaryServer, notary_cli: NotaryCli, new_gun, tmp_path: Path
) -> None:
    rig = publish_new(notary_server, tmp_path, new_gun())
    offline_delegation(rig, "rel-")

    (tmp_path / "rel.bin").write_bytes(b"release one\n")
    rig.run(
        "ceremony-online",
        "add",
        rig.gun,
        "rel-1",
        str(tmp_path / "rel.bin"),
        "--role",
        "targets/releases",
    )
    request = tmp_path / "release.request.json"
    rig.run("ceremony-online", "export", rig.gun, "--out", str(request))
    review = rig.run("ceremony", "review", str(request), "--full").stdout
    assert "targets/releases: new -> v1" in review and "+ target rel-1" in review
    rig.run("ceremony", "sign", str(request), "--out", str(tmp_path / "release.sig"), "--yes")
    rig.run("ceremony-online", "publish", str(tmp_path / "release.sig"))
    listed = notary_cli.list_targets(rig.gun, role="targets/releases")
    assert listed == {"rel-1": hashlib.sha256(b"release one\n").hexdigest()}

    # A target outside the delegated paths is refused when staged for export.
    rig.run(
        "ceremony-online",
        "add",
        rig.gun,
        "other",
        str(tmp_path / "rel.bin"),
        "--role",
        "targets/releases",
    )
    proc = rig.run(
        "ceremony-online", "export", rig.gun, "--out", str(tmp_path / "bad.json"), code=1
    )
    assert "outside the paths" in one_sentence(proc)


def test_root_rotation_signed_offline_by_old_and_new_keys(
    notary_server: NotaryServer, notary_cli: NotaryCli, new_gun, tmp_path: Path
) -> None:
    rig = publish_new(notary_server, tmp_path, new_gun())
    assert "a" in notary_cli.list_targets(rig.gun)  # the client now caches root v1
    _, pub = new_key(rig, "root")
    rig.run("ceremony-online", "rotate", rig.gun, "root", "--public-keys", str(pub))
    request = tmp_path / "rotate.request.json"
    rig.run("ceremony-online", "export", rig.gun, "--out", str(request))
    review = rig.run("ceremony", "review", str(request), "--full").stdout
    assert "root: v1 -> v2" in review
    assert review.count("must be signed by") == 2  # the new root's keys and the old root's
    assert "--accept root" in review
    rig.run(
        "ceremony",
        "sign",
        str(request),
        "--out",
        str(tmp_path / "rotate.sig"),
        "--yes",
        "--accept",
        "root",
    )
    rig.run("ceremony-online", "publish", str(tmp_path / "rotate.sig"))

    # The real client that trusted root v1 follows to v2; the offline half chains to it too.
    export = export_change(rig, "after-rotation")
    assert (
        "chains from root v1 held on this machine to root v2"
        in rig.run("ceremony", "review", str(export)).stdout
    )
    rig.run("ceremony", "sign", str(export), "--out", str(tmp_path / "after.sig"), "--yes")
    rig.run("ceremony-online", "publish", str(tmp_path / "after.sig"))
    listed = notary_cli.list_targets(rig.gun)
    assert set(listed) == {"a", "after-rotation"}
    root = notary_cli.metadata_dir(rig.gun) / "root.json"
    assert '"version":2' in root.read_text()

    # A machine meeting the repository for the first time sees both root keys (root v1's,
    # trusted on first use, and the current v2's it chains to) and may confirm either.
    carol = rig.offline(tmp_path / "carol")
    later = export_change(rig, "later")
    review = rig.run_env(carol, "ceremony", "review", str(later)).stdout
    prints = re.findall(r"root v\d+ key ([0-9a-f]{64})", review)
    assert len(prints) == 2 and prints[0] != prints[1]
    newest = rig.run_env(
        carol,
        "ceremony",
        "sign",
        str(later),
        "--out",
        str(tmp_path / "c.sig"),
        "--yes",
        "--trust-root",  # the old name of --expect-key
        prints[1],
        code=1,
    )
    assert "holds none of the keys" in one_sentence(newest)  # the fingerprint was accepted


def test_second_keyholder_trusts_the_root_on_first_use(
    notary_server: NotaryServer, notary_cli: NotaryCli, new_gun, tmp_path: Path
) -> None:
    rig = publish_new(notary_server, tmp_path, new_gun())
    # Bob gets a copy of the targets key (e.g. from a backup) but has never seen this repository.
    bob = rig.offline(tmp_path / "bob")
    private = Path(rig.env["CEREMONY_HOME"]) / "private"
    for key_file in private.glob("*.key"):
        if "role: targets" in key_file.read_text():
            rig.run_env(bob, "ceremony", "key", "import", str(key_file))
    request = export_change(rig, "b")
    review = rig.run_env(bob, "ceremony", "review", str(request)).stdout
    assert "FIRST CONTACT" in review
    fingerprint = re.search(r"root v1 key ([0-9a-f]{64})", review)
    assert fingerprint is not None
    out = tmp_path / "bob.sig"

    no_tty = rig.run_env(bob, "ceremony", "sign", str(request), "--out", str(out), "--yes", code=1)
    assert "--expect-key" in one_sentence(no_tty) and not out.exists()
    wrong = rig.run_env(
        bob,
        "ceremony",
        "sign",
        str(request),
        "--out",
        str(out),
        "--yes",
        "--trust-root",
        "0" * 64,
        code=1,
    )
    assert "fingerprint" in one_sentence(wrong) and not out.exists()
    rig.run_env(
        bob,
        "ceremony",
        "sign",
        str(request),
        "--out",
        str(out),
        "--yes",
        "--trust-root",
        fingerprint.group(1),
    )
    rig.run("ceremony-online", "publish", str(out))
    assert "b" in notary_cli.list_targets(rig.gun)

    # From now on Bob's machine chains to that root without being asked again.
    later = export_change(rig, "c")
    assert "chains to root v1" in rig.run_env(bob, "ceremony", "review", str(later)).stdout
