"""The offline signer cannot be fooled: the attacks of the trust issue, through the real CLIs.

The attacker controls the online machine (`tests/attacker.py`): it rebuilds requests from
any metadata the server ever served, with any changes, recomputing every unkeyed digest
and id, or simply uses our own online CLI with its own keys. Each case is either refused
(exit 1, one sentence, no signatures file, trust state unchanged) or signed only with the
change marked `!` and acknowledged by name. Where publishing is part of the story, the
real notary-server takes the result and the real notary client reads it.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from ceremony.core.changes import AddTarget, ReplaceKeys, SetDelegation
from ceremony.core.documents import PublicKeysDocument, Request
from ceremony.core.keys import key_fingerprint, pem_encode
from ceremony.core.metadata import FileMeta
from ceremony.offline.trust import TrustStore
from ceremony.signing.certificates import make_root_certificate
from ceremony.signing.private import PrivateKey
from tests.attacker import capture, edit, forge, thin_entry, with_changes, write
from tests.e2e.rig import (
    Rig,
    expect_keys,
    export_change,
    fingerprints,
    full_ceremony,
    new_key,
    one_sentence,
    publish_new,
)
from tests.e2e.test_ceremony_cli import snapshot_home
from tests.notary_env import NotaryCli, NotaryServer

pytestmark = pytest.mark.notary


@pytest.fixture
def published(notary_server: NotaryServer, new_gun, tmp_path: Path) -> Rig:
    return publish_new(notary_server, tmp_path, new_gun())


def home(rig: Rig, env: dict[str, str] | None = None) -> Path:
    return Path((env or rig.env)["CEREMONY_HOME"])


def refused(rig: Rig, request: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """`sign` must refuse: exit 1, one sentence, no signatures file, the home unchanged."""
    env = env or rig.env
    before = snapshot_home(home(rig, env))
    out = rig.tmp / "refused.sig"
    proc = rig.run_env(
        env, "ceremony", "sign", str(request), "--out", str(out), "--yes", *args, code=1
    )
    assert not out.exists()
    assert snapshot_home(home(rig, env)) == before
    return one_sentence(proc)


def signed(rig: Rig, request: Path, *args: str, env: dict[str, str] | None = None) -> Path:
    out = rig.tmp / f"{request.stem}.{len(list(rig.tmp.glob('*.sig')))}.sig"
    rig.run_env(env or rig.env, "ceremony", "sign", str(request), "--out", str(out), "--yes", *args)
    return out


def review(rig: Rig, request: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """`review` is read-only: it must leave the home as it was."""
    before = snapshot_home(home(rig, env))
    text = rig.run_env(env or rig.env, "ceremony", "review", str(request), *args).stdout
    assert snapshot_home(home(rig, env)) == before
    return text


def request_id(path: Path) -> str:
    return Request.from_bytes(path.read_bytes()).id


def target(name: str) -> AddTarget:
    return AddTarget("targets", name, FileMeta.for_bytes(name.encode()))


def new_root_key(rig: Rig, env: dict[str, str] | None = None) -> tuple[Path, str]:
    """A new root key in an offline home; its public keys file and fingerprint."""
    _, pub = new_key(rig, "root", env)
    return pub, fingerprints(pub)["root"][0]


def pem_public_key(private: PrivateKey, path: Path) -> Path:
    spki = private.native.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path.write_bytes(pem_encode("PUBLIC KEY", spki))
    return path


# ---------------------------------------------------------------------------
# 1. rollback: the same version signed twice, abandoned and hidden requests


def test_a_second_body_for_a_version_signed_here_is_refused(
    published: Rig, notary_server: NotaryServer
) -> None:
    rig = published
    before = capture(notary_server, rig.gun)  # root v1, targets v1
    honest = export_change(rig, "b")  # targets v2
    rig.run("ceremony-online", "publish", str(signed(rig, honest)))
    # The online machine replays the old base with another change: a different targets v2.
    forged = write(rig.tmp / "forged.json", forge(rig.gun, before, [target("evil")]))
    sentence = refused(rig, forged)
    assert "never signs two bodies for one version" in sentence
    assert request_id(honest) in sentence


def test_a_base_older_than_what_was_signed_needs_the_abandoned_request_named(
    published: Rig, notary_server: NotaryServer
) -> None:
    rig = published
    before = capture(notary_server, rig.gun)
    hidden = export_change(rig, "b")
    signed(rig, hidden)
    hidden_id = request_id(hidden)
    # Versions bumped past the hidden request, so no version is signed twice: still, the
    # keyholder must learn that what was signed is being hidden, and say so by name.
    forged = write(
        rig.tmp / "forged.json", forge(rig.gun, before, [target("evil")], exported={"targets": 2})
    )
    text = review(rig, forged)
    assert "! ABANDONED OR HIDDEN REQUEST" in text and hidden_id in text
    assert "either that request was never published, or the online machine is hiding it" in text
    sentence = refused(rig, forged)
    assert f"--abandon {hidden_id}" in sentence
    assert "--abandon" in refused(rig, forged, "--abandon", "0" * 32)  # names nothing here
    signed(rig, forged, "--abandon", hidden_id)
    state = TrustStore(home(rig)).load(rig.gun)
    assert state is not None
    assert f"abandon:{hidden_id}" in state.requests[request_id(forged)].acknowledged


def test_one_staged_set_is_one_request_and_a_cancelled_one_is_skipped_past(
    published: Rig, notary_server: NotaryServer, notary_cli: NotaryCli
) -> None:
    rig = published
    first = export_change(rig, "b")
    again = rig.tmp / "again.json"
    rig.run("ceremony-online", "export", rig.gun, "--out", str(again))
    gif = rig.run(
        "ceremony-online", "export", rig.gun, "--qr-out", str(rig.tmp / "qr"), "--format", "gif"
    )
    assert again.read_bytes() == first.read_bytes()  # same id, same words, any format
    assert f"request: {request_id(first)}" in gif.stdout
    first_sig = signed(rig, first)  # signed, then lost: never published
    rig.run("ceremony-online", "requests", "cancel", rig.gun, request_id(first))
    listed = rig.run("ceremony-online", "requests", "list", rig.gun).stdout
    assert "cancelled at" in listed
    second = rig.tmp / "second.json"
    rig.run("ceremony-online", "export", rig.gun, "--out", str(second))
    assert request_id(second) != request_id(first)
    assert [e.version for e in Request.from_bytes(second.read_bytes()).expect] == [3]  # skips v2
    assert request_id(first) in refused(rig, second)
    signatures = signed(rig, second, "--abandon", request_id(first))
    rig.run("ceremony-online", "publish", str(signatures))
    assert set(notary_cli.list_targets(rig.gun)) == {"a", "b"}
    assert '"version":3' in notary_server.fetch(rig.gun, "targets.json").decode()
    # The abandoned request's signatures are not published over the new one.
    late = rig.run("ceremony-online", "publish", str(first_sig), code=1)
    assert "given up" in one_sentence(late)


def test_a_different_root_at_a_version_signed_here_needs_the_abandoned_request_named(
    published: Rig, notary_server: NotaryServer, notary_cli: NotaryCli
) -> None:
    rig = published
    pub, _ = new_root_key(rig)
    rig.run("ceremony-online", "rotate", rig.gun, "root", "--public-keys", str(pub))
    first = rig.tmp / "rotate1.json"
    rig.run("ceremony-online", "export", rig.gun, "--out", str(first))
    signed(rig, first, "--accept", "root")  # never published
    rig.run("ceremony-online", "requests", "cancel", rig.gun, request_id(first))
    time.sleep(1.1)  # a new default expiry: a different root v2 body
    second = rig.tmp / "rotate2.json"
    rig.run("ceremony-online", "export", rig.gun, "--out", str(second))
    assert [e.version for e in Request.from_bytes(second.read_bytes()).expect] == [2]
    text = review(rig, second)
    assert "this request signs a DIFFERENT root v2" in text
    assert f"--abandon {request_id(first)}" in refused(rig, second, "--accept", "root")
    sig = signed(rig, second, "--accept", "root", "--abandon", request_id(first))
    rig.run("ceremony-online", "publish", str(sig))
    assert "a" in notary_cli.list_targets(rig.gun)
    assert '"version":2' in notary_server.fetch(rig.gun, "root.json").decode()


# ---------------------------------------------------------------------------
# 2-4. keys that change who can sign: labelled, checked, confirmed by fingerprint


def test_a_swapped_new_root_key_is_not_held_here_and_refused(
    published: Rig, notary_server: NotaryServer
) -> None:
    rig = published
    genuine_pub, genuine_fp = new_root_key(rig)
    rig.run("ceremony-online", "rotate", rig.gun, "root", "--public-keys", str(genuine_pub))
    honest = rig.tmp / "honest.json"
    rig.run("ceremony-online", "export", rig.gun, "--out", str(honest))
    # Mallory's own root key, certified for this GUN, replaces the genuine one.
    mallory = PrivateKey.generate_ecdsa()
    swapped = make_root_certificate(mallory, rig.gun, datetime.now(UTC))
    honest_request = Request.from_bytes(honest.read_bytes())
    changes = [
        ReplaceKeys("root", (swapped,), 1) if isinstance(c, ReplaceKeys) else c
        for c in honest_request.changes
    ]
    forged = write(rig.tmp / "swapped.json", with_changes(honest_request, changes))
    mallory_fp = key_fingerprint(swapped)
    text = review(rig, forged)
    assert f"root key {mallory_fp} NOT held here" in text
    assert f"--expect-key {mallory_fp}" in text
    assert f"--expect-key {mallory_fp}" in refused(rig, forged, "--accept", "root")
    wrong = refused(rig, forged, "--accept", "root", "--expect-key", genuine_fp)
    assert "matches no key" in wrong
    # The honest request: the new key is held here; only the role change is acknowledged.
    text = review(rig, honest)
    assert f"root key {genuine_fp} held on this machine" in text
    assert "--accept root" in refused(rig, honest)
    signed(rig, honest, "--accept", "root")


def test_a_new_root_certificate_for_another_gun_is_refused(published: Rig) -> None:
    rig = published
    honest_pub, _ = new_root_key(rig)
    rig.run("ceremony-online", "rotate", rig.gun, "root", "--public-keys", str(honest_pub))
    honest = rig.tmp / "honest.json"
    rig.run("ceremony-online", "export", rig.gun, "--out", str(honest))
    request = Request.from_bytes(honest.read_bytes())
    other = make_root_certificate(
        PrivateKey.generate_ecdsa(), "example.com/other", datetime.now(UTC)
    )
    forged = write(
        rig.tmp / "other.json", with_changes(request, [ReplaceKeys("root", (other,), 1)])
    )
    sentence = refused(rig, forged, "--accept", "root", "--expect-key", key_fingerprint(other))
    assert "not valid for" in sentence and "example.com/other" in sentence


def test_a_wildcard_root_certificate_is_marked_and_a_policy_can_refuse_it(published: Rig) -> None:
    rig = published
    prefix = rig.gun.rsplit("/", 1)[0] + "/"
    private = PrivateKey.generate_ecdsa()
    wildcard = make_root_certificate(private, prefix + "*", datetime.now(UTC))
    base = Request.from_bytes(export_change(rig, "b").read_bytes())
    forged = write(rig.tmp / "wild.json", with_changes(base, [ReplaceKeys("root", (wildcard,), 1)]))
    text = review(rig, forged)
    assert f"WILDCARD certificate: it serves every GUN that starts with {prefix!r}" in text
    (home(rig) / "policy.toml").write_text("allow_wildcard_root_cn = false\n")
    sentence = refused(rig, forged, "--accept", "root", "--expect-key", key_fingerprint(wildcard))
    assert "signing policy refuses" in sentence and "allow_wildcard_root_cn" in sentence


def test_a_machine_that_did_not_generate_the_root_confirms_every_key_of_an_init(
    notary_server: NotaryServer, notary_cli: NotaryCli, new_gun, tmp_path: Path
) -> None:
    rig = Rig(notary_server, tmp_path, new_gun())
    rig.setup_repository()
    request = tmp_path / "init.json"
    rig.run("ceremony-online", "export", rig.gun, "--out", str(request))
    record = fingerprints(tmp_path / "public-keys.json")
    bob = rig.offline(tmp_path / "bob")  # holds no key at all
    text = review(rig, request, env=bob)
    for fp in (*record["root"], *record["targets"]):
        assert f"--expect-key {fp}" in text
    assert "--expect-key" in refused(rig, request, env=bob)
    assert "matches no key" in refused(rig, request, "--expect-key", "ab" * 32, env=bob)
    only_root = refused(rig, request, *expect_keys(*record["root"]), env=bob)
    assert record["targets"][0] in only_root  # the unconfirmed one is named
    # Confirmed: the check passes and bob is told he holds no key for it.
    confirmed = rig.run_env(
        bob,
        "ceremony",
        "sign",
        str(request),
        "--out",
        str(tmp_path / "bob.sig"),
        "--yes",
        *expect_keys(*record["root"], *record["targets"]),
        code=1,
    )
    assert "holds none of the keys" in one_sentence(confirmed)
    rig.run("ceremony-online", "publish", str(signed(rig, request)))  # the generating machine
    assert notary_cli.list_targets(rig.gun) == {}


# ---------------------------------------------------------------------------
# 5. the diff shows every change of who can sign, old -> new


def test_delegation_keys_thresholds_paths_and_custom_data_are_shown_as_changes(
    published: Rig, notary_cli: NotaryCli
) -> None:
    rig = published
    k1, k2, k3 = (PrivateKey.generate_ecdsa() for _ in range(3))
    pems = [pem_public_key(k, rig.tmp / f"k{i}.pem") for i, k in enumerate((k1, k2, k3), 1)]
    rig.run(
        "ceremony-online",
        "delegation",
        "add",
        rig.gun,
        "targets/releases",
        "--cert",
        str(pems[0]),
        "--cert",
        str(pems[1]),
        "--threshold",
        "2",
        "--path",
        "rel/",
    )
    fp1, fp2, fp3 = (key_fingerprint(k.public_key()) for k in (k1, k2, k3))
    full_ceremony(rig, "deleg", None, "--accept", "targets/releases", *expect_keys(fp1, fp2))
    # Now: keys {k1, k3}, threshold 1, paths rel/ and tools/; and a target with custom data.
    rig.run(
        "ceremony-online",
        "delegation",
        "add",
        rig.gun,
        "targets/releases",
        "--cert",
        str(pems[0]),
        "--cert",
        str(pems[2]),
        "--threshold",
        "1",
        "--path",
        "rel/",
        "--path",
        "tools/",
    )
    custom = json.dumps({"note": "\u202eexe.txt " + "x" * 300}, ensure_ascii=False)
    rig.run(
        "ceremony-online",
        "add",
        rig.gun,
        "c",
        "--sha256",
        "ab" * 32,
        "--length",
        "3",
        "--custom",
        custom,
    )
    request = rig.tmp / "change.json"
    rig.run("ceremony-online", "export", rig.gun, "--out", str(request))
    text = review(rig, request, "--full")
    bangs = [line for line in text.splitlines() if line.startswith("! ")]
    assert "! targets: ~ targets/releases threshold 2 -> 1" in bangs
    assert "! targets: ~ targets/releases paths 'rel/' -> 'rel/', 'tools/'" in bangs
    assert any(
        line.startswith(f"! targets: + targets/releases key {fp3} (not held") for line in bangs
    )
    assert any(
        line.startswith(f"! targets: - targets/releases key {fp2} (not held") for line in bangs
    )
    assert not any(fp1 in line for line in bangs)  # unchanged
    custom_line = next(line for line in text.splitlines() if "+ target c" in line)
    assert "custom data (" in custom_line and "first 200 characters shown" in custom_line
    assert "\\u202eexe.txt" in custom_line and "\u202e" not in text  # shown escaped
    assert "Summary:" in text and "targets v2 -> v3: targets +1 -0 ~0" in text
    sentence = refused(rig, request, *expect_keys(fp3))
    assert "--accept targets/releases" in sentence
    refused(rig, request, "--accept", "targets/releases")  # k3 not confirmed
    sig = signed(rig, request, "--accept", "targets/releases", *expect_keys(fp3))
    rig.run("ceremony-online", "publish", str(sig))
    assert "c" in notary_cli.list_targets(rig.gun)


def test_a_delegation_listing_a_key_held_here_for_another_role_is_marked(published: Rig) -> None:
    rig = published
    pub = rig.tmp / "mine.json"
    rig.run("ceremony", "key", "export-public", "--gun", rig.gun, "--out", str(pub))
    document = PublicKeysDocument.from_bytes(pub.read_bytes())
    targets_key = next(e.key for e in document.keys if e.role == "targets")
    base = Request.from_bytes(export_change(rig, "b").read_bytes())
    forged = write(
        rig.tmp / "reuse.json",
        with_changes(base, [SetDelegation("targets/ci", (targets_key,), 1, ("",))]),
    )
    text = review(rig, forged)
    assert "which this machine holds as its targets key: a key must serve one role" in text


def test_an_extra_delegation_and_a_lowered_root_threshold_need_acknowledgement(
    notary_server: NotaryServer, notary_cli: NotaryCli, new_gun, tmp_path: Path
) -> None:
    rig = Rig(notary_server, tmp_path, new_gun())
    for _ in range(2):
        rig.run("ceremony", "key", "generate", "root", "--gun", rig.gun)
    rig.run("ceremony", "key", "generate", "targets", "--gun", rig.gun)
    pub = tmp_path / "public-keys.json"
    rig.run("ceremony", "key", "export-public", "--gun", rig.gun, "--out", str(pub))
    rig.run("ceremony-online", "init", rig.gun, "--public-keys", str(pub), "--root-threshold", "2")
    full_ceremony(rig, "init")
    # An attacker slips a delegation of its own into a routine change.
    mallory = PrivateKey.generate_ecdsa()
    routine = Request.from_bytes(export_change(rig, "b").read_bytes())
    extra = [*routine.changes, SetDelegation("targets/evil", (mallory.public_key(),), 1, ("",))]
    forged = write(tmp_path / "extra.json", with_changes(routine, extra))
    text = review(rig, forged)
    assert "! targets: + delegation targets/evil: threshold 1, paths (all paths)" in text
    sentence = refused(rig, forged)
    assert "--accept targets/evil" in sentence and "--expect-key" in sentence
    # Lowering root's threshold from 2 to 1: marked and acknowledged by name.
    rig.run("ceremony-online", "requests", "cancel", rig.gun, routine.id)
    rig.run(
        "ceremony-online", "rotate", rig.gun, "root", "--public-keys", str(pub), "--threshold", "1"
    )
    lower = tmp_path / "lower.json"
    rig.run("ceremony-online", "export", rig.gun, "--out", str(lower))
    assert "! root: ~ root threshold 2 -> 1" in review(rig, lower)
    assert "--accept root" in refused(rig, lower)
    rig.run("ceremony-online", "publish", str(signed(rig, lower, "--accept", "root")))
    assert "b" in notary_cli.list_targets(rig.gun)


# ---------------------------------------------------------------------------
# 6, 8. record first; review is read-only; replay; sign --again


def test_signing_is_recorded_before_the_signatures_are_written_and_again_recovers(
    published: Rig, notary_cli: NotaryCli
) -> None:
    rig = published
    request = export_change(rig, "b")
    blocked = rig.tmp / "not-a-folder"
    blocked.write_text("a file where a folder should be\n")
    proc = rig.run(
        "ceremony", "sign", str(request), "--out", str(blocked / "b.sig"), "--yes", code=3
    )
    one_sentence(proc)
    state = TrustStore(home(rig)).load(rig.gun)
    assert state is not None and request_id(request) in state.requests  # recorded first
    assert "Signatures written" not in proc.stderr
    text = review(rig, request)
    assert "ALREADY SIGNED on this machine" in text
    assert "--again" in refused(rig, request)
    again = rig.tmp / "again.sig"
    proc = rig.run("ceremony", "sign", str(request), "--out", str(again), "--again", "--yes")
    assert "AGAIN over the identical bytes" in proc.stdout
    state = TrustStore(home(rig)).load(rig.gun)
    assert state is not None and len(state.requests[request_id(request)].signed_at) == 2
    rig.run("ceremony-online", "publish", str(again))
    assert "b" in notary_cli.list_targets(rig.gun)
    never = rig.run(
        "ceremony",
        "sign",
        str(export_change(rig, "c")),
        "--out",
        str(again),
        "--again",
        "--yes",
        code=2,
    )
    assert "never signed here" in one_sentence(never)


# ---------------------------------------------------------------------------
# 7. one GUN rule


def test_a_gun_over_255_characters_is_input_not_an_environment_failure(
    published: Rig, tmp_path: Path
) -> None:
    rig = published
    request = export_change(rig, "b")
    doc = json.loads(request.read_bytes())
    long = "example.com/" + "x" * 290
    bad = tmp_path / "long-gun.json"
    edit(request, bad, lambda d: d.update(gun=long))
    assert "is not valid" in one_sentence(rig.run("ceremony", "review", str(bad), code=1))
    assert doc["gun"] == rig.gun
    online = rig.run("ceremony-online", "status", long, code=1)
    assert "more than the 255 allowed" in one_sentence(online)
    for gun in ("a b/c", "a/*", "a//b", "a\x07b"):
        rig.run("ceremony", "key", "generate", "root", "--gun", gun, code=1)


def test_a_200_character_gun_works_end_to_end_with_the_real_notary(
    notary_server: NotaryServer, notary_cli: NotaryCli, tmp_path: Path
) -> None:
    gun = "example.com/test/long-" + "x" * 170 + os.urandom(4).hex()
    assert len(gun) > 64  # longer than X.509's common name bound, as Notary allows
    rig = Rig(notary_server, tmp_path, gun)
    rig.setup_repository()
    (tmp_path / "a.txt").write_text("a\n")
    rig.run("ceremony-online", "add", gun, "a", str(tmp_path / "a.txt"))
    full_ceremony(rig, "init")
    assert set(notary_cli.list_targets(gun)) == {"a"}
    assert all(len(p.name) <= 100 for p in (home(rig) / "trust").iterdir())


# ---------------------------------------------------------------------------
# 9. two signs at once lose nothing


def _read_until(proc: subprocess.Popen[str], text: str, timeout: float) -> str:
    """What `proc` wrote to stderr up to and including `text` (fails after `timeout`)."""
    assert proc.stderr is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while text not in seen:
        assert time.monotonic() < deadline, seen
        assert proc.poll() is None, seen
        ready, _, _ = select.select([proc.stderr], [], [], 0.5)
        if ready:  # the raw descriptor: nothing is left in a text buffer for communicate()
            seen += os.read(proc.stderr.fileno(), 65536).decode()
    return seen


def test_two_signs_at_once_on_one_home_lose_nothing(
    published: Rig, notary_server: NotaryServer
) -> None:
    """Two requests on one base, each a different targets v2, signed at the same moment: the
    store's lock makes the second see the first's record, so exactly one is signed."""
    rig = published
    files = capture(notary_server, rig.gun)
    first = write(rig.tmp / "t1.json", forge(rig.gun, files, [target("t1")]))
    second = write(rig.tmp / "t2.json", forge(rig.gun, files, [target("t2")]))
    lock = home(rig) / "trust" / ".lock"
    with lock.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # another command holds the store
        procs = [
            subprocess.Popen(
                ["ceremony", "sign", str(req), "--out", str(req.with_suffix(".sig")), "--yes"],
                env=rig.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for req in (first, second)
        ]
        # both wait (however long a loaded machine takes to start them)
        early = [_read_until(p, "Waiting for another ceremony command", 120) for p in procs]
        assert all(p.poll() is None for p in procs)
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    results = [
        (out, head + err)
        for head, p in zip(early, procs, strict=True)
        for out, err in (p.communicate(timeout=120),)
    ]
    assert sorted(p.returncode for p in procs) == [0, 1], results
    loser = next(err for p, (_, err) in zip(procs, results, strict=True) if p.returncode == 1)
    assert "never signs two bodies for one version" in loser
    state = TrustStore(home(rig)).load(rig.gun)
    assert state is not None
    winner = first if procs[0].returncode == 0 else second
    assert request_id(winner) in state.requests
    assert winner.with_suffix(".sig").exists()


# ---------------------------------------------------------------------------
# 10. starting over


def test_forgetting_a_repository_needs_its_gun_and_root_fingerprint(
    published: Rig, notary_server: NotaryServer, notary_cli: NotaryCli, tmp_path: Path
) -> None:
    """A lost single root key: delete the repository, initialise it again, forget the old trust."""
    rig = published
    state = TrustStore(home(rig)).load(rig.gun)
    assert state is not None
    root_fp = key_fingerprint(state.root.body.keys[state.root.body.roles["root"].keyids[0]])
    notary_cli.run("delete", rig.gun, "--remote")
    pub, _ = new_root_key(rig)
    mine = tmp_path / "mine.json"
    rig.run("ceremony", "key", "export-public", "--gun", rig.gun, "--out", str(mine))
    merged = json.loads(pub.read_bytes())
    merged["keys"] += [k for k in json.loads(mine.read_bytes())["keys"] if k["role"] == "targets"]
    (tmp_path / "both.json").write_text(json.dumps(merged))
    online = dict(rig.env, CEREMONY_ONLINE_HOME=str(tmp_path / "online-2"))
    rig.run_env(
        online, "ceremony-online", "init", rig.gun, "--public-keys", str(tmp_path / "both.json")
    )
    init = tmp_path / "reinit.json"
    rig.run_env(online, "ceremony-online", "export", rig.gun, "--out", str(init))
    assert "already initialised on this machine" in refused(rig, init)

    no_ack = rig.run("ceremony", "trust", "forget", rig.gun, code=1)
    assert "--root-fingerprint" in one_sentence(no_ack)
    wrong = rig.run("ceremony", "trust", "forget", rig.gun, "--root-fingerprint", "cd" * 32, code=1)
    assert "not the fingerprint" in one_sentence(wrong)
    rig.run("ceremony", "trust", "forget", rig.gun, "--root-fingerprint", root_fp[:16])
    assert TrustStore(home(rig)).load(rig.gun) is None
    assert list((home(rig) / "trust-forgotten").iterdir())  # kept, not deleted
    rig.run_env(online, "ceremony-online", "publish", str(signed(rig, init)))
    # Clients drop their pinned root; a fresh one reads the new repository.
    fresh = NotaryCli(notary_server, tmp_path / "fresh-trust")
    assert fresh.list_targets(rig.gun) == {}


# ---------------------------------------------------------------------------
# 11. a policy held offline


@pytest.mark.parametrize(
    ("policy", "rule"),
    [
        ("max_expiry_days = { targets = 30 }\n", "max_expiry_days.targets"),
        ("min_threshold = { targets = 2 }\n", "min_threshold.targets"),
        ('gun_prefixes = ["registry.example.com/"]\n', "gun_prefixes"),
    ],
)
def test_the_signing_policy_refuses_what_breaks_it(published: Rig, policy: str, rule: str) -> None:
    rig = published
    request = export_change(rig, "b")
    (home(rig) / "policy.toml").write_text(policy)
    assert rule in refused(rig, request)
    assert f"POLICY: this machine's signing policy refuses it: {rule}" in review(rig, request)


def test_a_damaged_policy_is_one_sentence(published: Rig) -> None:
    rig = published
    request = export_change(rig, "b")
    (home(rig) / "policy.toml").write_text("max_expiry = 3\n")
    assert "unknown settings: max_expiry" in refused(rig, request)


# ---------------------------------------------------------------------------
# bases: mix-and-match, a thin entry of the wrong type, an expired base


def test_a_base_mixed_from_two_moments_is_refused(
    published: Rig, notary_server: NotaryServer
) -> None:
    rig = published
    old = capture(notary_server, rig.gun)
    rig.run("ceremony-online", "publish", str(signed(rig, export_change(rig, "b"))))
    new = capture(notary_server, rig.gun)
    # targets as of today with the snapshot and timestamp of yesterday (or the reverse)
    for files in ({**new, "targets": old["targets"]}, {**old, "targets": new["targets"]}):
        forged = write(rig.tmp / "mixed.json", forge(rig.gun, files, [target("m")]))
        sentence = refused(rig, forged)
        assert "mixes metadata from different times" in sentence or "stale" in sentence


def test_a_thin_entry_naming_a_body_of_another_type_is_refused(published: Rig) -> None:
    rig = published
    request = Request.from_bytes(export_change(rig, "b").read_bytes())
    root_entry = next(b for b in request.base if b.role == "root")
    forged = write(
        rig.tmp / "wrong-type.json",
        thin_entry(request, "targets", root_entry.body_sha256),
        thin=True,
    )
    assert "_type 'Root'" in refused(rig, forged)


def test_an_expired_base_is_marked_and_acknowledged(published: Rig) -> None:
    rig = published
    request = export_change(rig, "b")
    library = next(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))  # Debian's faketime
    later = {**rig.env, "FAKETIME": "+20d", "LD_PRELOAD": str(library)}
    text = review(rig, request, env=later)
    assert re.search(r"! the base timestamp expired at .* by this machine's clock", text)
    assert "--accept timestamp" in refused(rig, request, env=later)
    signed(rig, request, "--accept", "timestamp", env=later)


def test_replay_of_a_signed_request_is_refused_and_its_review_says_so(published: Rig) -> None:
    rig = published
    request = export_change(rig, "b")
    signed(rig, request)
    assert "ALREADY SIGNED on this machine" in review(rig, request)
    assert "already signed on this machine" in refused(rig, request)


def test_base_version_claims_are_checked_against_the_bytes(published: Rig) -> None:
    rig = published
    request = export_change(rig, "b")

    def claim_v9(doc: dict) -> None:  # type: ignore[type-arg]
        for entry in doc["base"]:
            if entry["role"] == "targets":
                entry["version"] = 9

    bad = edit(request, rig.tmp / "claim.json", claim_v9)
    assert "not the version it claims" in refused(rig, bad)
