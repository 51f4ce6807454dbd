"""Signers and delegations as Docker users know them, through both real CLIs, the real
notary-server and the real `notary` client signing with the delegated keys."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ceremony.core.keys import key_fingerprint, key_from_pem
from tests.e2e.rig import Rig, expect_keys, one_sentence
from tests.e2e.test_ceremony_cli import publish_new
from tests.notary_env import NotaryCli, NotaryServer

pytestmark = pytest.mark.notary


@pytest.fixture
def published(notary_server: NotaryServer, new_gun, tmp_path: Path) -> Rig:
    return publish_new(notary_server, tmp_path, new_gun())


def signer_key(rig: Rig, name: str) -> tuple[Path, Path, str]:
    """A signer's key pair as a signer makes it on their own machine (PKCS#8 private key,
    bare public key with Docker's `role:` header), and its fingerprint."""
    private, public = rig.tmp / f"{name}.key", rig.tmp / f"{name}.pub"
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-out", str(private)],
        check=True, capture_output=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    pem = subprocess.run(
        ["openssl", "pkey", "-in", str(private), "-pubout"],
        check=True, capture_output=True, stdin=subprocess.DEVNULL,
    ).stdout  # fmt: skip
    begin = b"-----BEGIN PUBLIC KEY-----\n"
    public.write_bytes(pem.replace(begin, begin + f"role: {name}\n\n".encode()))
    return private, public, key_fingerprint(key_from_pem(public.read_bytes()))


def ceremony(rig: Rig, name: str, *acknowledge: str) -> str:
    """Export, review (returning the `!` lines), sign offline with the acknowledgements,
    publish."""
    request, signatures = rig.tmp / f"{name}.request.json", rig.tmp / f"{name}.sig"
    rig.run("ceremony-online", "export", rig.gun, "--out", str(request))
    review = rig.run("ceremony", "review", str(request), "--full").stdout
    refused = rig.run(
        "ceremony", "sign", str(request), "--out", str(signatures), "--yes", code=1
    )  # --yes never acknowledges a change to who can sign
    assert "--accept" in refused.stderr or "--expect-key" in refused.stderr, refused.stderr
    pairs = list(zip(acknowledge[::2], acknowledge[1::2], strict=True))
    accepts = [arg for flag, value in pairs if flag == "--accept" for arg in (flag, value)]
    if len(accepts) < len(acknowledge):  # keys to confirm: accepting the roles is not enough
        unconfirmed = rig.run(
            "ceremony", "sign", str(request), "--out", str(signatures), "--yes", *accepts, code=1
        )
        assert "--expect-key" in unconfirmed.stderr, unconfirmed.stderr
    rig.run("ceremony", "sign", str(request), "--out", str(signatures), "--yes", *acknowledge)
    rig.run("ceremony-online", "publish", str(signatures))
    return "\n".join(line for line in review.splitlines() if line.startswith("! "))


def notary_sign(
    cli: NotaryCli, gun: str, role: str, name: str, content: bytes, tmp: Path, *, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """The real notary client adds a target to `role` and publishes it."""
    payload = tmp / f"{name.replace('/', '_')}.bin"
    payload.write_bytes(content)
    cli.run("add", gun, name, str(payload), "--roles", role)
    return cli.run("publish", gun, check=check)


def test_signer_add_lets_the_notary_client_sign_releases_and_remove_locks_the_key_out(
    published: Rig, notary_cli: NotaryCli
) -> None:
    rig, gun = published, published.gun
    alice_key, alice_pub, alice_fp = signer_key(rig, "alice")
    bob_key, bob_pub, bob_fp = signer_key(rig, "bob")

    added = rig.run("ceremony-online", "signer", "add", gun, "alice", "--key", str(alice_pub))
    assert alice_fp in added.stdout  # shown to compare aloud with the signer's record
    rig.run("ceremony-online", "signer", "add", gun, "bob", "--key", str(bob_pub))
    bangs = ceremony(
        rig,
        "signers",
        "--accept", "targets/alice", "--accept", "targets/bob", "--accept", "targets/releases",
        *expect_keys(alice_fp, bob_fp),
    )  # fmt: skip
    for role in ("targets/alice", "targets/bob", "targets/releases"):
        assert f"! targets: + delegation {role}: threshold 1, paths (all paths)" in bangs
    assert f"! targets: + targets/releases key {alice_fp} (not held here)" in bangs
    assert f"! targets: + targets/alice key {alice_fp} (not held here)" in bangs

    listed = json.loads(rig.run("ceremony-online", "delegation", "list", gun, "--json").stdout)
    roles = {d["role"]: d for d in listed["delegations"]}
    assert set(roles) == {"targets/alice", "targets/bob", "targets/releases"}
    assert [k["fingerprint"] for k in roles["targets/releases"]["keys"]] == [alice_fp, bob_fp]
    assert roles["targets/releases"]["paths"] == [""]
    plain = rig.run("ceremony-online", "delegation", "list", gun).stdout
    assert "targets/releases  threshold 1 of 2  paths (all paths)" in plain
    assert f"  key {alice_fp} (ecdsa" in plain

    # Alice signs a release with the real notary client and her key alone.
    notary_cli.run("key", "import", str(alice_key), "--role", "targets/alice")
    notary_sign(notary_cli, gun, "targets/releases", "v1", b"release 1\n", rig.tmp)
    assert "v1" in notary_cli.list_targets(gun, "targets/releases")

    # Releases is signed with alice's key alone: removing her would leave it unverifiable,
    # so another signer re-signs it first (Notary's witness), on his own machine.
    early = rig.run("ceremony-online", "signer", "remove", gun, "alice", code=1)
    assert f"notary witness {gun} targets/releases" in one_sentence(early)
    bob = NotaryCli(notary_cli.server, rig.tmp / "bob-trust")
    bob.run("key", "import", str(bob_key), "--role", "targets/bob")
    bob.run("witness", gun, "targets/releases")
    bob.run("publish", gun)

    # Removing alice: her key leaves releases and targets/alice is deleted; bob stays.
    removed = rig.run("ceremony-online", "signer", "remove", gun, "alice")
    assert alice_fp in removed.stdout and "targets/alice is deleted" in removed.stderr
    bangs = ceremony(rig, "remove", "--accept", "targets/alice", "--accept", "targets/releases")
    assert "! targets: - delegation targets/alice (it and its keys can no longer sign)" in bangs
    assert f"! targets: - targets/releases key {alice_fp} (not held here)" in bangs
    listed = json.loads(rig.run("ceremony-online", "delegation", "list", gun, "--json").stdout)
    roles = {d["role"]: d for d in listed["delegations"]}
    assert set(roles) == {"targets/bob", "targets/releases"}
    assert [k["fingerprint"] for k in roles["targets/releases"]["keys"]] == [bob_fp]

    # The real client holding only alice's key can no longer publish into releases.
    late = notary_sign(
        notary_cli, gun, "targets/releases", "v2", b"release 2\n", rig.tmp, check=False
    )
    assert late.returncode != 0, late.stdout
    assert "could not find necessary signing keys" in late.stderr
    assert "v2" not in notary_cli.list_targets(gun, "targets/releases")
    assert "v1" in notary_cli.list_targets(gun, "targets/releases")

    # Bob holds the last key of releases: removing him is refused unless asked for.
    refused = rig.run("ceremony-online", "signer", "remove", gun, "bob", code=1)
    assert "--remove-releases" in one_sentence(refused)


def test_delegation_update_adds_a_key_and_a_path_the_notary_client_then_uses(
    published: Rig, notary_cli: NotaryCli
) -> None:
    rig, gun = published, published.gun
    _, first_pub, first_fp = signer_key(rig, "ci1")
    second_key, second_pub, second_fp = signer_key(rig, "ci2")
    rig.run(
        "ceremony-online", "delegation", "add", gun, "targets/ci", "--cert", str(first_pub),
        "--path", "a/",
    )  # fmt: skip
    ceremony(rig, "ci", "--accept", "targets/ci", *expect_keys(first_fp))

    rig.run(
        "ceremony-online", "delegation", "update", gun, "targets/ci",
        "--add-key", str(second_pub), "--add-path", "b/",
    )  # fmt: skip
    bangs = ceremony(rig, "update", "--accept", "targets/ci", *expect_keys(second_fp))
    assert "! targets: ~ targets/ci paths 'a/' -> 'a/', 'b/'" in bangs
    assert f"! targets: + targets/ci key {second_fp} (not held here)" in bangs
    assert "- targets/ci key" not in bangs  # the first key stays: an update adds

    notary_cli.run("key", "import", str(second_key), "--role", "targets/ci")
    notary_sign(notary_cli, gun, "targets/ci", "b/tool", b"tool\n", rig.tmp)
    assert "b/tool" in notary_cli.list_targets(gun, "targets/ci")

    # Removing by fingerprint (as `delegation list` shows it) leaves the other key.
    rig.run("ceremony-online", "delegation", "update", gun, "targets/ci", "--remove-key", first_fp)
    bangs = ceremony(rig, "drop", "--accept", "targets/ci")
    assert f"! targets: - targets/ci key {first_fp} (not held here)" in bangs
    listed = json.loads(rig.run("ceremony-online", "delegation", "list", gun, "--json").stdout)
    (ci,) = listed["delegations"]
    assert [k["fingerprint"] for k in ci["keys"]] == [second_fp]
    assert ci["paths"] == ["a/", "b/"]

    # Updates that do not fit are refused when staged, in one sentence.
    missing = rig.run(
        "ceremony-online", "delegation", "update", gun, "targets/none", "--add-path", "x/", code=1
    )
    assert "does not delegate targets/none" in one_sentence(missing)
    last = rig.run(
        "ceremony-online", "delegation", "update", gun, "targets/ci", "--remove-key", second_fp,
        code=1,
    )  # fmt: skip
    assert "no key" in one_sentence(last)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("releases", "releases is reserved"),
        ("Alice", "is not valid"),
        ("_ci", "is not valid"),
        ("a/b", "is not valid"),
        ("a.b", "is not valid"),
    ],
)
def test_signer_names_follow_docker(
    notary_server: NotaryServer, tmp_path: Path, name: str, why: str
) -> None:
    rig = Rig(notary_server, tmp_path, "example.com/signers/names")
    _, public, _ = signer_key(rig, "someone")
    for command in (("add", rig.gun, name, "--key", str(public)), ("remove", rig.gun, name)):
        proc = rig.run("ceremony-online", "signer", *command, code=2)
        assert why in one_sentence(proc)
    assert not (tmp_path / "online").exists() or not any((tmp_path / "online").rglob("*.json"))


def test_removing_an_unknown_signer_is_one_sentence(published: Rig) -> None:
    proc = published.run("ceremony-online", "signer", "remove", published.gun, "nobody", code=1)
    assert "There is no signer nobody" in one_sentence(proc)


def test_a_certificate_is_accepted_with_a_note_and_stages_both_roles(
    notary_server: NotaryServer, tmp_path: Path
) -> None:
    rig = Rig(notary_server, tmp_path, "example.com/signers/cert")
    key, _, _ = signer_key(rig, "ci")
    cert = tmp_path / "ci.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-key", str(key), "-days", "365", "-subj", "/CN=ci",
         "-out", str(cert)],
        check=True, capture_output=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    proc = rig.run("ceremony-online", "signer", "add", rig.gun, "ci", "--key", str(cert))
    assert "docker trust sign" in proc.stderr  # a certificate works with notary, not docker
    fingerprint = key_fingerprint(key_from_pem(cert.read_bytes()))
    assert fingerprint in proc.stdout
    staged = [line for line in proc.stdout.splitlines() if line.startswith("staged #")]
    assert len(staged) == 2
    assert "update targets/ci: add key(s)" in staged[0]
    assert "update targets/releases: add key(s)" in staged[1]
    assert "if missing, create it with threshold 1 for (all paths)" in staged[1]
