"""Key liveness against the live notary-server: `ceremony key check`, `ceremony-online check-liveness`.

Proofs are made by the real `ceremony` CLI from keys in an offline home and
checked against what the real server publishes (root, targets and a delegation).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from ceremony.core.documents import LivenessProof
from tests.e2e.rig import Rig, offline_delegation, one_sentence, publish_new
from tests.notary_env import NotaryServer

pytestmark = pytest.mark.notary


@pytest.fixture(scope="module")
def repo(notary_server: NotaryServer, tmp_path_factory: pytest.TempPathFactory) -> Rig:
    """A published repository: root, targets and a `targets/releases` delegation, all offline."""
    tmp = tmp_path_factory.mktemp("liveness")
    rig = publish_new(notary_server, tmp, "example.com/test/liveness-shared")
    offline_delegation(rig)
    return rig


def key_ids(rig: Rig) -> dict[str, str]:
    """Role -> key id of the offline home's live keys."""
    listed = rig.run("ceremony", "key", "list").stdout
    out = {}
    for block in listed.split("\n\n")[1:]:
        role = block.split(" key", 1)[0].strip()
        out[role] = block.split("id          ", 1)[1].split()[0]
    return out


def fingerprint(rig: Rig, key_id: str) -> str:
    return rig.run("ceremony", "key", "fingerprint", key_id).stdout.strip()


def check(rig: Rig, proof: Path, *args: str, code: int = 0) -> str:
    proc = rig.run(
        "ceremony-online", "check-liveness", str(proof), "--gun", rig.gun, *args, code=code
    )
    if code:
        return one_sentence(proc)
    return proc.stdout


def test_every_key_proven_every_threshold_reachable(repo: Rig) -> None:
    proof = repo.tmp / "all.liveness.json"
    made = repo.run("ceremony", "key", "check", "--out", str(proof)).stdout
    ids = key_ids(repo)
    assert set(ids) == {"root", "targets", "delegation"}
    document = LivenessProof.from_bytes(proof.read_bytes())
    assert {s.keyid for s in document.signatures} == set(ids.values())
    assert document.nonce == "" and f"checked at {document.when}" in made
    assert made.count("works   ") == 3

    report = check(repo, proof)
    for role, key_id in ids.items():
        shown = "targets/releases" if role == "delegation" else role
        assert f"{shown} key {fingerprint(repo, key_id)}: proven at {document.when}" in report
    for role in ("root", "targets", "targets/releases"):
        assert f"{role}: 1 of 1 key(s) proven, 1 needed: threshold reachable" in report


def test_a_nonce_from_the_online_side(repo: Rig) -> None:
    nonce = "00" * 8 + "7b22"  # raw bytes: any value, even '{"'
    proof = repo.tmp / "nonce.liveness.json"
    repo.run("ceremony", "key", "check", "--nonce", nonce, "--gun", repo.gun, "--out", str(proof))
    assert LivenessProof.from_bytes(proof.read_bytes()).nonce == nonce
    assert "threshold reachable" in check(repo, proof, "--nonce", nonce)
    error = check(repo, proof, "--nonce", "ab" * 16, code=1)
    assert f"was made for nonce {nonce}" in error
    stale = repo.tmp / "no-nonce.liveness.json"
    repo.run("ceremony", "key", "check", "--out", str(stale))
    assert "was made for no nonce" in check(repo, stale, "--nonce", nonce, code=1)
    bad = repo.run("ceremony", "key", "check", "--nonce", "xyz", "--out", str(stale), code=2)
    assert "--nonce" in one_sentence(bad)


def test_a_key_not_proven_leaves_its_role_unreachable(repo: Rig) -> None:
    ids = key_ids(repo)
    proof = repo.tmp / "root-only.liveness.json"
    repo.run("ceremony", "key", "check", ids["root"], "--out", str(proof))
    proc = repo.run("ceremony-online", "check-liveness", str(proof), "--gun", repo.gun, code=1)
    assert f"targets key {fingerprint(repo, ids['targets'])}: NOT proven" in proc.stdout
    assert "root: 1 of 1 key(s) proven, 1 needed: threshold reachable" in proc.stdout
    assert "targets: 0 of 1 key(s) proven, 1 needed: threshold NOT reachable" in proc.stdout
    assert "threshold of targets, targets/releases cannot be reached" in one_sentence(proc)

    # Two proofs together (one per keyholder) reach every threshold.
    rest = repo.tmp / "rest.liveness.json"
    repo.run("ceremony", "key", "check", ids["targets"], ids["delegation"], "--out", str(rest))
    repo.run("ceremony-online", "check-liveness", str(proof), str(rest), "--gun", repo.gun)


def test_a_wrong_passphrase_fails_that_key_only(repo: Rig) -> None:
    proof = repo.tmp / "partial.liveness.json"
    env = dict(repo.env, NOTARY_TARGETS_PASSPHRASE="not-the-passphrase")
    proc = repo.run_env(env, "ceremony", "key", "check", "--out", str(proof), code=1)
    ids = key_ids(repo)
    assert f"FAILED  targets key {fingerprint(repo, ids['targets'])}" in proc.stdout
    assert "1 key(s) failed the check" in one_sentence(proc)
    assert "not-the-passphrase" not in proc.stdout + proc.stderr
    document = LivenessProof.from_bytes(proof.read_bytes())
    assert {s.keyid for s in document.signatures} == {ids["root"], ids["delegation"]}
    assert "targets" in check(repo, proof, code=1)


def test_refused_proofs(repo: Rig, tmp_path: Path) -> None:
    ids = key_ids(repo)
    proof = repo.tmp / "good.liveness.json"
    repo.run("ceremony", "key", "check", "--out", str(proof))
    original = json.loads(proof.read_bytes())

    # A signature altered: it no longer verifies over the challenge.
    forged = json.loads(json.dumps(original))
    sig = forged["signatures"][0]
    raw = bytearray(base64.b64decode(sig["sig"]))
    raw[5] ^= 1
    sig["sig"] = base64.b64encode(bytes(raw)).decode()
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    assert "does not verify" in check(repo, tmp_path / "forged.json", code=1)

    # The time changed after signing: it is part of the challenge.
    moved = dict(original, when="2001-01-01T00:00:00Z")
    (tmp_path / "moved.json").write_text(json.dumps(moved))
    assert "does not verify" in check(repo, tmp_path / "moved.json", code=1)

    # A proof by keys this repository does not list.
    other = dict(repo.env, CEREMONY_HOME=str(tmp_path / "other-home"))
    repo.run_env(other, "ceremony", "key", "generate", "targets", "--gun", "example.com/other/x")
    foreign = tmp_path / "foreign.json"
    repo.run_env(other, "ceremony", "key", "check", "--out", str(foreign))
    assert "proves no key this repository lists" in check(repo, foreign, code=1)

    # A file that is not a proof at all.
    public_keys = tmp_path / "public-keys.json"
    repo.run("ceremony", "key", "export-public", "--gun", repo.gun, "--out", str(public_keys))
    error = check(repo, public_keys, code=1)
    assert "is a public keys document, not a liveness proof" in error
    (tmp_path / "junk.json").write_text("[1, 2]")
    assert "not a liveness proof" in check(repo, tmp_path / "junk.json", code=1)
    assert ids  # the repository's own keys were untouched


def test_the_proof_travels_as_one_qr_code(repo: Rig) -> None:
    folder = repo.tmp / "liveness-qr"
    repo.run("ceremony", "key", "check", "--gun", repo.gun, "--qr-out", str(folder))
    assert len(list(folder.glob("frame-*.png"))) == 1
    proc = repo.run("ceremony-online", "check-liveness", "--qr", str(folder), "--gun", repo.gun)
    assert proc.stdout.count("threshold reachable") == 3
