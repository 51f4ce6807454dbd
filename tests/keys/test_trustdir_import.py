"""`ceremony key import --trust-dir`: keys the REAL notary client wrote, in both layouts.

Each trust dir is made by `notary init -p` against the real server; the old layout
is built by moving those real files into `root_keys/` and `tuf_keys/<gun>/`. A
root key keeps the certificates notary made for it (found in the trust dir's own
`tuf/<gun>/metadata/root.json` cache, or in this machine's trust state): no new
certificate is made.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import pytest

from ceremony.core.documents import PublicKeysDocument
from ceremony.core.keys import canonical_key_id
from ceremony.core.metadata import Key, Root, parse_envelope
from ceremony.offline.trust import TrustState, TrustStore
from ceremony.signing.keyfile import decode_key_file
from ceremony.signing.keystore import KeyStore
from tests.e2e.rig import one_sentence
from tests.keys.conftest import clean_env, run_ceremony
from tests.notary_env import PASSPHRASE, NotaryCli

pytestmark = pytest.mark.notary

ENV = clean_env(
    NOTARY_ROOT_PASSPHRASE=PASSPHRASE,
    NOTARY_TARGETS_PASSPHRASE=PASSPHRASE,
    NOTARY_DELEGATION_PASSPHRASE=PASSPHRASE,
)
HEX64 = re.compile(r"[0-9a-f]{64}")


def notary_keys(cli: NotaryCli, *guns: str) -> dict[tuple[str, str], str]:
    """`notary key list`: (role, GUN or "") -> key id, as the real client lists them.

    notary cuts long GUNs to `...` and their last characters; `guns` resolves them.
    """
    keys: dict[tuple[str, str], str] = {}
    for line in cli.run("key", "list").stdout.splitlines():
        parts = line.split()
        ids = [p for p in parts if HEX64.fullmatch(p)]
        if not parts or parts[0] not in ("root", "targets", "snapshot") or not ids:
            continue
        shown = parts[1] if not HEX64.fullmatch(parts[1]) else ""
        matching = [g for g in guns if shown and g.endswith(shown.removeprefix("..."))]
        keys[(parts[0], matching[0] if len(matching) == 1 else shown)] = ids[0]
    return keys


def root_certificate(cli: NotaryCli, gun: str) -> Key:
    """The root certificate notary put in `gun`'s root.json (its root role's one key)."""
    root = parse_envelope((cli.metadata_dir(gun) / "root.json").read_bytes(), Root).body
    (kid,) = root.roles["root"].keyids
    return root.keys[kid]


def strip_headers(path: Path) -> None:
    """Drop the PEM headers, as the older layouts' files lack them (the body is unchanged)."""
    lines = path.read_bytes().split(b"\n")
    kept = [ln for ln in lines if not ln.startswith((b"role:", b"gun:"))]
    if kept[1] == b"":
        del kept[1]
    path.write_bytes(b"\n".join(kept))


def import_trust_dir(home: Path, trust_dir: Path, code: int = 0) -> list[str]:
    proc = run_ceremony(home, "key", "import", "--trust-dir", str(trust_dir), env=ENV)
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stdout.split()


def test_flat_layout_keeps_identities_and_certificates(
    notary_cli: NotaryCli, new_gun, tmp_path: Path
) -> None:
    gun = new_gun()
    notary_cli.run("init", "-p", gun)
    listed = notary_keys(notary_cli, gun)
    root_id, targets_id = listed[("root", "")], listed[("targets", gun)]
    home = tmp_path / "offline"
    proc = run_ceremony(home, "key", "import", "--trust-dir", str(notary_cli.trust_dir), env=ENV)
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stdout.split()) == sorted([root_id, targets_id])
    assert "snapshot key stays with the trust server" in proc.stderr  # left where it is

    store = KeyStore(home)
    root, targets = store.get(root_id), store.get(targets_id)
    assert root is not None and targets is not None
    assert root.role == "root" and targets.role == "targets"
    assert dict(root.guns) == {
        gun: root_certificate(notary_cli, gun)
    }  # notary's own, byte for byte
    assert dict(targets.guns) == {gun: None}
    for record in (root, targets):
        path = store.file_of(record)
        assert path is not None and path.stat().st_mode & 0o777 == 0o600
        assert decode_key_file(path.read_bytes(), PASSPHRASE).canonical_id == record.canonical_id

    # Exporting for the GUN gives notary's certificate: no new certificate was made.
    out = tmp_path / "public-keys.json"
    exported = run_ceremony(home, "key", "export-public", "--gun", gun, "--out", str(out), env=ENV)
    assert exported.returncode == 0, exported.stderr
    document = PublicKeysDocument.from_bytes(out.read_bytes())
    assert [e.key for e in document.for_role("root")] == [root_certificate(notary_cli, gun)]
    assert [e.canonical_id for e in document.for_role("targets")] == [targets_id]

    # Importing again changes nothing.
    again = run_ceremony(home, "key", "import", "--trust-dir", str(notary_cli.trust_dir), env=ENV)
    assert again.returncode == 0 and "already in the store" in again.stderr
    assert store.get(root_id) == root


@pytest.mark.parametrize("names", ["plain", "suffixed"])
def test_old_layout_from_the_real_files(
    notary_cli: NotaryCli, new_gun, tmp_path: Path, names: str
) -> None:
    """Docker's "Sign an image" layout: role and GUN come from the path, not the headers."""
    gun = new_gun()
    notary_cli.run("init", "-p", gun)
    listed = notary_keys(notary_cli, gun)
    root_id, targets_id = listed[("root", "")], listed[("targets", gun)]
    snapshot_id = listed[("snapshot", gun)]
    old = tmp_path / "docker-trust"
    shutil.copytree(notary_cli.trust_dir / "tuf", old / "tuf")
    private = notary_cli.trust_dir / "private"
    root_keys = old / "private" / "root_keys"
    gun_keys = old / "private" / "tuf_keys" / gun
    root_keys.mkdir(parents=True)
    gun_keys.mkdir(parents=True)
    suffix = names == "suffixed"
    moved_root = root_keys / (f"{root_id}_root.key" if suffix else f"{root_id}.key")
    moved_targets = gun_keys / (f"{targets_id}_targets.key" if suffix else f"{targets_id}.key")
    moved_snapshot = gun_keys / (f"{snapshot_id}_snapshot.key" if suffix else f"{snapshot_id}.key")
    shutil.move(private / f"{root_id}.key", moved_root)
    shutil.move(private / f"{targets_id}.key", moved_targets)
    shutil.move(private / f"{snapshot_id}.key", moved_snapshot)
    if suffix:  # role from the name, GUN from the folder: no headers at all
        for path in (moved_root, moved_targets, moved_snapshot):
            strip_headers(path)
    else:  # role from its header, GUN from the folder
        for path in (moved_targets, moved_snapshot):
            path.write_bytes(
                b"\n".join(
                    ln for ln in path.read_bytes().split(b"\n") if not ln.startswith(b"gun:")
                )
            )
    assert b"gun:" not in moved_targets.read_bytes()

    home = tmp_path / "offline"
    assert sorted(import_trust_dir(home, old)) == sorted([root_id, targets_id])
    store = KeyStore(home)
    root, targets = store.get(root_id), store.get(targets_id)
    assert root is not None and targets is not None
    assert root.role == "root" and dict(root.guns) == {gun: root_certificate(notary_cli, gun)}
    assert targets.role == "targets" and dict(targets.guns) == {gun: None}
    assert store.get(snapshot_id) is None


def test_a_root_key_serving_two_guns_keeps_both_certificates(
    notary_cli: NotaryCli, new_gun, tmp_path: Path
) -> None:
    first, second = new_gun(), new_gun()
    notary_cli.run("init", "-p", first)
    reused = notary_cli.run("init", "-p", second)
    listed = notary_keys(notary_cli, first, second)
    root_id = listed[("root", "")]
    assert f"Root key found, using: {root_id}" in reused.stdout + reused.stderr
    certificates = {gun: root_certificate(notary_cli, gun) for gun in (first, second)}
    assert certificates[first] != certificates[second]  # one key, two certificates
    assert {canonical_key_id(c) for c in certificates.values()} == {root_id}

    home = tmp_path / "offline"
    ids = import_trust_dir(home, notary_cli.trust_dir)
    assert sorted(ids) == sorted([root_id, listed[("targets", first)], listed[("targets", second)]])
    store = KeyStore(home)
    root = store.get(root_id)
    assert root is not None and dict(root.guns) == certificates
    listing = run_ceremony(home, "key", "list", env=ENV).stdout
    block = listing.split(f"id          {root_id}")[1].split("lives in")[0]
    assert f"serves      {first}" in block and f"serves      {second}" in block
    assert block.count("root certificate SHA-256") == 2


def test_certificate_from_this_machines_trust_state(
    notary_cli: NotaryCli, new_gun, tmp_path: Path
) -> None:
    """Without the trust dir's metadata cache, the trust state here supplies the certificate."""
    gun = new_gun()
    notary_cli.run("init", "-p", gun)
    root_id = notary_keys(notary_cli, gun)[("root", "")]
    root_bytes = (notary_cli.metadata_dir(gun) / "root.json").read_bytes()
    home = tmp_path / "offline"
    TrustStore(home).save(TrustState(gun, parse_envelope(root_bytes, Root)), [])
    bare = tmp_path / "bare-trust"
    shutil.copytree(notary_cli.trust_dir / "private", bare / "private")
    import_trust_dir(home, bare)
    record = KeyStore(home).get(root_id)
    assert record is not None and dict(record.guns) == {gun: root_certificate(notary_cli, gun)}


def test_a_root_key_without_any_certificate_says_so(
    notary_cli: NotaryCli, new_gun, tmp_path: Path
) -> None:
    gun = new_gun()
    notary_cli.run("init", "-p", gun)
    root_id = notary_keys(notary_cli, gun)[("root", "")]
    bare = tmp_path / "bare-trust"
    shutil.copytree(notary_cli.trust_dir / "private", bare / "private")
    home = tmp_path / "offline"
    proc = run_ceremony(home, "key", "import", "--trust-dir", str(bare), env=ENV)
    assert proc.returncode == 0, proc.stderr
    assert "no certificate for it was found" in proc.stderr
    record = KeyStore(home).get(root_id)
    assert record is not None and dict(record.guns) == {}  # nothing invented

    # A cache whose root the key did not sign (edited, signatures stripped) pins nothing.
    edited = tmp_path / "edited-trust"
    shutil.copytree(notary_cli.trust_dir, edited)
    cached = edited / "tuf" / gun / "metadata" / "root.json"
    envelope = json.loads(cached.read_bytes())
    for signature in envelope["signatures"]:
        raw = bytearray(base64.b64decode(signature["sig"]))
        raw[0] ^= 1
        signature["sig"] = base64.b64encode(bytes(raw)).decode()
    cached.write_text(json.dumps(envelope, separators=(",", ":")))
    proc = run_ceremony(tmp_path / "third", "key", "import", "--trust-dir", str(edited), env=ENV)
    assert proc.returncode == 0, proc.stderr
    assert "skipped" not in proc.stderr  # the cache was read; its root just is not signed
    assert "no certificate for it was found" in proc.stderr


def test_refusals(notary_cli: NotaryCli, new_gun, tmp_path: Path) -> None:
    home = tmp_path / "offline"
    not_trust = tmp_path / "not-a-trust-dir"
    not_trust.mkdir()
    proc = run_ceremony(home, "key", "import", "--trust-dir", str(not_trust), env=ENV)
    assert proc.returncode == 2 and "no private/ folder" in one_sentence(proc)

    gun = new_gun()
    notary_cli.run("init", "-p", gun)
    listed = notary_keys(notary_cli, gun)
    # A targets key filed under another repository's folder: its header and place disagree.
    moved = tmp_path / "moved"
    shutil.copytree(notary_cli.trust_dir, moved)
    wrong = moved / "private" / "tuf_keys" / "example.com" / "elsewhere"
    wrong.mkdir(parents=True)
    targets_file = moved / "private" / f"{listed[('targets', gun)]}.key"
    shutil.move(targets_file, wrong / targets_file.name)
    proc = run_ceremony(home, "key", "import", "--trust-dir", str(moved), env=ENV)
    assert proc.returncode == 1 and "lies in the folder of" in one_sentence(proc)

    # A wrong passphrase: one sentence, no key stored.
    wrong_env = dict(ENV, NOTARY_ROOT_PASSPHRASE="not-the-passphrase")
    proc = run_ceremony(
        tmp_path / "other", "key", "import", "--trust-dir", str(notary_cli.trust_dir), env=wrong_env
    )
    assert proc.returncode == 1, proc.stderr
    one_sentence(proc)
    assert PASSPHRASE not in proc.stderr and "not-the-passphrase" not in proc.stderr
    assert not list((tmp_path / "other").glob("private/*.key"))

    # No passphrase and no terminal: aborted (exit 4), never a hang.
    proc = run_ceremony(
        tmp_path / "third", "key", "import", "--trust-dir", str(notary_cli.trust_dir)
    )
    assert proc.returncode == 4 and "NOTARY_" in one_sentence(proc)
    assert json.dumps(proc.stdout) == '""'
