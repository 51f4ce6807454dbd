"""A fleet in one ceremony, against the real notary-server and the real `notary` client.

One root key serves every repository (a certificate per GUN, as `notary init` does);
batch requests refresh, rotate and add to many repositories with one transfer each way,
one confirmation and one passphrase per key; every trust rule still applies to each
repository, and a batch with one bad repository is refused as a whole.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ceremony.core.batch import BatchRequest, BatchSignatures
from ceremony.core.canonical import encode_canonical
from ceremony.core.changes import ReplaceKeys
from ceremony.core.documents import PublicKeysDocument, Request
from ceremony.core.gun import gun_folder
from ceremony.core.keys import describe_key
from ceremony.core.metadata import Key
from tests.attacker import reidentify, with_changes
from tests.e2e.rig import Rig, one_sentence
from tests.fleet.rig import DIGEST, ceremony, gun_args, inner, make_fleet, rebatch, versions
from tests.notary_env import NotaryCli, NotaryServer


def test_fifty_repositories_with_one_root_key_refreshed_in_one_batch_by_qr(
    notary_server: NotaryServer, notary_cli: NotaryCli, tmp_path: Path
) -> None:
    guns = [f"example.com/fleet50/app-{i:02d}" for i in range(50)]
    rig = Rig(notary_server, tmp_path, guns[0])
    root, _ = make_fleet(rig, guns)
    # One root key file serves all 50; key list shows every GUN it serves.
    assert len(list((tmp_path / "offline" / "private").glob("*.key"))) == 2
    listing = rig.run("ceremony", "key", "list").stdout
    assert all(f"serves      {g}" in listing for g in guns)

    status = json.loads(rig.run("ceremony-online", "status", "--json").stdout)
    assert [s["gun"] for s in status] == guns
    assert all(s["staged"] == 0 and not s["requests_waiting"] for s in status)
    rig.run("ceremony-online", "status", "--expiring-within", "90d")  # nothing due: empty table

    # The yearly refresh: root and targets of every repository, one batch, thin, over QR.
    staged = rig.run("ceremony-online", "refresh", "--all", "--role", "root", "--role", "targets")
    assert staged.stdout.count("staged 2 change(s)") == 50
    waiting = json.loads(
        rig.run(
            "ceremony-online", "status", "--gun-prefix", "example.com/fleet50/", "--json"
        ).stdout
    )
    assert all(s["staged"] == 2 for s in waiting)
    qr_in, qr_out = tmp_path / "qr-request", tmp_path / "qr-signatures"
    exported = rig.run(
        "ceremony-online", "export", "--all", "--thin", "--qr-out", str(qr_in), "--preset", "fast40"
    )
    words = exported.stdout.split("words:")[1].split("\n")[0].strip()
    signed = rig.run(
        "ceremony", "sign", "--qr", str(qr_in), "--qr-out", str(qr_out), "--yes", "--full"
    )
    assert words in signed.stdout  # one set of words for the whole batch
    assert signed.stdout.count("Batch request") == 1
    rows = [line for line in signed.stdout.splitlines() if "example.com/fleet50/app-" in line]
    assert len([r for r in rows if "v1->v2 v1->v2" in r]) == 50
    assert "No change to who can sign in any repository." in signed.stdout
    assert "Made 100 signature(s) for 50 repositories" in signed.stdout
    assert "blocks" in signed.stderr  # too large for one static code: an animated transfer
    published = rig.run("ceremony-online", "publish", "--qr", str(qr_out))
    assert published.stdout.count(": published (root v2, targets v2)") == 50

    # The real notary client lists every repository (a few at a time).
    def listed(gun: str) -> dict[str, str]:
        return notary_cli.list_targets(gun)

    with ThreadPoolExecutor(4) as pool:
        for gun, targets in zip(guns, pool.map(listed, guns), strict=True):
            assert targets == {"app-1.0": DIGEST}, gun
    # A rerun of the same publish finishes nothing new and loses nothing.
    again = rig.run("ceremony-online", "publish", "--qr", str(qr_out))
    assert again.stdout.count("already published") == 50
    assert root in listing


def test_key_certify_and_generate_reuse_one_root_key(
    notary_server: NotaryServer, tmp_path: Path
) -> None:
    rig = Rig(notary_server, tmp_path, "example.com/one-root/a")
    first = rig.run("ceremony", "key", "generate", "root", "--gun", "example.com/one-root/a")
    key_id = first.stdout.strip()
    reused = rig.run("ceremony", "key", "generate", "root", "--gun", "example.com/one-root/b")
    assert reused.stdout.strip() == key_id
    assert f"Root key found, using: {key_id}" in reused.stderr
    certified = rig.run(
        "ceremony", "key", "certify", key_id[:12], "--gun", "example.com/one-root/c"
    ).stdout
    pub = tmp_path / "pub"
    rig.run(
        "ceremony", "key", "export-public", "--gun", "example.com/one-root/b",
        "--gun", "example.com/one-root/c", "--key", key_id, "--out", str(pub),
    )  # fmt: skip
    for gun in ("example.com/one-root/b", "example.com/one-root/c"):
        document = PublicKeysDocument.from_bytes((pub / f"{gun_folder(gun)}.json").read_bytes())
        (entry,) = document.keys
        assert entry.canonical_id == key_id
        assert describe_key(entry.key).summary().count(f"CN='{gun}'") == 1
    assert certified.split()[1] == "example.com/one-root/c"
    # A GUN the key already serves: a new key (a rotation), and --new-key forces one.
    rotated = rig.run("ceremony", "key", "generate", "root", "--gun", "example.com/one-root/a")
    assert rotated.stdout.strip() != key_id
    # Two root keys now: which to reuse is ambiguous, so the operator names one.
    ambiguous = rig.run(
        "ceremony", "key", "generate", "root", "--gun", "example.com/one-root/d", code=2
    )
    assert "ceremony key certify ID" in one_sentence(ambiguous)
    fresh = rig.run(
        "ceremony", "key", "generate", "root", "--gun", "example.com/one-root/d", "--new-key"
    )
    assert fresh.stdout.strip() not in (key_id, rotated.stdout.strip())
    targets = rig.run("ceremony", "key", "generate", "targets", "--gun", "example.com/one-root/a")
    refused = rig.run(
        "ceremony", "key", "certify", targets.stdout.strip(), "--gun", "x.com/y", code=2
    )
    assert "only a root key is certified" in one_sentence(refused)


def test_a_rolled_back_base_refuses_the_batch_naming_it_and_skip_signs_the_others(
    notary_server: NotaryServer, notary_cli: NotaryCli, tmp_path: Path
) -> None:
    guns = [f"example.com/fleet-rollback/r{i}" for i in range(3)]
    rig = Rig(notary_server, tmp_path, guns[0])
    make_fleet(rig, guns)
    rig.run("ceremony-online", "refresh", *gun_args(guns), "--role", "targets")
    first = rig.tmp / "first.batch.json"
    rig.run("ceremony-online", "export", "--all", "--out", str(first))
    old = inner(first)[guns[1]]  # built on targets v1
    rig.run("ceremony", "sign", str(first), "--out", str(tmp_path / "first.sigs"), "--yes")
    rig.run("ceremony-online", "publish", str(tmp_path / "first.sigs"))  # targets v2 everywhere
    rig.run("ceremony-online", "refresh", "--all", "--role", "targets")
    ceremony(rig, "second", guns)  # this machine verifies bases at targets v2: v3 published
    rig.run("ceremony-online", "refresh", "--all", "--role", "targets")
    third = rig.tmp / "third.batch.json"
    rig.run("ceremony-online", "export", "--all", "--out", str(third))
    # r1's request replaced by one on the old base (targets v1), with a fresh id.
    doc = json.loads(old.to_bytes())
    doc["nonce"] = "0" * 32
    reidentify(doc)
    requests = inner(third)
    requests[guns[1]] = Request.from_bytes(encode_canonical(doc))
    forged = rebatch(requests, tmp_path / "forged.json")
    refused = rig.run(
        "ceremony", "sign", str(forged), "--out", str(tmp_path / "x"), "--yes", code=1
    )
    sentence = one_sentence(refused)
    assert "The batch is refused" in sentence and guns[1] in sentence
    assert guns[0] not in sentence and guns[2] not in sentence
    assert f"x {guns[1]}" in refused.stdout and "stale or replayed" in refused.stdout
    assert not (tmp_path / "x").exists()
    review = rig.run("ceremony", "review", str(forged), code=1)
    assert guns[1] in one_sentence(review)
    # --skip names the repository (never a wildcard) and signs the others.
    bad_skip = rig.run(
        "ceremony", "sign", str(forged), "--out", str(tmp_path / "x"), "--yes", "--skip", "example.com/*",
        code=2,
    )  # fmt: skip
    assert "no request for that repository" in one_sentence(bad_skip)
    sigs = tmp_path / "skip.sigs"
    rig.run("ceremony", "sign", str(forged), "--out", str(sigs), "--yes", "--skip", guns[1])
    assert BatchSignatures.from_bytes(sigs.read_bytes()).skipped == (guns[1],)
    published = rig.run("ceremony-online", "publish", str(sigs)).stdout
    assert f"{guns[1]}: skipped by the keyholder" in published
    assert versions(rig, guns[0])["targets"] == 4 and versions(rig, guns[1])["targets"] == 3
    assert notary_cli.list_targets(guns[2]) == {"app-1.0": DIGEST}


def test_a_root_rotation_batch_with_a_swapped_certificate_is_refused_and_old_clients_follow(
    notary_server: NotaryServer, notary_cli: NotaryCli, tmp_path: Path
) -> None:
    guns = [f"example.com/fleet-rotate/r{i}" for i in range(3)]
    rig = Rig(notary_server, tmp_path, guns[0])
    make_fleet(rig, guns)
    for gun in guns:  # old clients pin the first root
        assert notary_cli.list_targets(gun) == {"app-1.0": DIGEST}
    new = rig.run("ceremony", "key", "generate", "root", "--gun", guns[0]).stdout.strip()
    rig.run("ceremony", "key", "certify", new, *gun_args(guns[1:]))
    pub = tmp_path / "new-root"
    rig.run("ceremony", "key", "export-public", *gun_args(guns), "--key", new, "--out", str(pub))
    rig.run("ceremony-online", "rotate", "root", *gun_args(guns), "--public-keys", str(pub))
    honest = tmp_path / "rotate.batch.json"
    rig.run("ceremony-online", "export", "--all", "--out", str(honest))
    # r2's new root certificate swapped for r0's (same key, CN = another repository).
    requests = inner(honest)
    r0_cert = PublicKeysDocument.from_bytes((pub / f"{gun_folder(guns[0])}.json").read_bytes())
    cert: Key = r0_cert.keys[0].key
    requests[guns[2]] = with_changes(requests[guns[2]], [ReplaceKeys("root", (cert,), 1)])
    forged = rebatch(requests, tmp_path / "swapped.json")
    refused = rig.run(
        "ceremony", "sign", str(forged), "--out", str(tmp_path / "x"), "--yes", "--accept", "root",
        code=1,
    )  # fmt: skip
    sentence = one_sentence(refused)
    assert "The batch is refused" in sentence and guns[2] in sentence
    assert "not valid for" in refused.stdout
    # The honest batch: the change of who signs root is accepted once for all three.
    text = rig.run("ceremony", "review", str(honest)).stdout
    assert "--accept root" in text and "(3 repositories)" in text
    assert sum(1 for line in text.splitlines() if line.startswith("! ")) >= 3
    plain = rig.run("ceremony", "sign", str(honest), "--out", str(tmp_path / "x"), "--yes", code=1)
    assert "--accept root" in one_sentence(plain)
    sigs = tmp_path / "rotate.sigs"
    rig.run("ceremony", "sign", str(honest), "--out", str(sigs), "--yes", "--accept", "root")
    rig.run("ceremony-online", "publish", str(sigs))
    for gun in guns:  # each old client follows the rotation
        assert notary_cli.list_targets(gun) == {"app-1.0": DIGEST}
        assert versions(rig, gun)["root"] == 2


def test_a_batch_publish_goes_on_past_a_failed_repository_and_a_rerun_finishes(
    notary_server: NotaryServer, notary_cli: NotaryCli, tmp_path: Path
) -> None:
    guns = [f"example.com/fleet-publish/r{i}" for i in range(4)]
    rig = Rig(notary_server, tmp_path, guns[0])
    make_fleet(rig, guns)
    extra = tmp_path / "more.txt"
    extra.write_text("".join(f"{g} app-2.0 {'cd' * 32} 20\n" for g in guns))
    rig.run("ceremony-online", "add", "--from-batch", str(extra))
    batch = tmp_path / "more.batch.json"
    rig.run("ceremony-online", "export", "--all", "--out", str(batch))
    sigs = tmp_path / "more.sigs"
    rig.run("ceremony", "sign", str(batch), "--out", str(sigs), "--yes")
    # r1's signatures document is damaged in transit, r2's server state moves before publish.
    document = json.loads(sigs.read_bytes())
    broken = dict(document)
    docs = [dict(d) for d in document["documents"]]
    docs[1]["roles"] = [dict(r, signatures=[]) for r in docs[1]["roles"]]
    broken["documents"] = docs
    damaged = tmp_path / "damaged.sigs"
    damaged.write_bytes(encode_canonical(broken))
    # Another online machine publishes a change to r2 in between: the server moved.
    elsewhere = dict(rig.env, CEREMONY_ONLINE_HOME=str(tmp_path / "online-2"))
    single = tmp_path / "single.json"
    rig.run_env(elsewhere, "ceremony-online", "refresh", guns[2], "--role", "root")
    rig.run_env(elsewhere, "ceremony-online", "export", guns[2], "--out", str(single))
    abandoned = inner(batch)[guns[2]].id  # this machine signed it: acknowledged by name
    rig.run(
        "ceremony", "sign", str(single), "--out", str(tmp_path / "single.sig"), "--yes",
        "--abandon", abandoned,
    )  # fmt: skip
    rig.run_env(elsewhere, "ceremony-online", "publish", str(tmp_path / "single.sig"))
    failed = rig.run("ceremony-online", "publish", str(damaged), "--jobs", "2", code=1)
    assert f"{guns[0]}: published" in failed.stdout and f"{guns[3]}: published" in failed.stdout
    assert f"{guns[1]}: FAILED" in failed.stdout and f"{guns[2]}: FAILED" in failed.stdout
    sentence = one_sentence(failed)
    assert guns[1] in sentence and guns[2] in sentence and "run the same publish again" in sentence
    assert notary_cli.list_targets(guns[3]) == {"app-1.0": DIGEST, "app-2.0": "cd" * 32}
    # Nothing lost: the intact document finishes r1; r2 moved, so its request is refused again.
    rerun = rig.run("ceremony-online", "publish", str(sigs), code=1)
    assert f"{guns[0]}: already published" in rerun.stdout
    assert f"{guns[1]}: published" in rerun.stdout
    assert "moved since request" in rerun.stdout.split(f"{guns[2]}: FAILED")[1].split("\n")[0]
    assert notary_cli.list_targets(guns[1]) == {"app-1.0": DIGEST, "app-2.0": "cd" * 32}
    status = json.loads(rig.run("ceremony-online", "status", "--json").stdout)
    waiting = {s["gun"]: len(s["requests_waiting"]) for s in status}
    assert waiting == {guns[0]: 0, guns[1]: 0, guns[2]: 1, guns[3]: 0}


def test_a_thin_batch_on_a_machine_lacking_a_base_says_re_export_without_thin(
    notary_server: NotaryServer, tmp_path: Path
) -> None:
    guns = [f"example.com/fleet-thin/r{i}" for i in range(2)]
    rig = Rig(notary_server, tmp_path, guns[0])
    make_fleet(rig, guns)
    rig.run("ceremony-online", "refresh", "--all", "--role", "targets")
    thin, full = tmp_path / "thin.json", tmp_path / "full.json"
    rig.run("ceremony-online", "export", "--all", "--out", str(thin), "--thin")
    rig.run("ceremony-online", "export", "--all", "--out", str(full))
    assert BatchRequest.from_bytes(thin.read_bytes()).digest == (
        BatchRequest.from_bytes(full.read_bytes()).digest
    )
    assert thin.stat().st_size < full.stat().st_size
    # Another keyholder's machine that never saw these repositories' bodies.
    other = rig.offline(tmp_path / "other-offline")
    proc = rig.run_env(other, "ceremony", "review", str(thin), code=1)
    sentence = one_sentence(proc)
    assert "re-export without --thin" in sentence and guns[0] in sentence and guns[1] in sentence
    # The full batch reviews there: first contact, confirmed once by the root key's fingerprint.
    text = rig.run_env(other, "ceremony", "review", str(full)).stdout
    assert text.count("--expect-key") == 1 and "(2 repositories)" in text


def test_batch_staging_refuses_malformed_lists_and_mixed_forms(
    notary_server: NotaryServer, tmp_path: Path
) -> None:
    rig = Rig(notary_server, tmp_path, "example.com/fleet-usage/a")
    bad = tmp_path / "bad.txt"
    bad.write_text("example.com/fleet-usage/a app 1234 10\n")
    assert "Line 1" in one_sentence(
        rig.run("ceremony-online", "add", "--from-batch", str(bad), code=1)
    )
    assert "--all" in one_sentence(rig.run("ceremony-online", "export", "--out", "x", code=2))
    both = rig.run("ceremony-online", "export", "a.com/b", "--all", "--out", "x", code=2)
    assert "positional GUN" in one_sentence(both)
    empty = rig.run("ceremony-online", "refresh", "--all", "--role", "targets", code=1)
    assert "knows no repository" in one_sentence(empty)
    window = rig.run("ceremony-online", "status", "--expiring-within", "soon", code=2)
    assert "90d" in one_sentence(window)


def test_a_shared_root_key_on_a_token_certifies_and_signs_a_batch(
    notary_server: NotaryServer, notary_cli: NotaryCli, tmp_path: Path
) -> None:
    """`key certify` and the batch signing go through the token backend (SoftHSM2)."""
    from tests.e2e.test_token import TOKEN, assert_no_private_key_file, token_rig

    guns = [f"example.com/fleet-token/r{i}" for i in range(3)]
    rig, _ = token_rig(notary_server, tmp_path, guns[0])
    root, _ = make_fleet(rig, guns, token=TOKEN)
    assert_no_private_key_file(tmp_path / "offline")
    record = json.loads((tmp_path / "offline" / "keys" / f"{root}.json").read_text())
    assert sorted(record["guns"]) == guns and record["uri"].startswith("pkcs11:")
    rig.run("ceremony-online", "refresh", "--all", "--role", "root", "--role", "targets")
    text = ceremony(rig, "refresh", guns)
    assert "Made 6 signature(s) for 3 repositories" in text
    for gun in guns:
        assert notary_cli.list_targets(gun) == {"app-1.0": DIGEST}
        assert versions(rig, gun)["root"] == 2


def test_a_batch_publish_with_the_server_gone_loses_nothing_and_the_rerun_completes(
    notary_server: NotaryServer, notary_cli: NotaryCli, tmp_path: Path
) -> None:
    from tests.notary_env import free_port

    guns = [f"example.com/fleet-gone/r{i}" for i in range(2)]
    rig = Rig(notary_server, tmp_path, guns[0])
    make_fleet(rig, guns)
    rig.run("ceremony-online", "refresh", "--all", "--role", "targets")
    batch, sigs = tmp_path / "b.json", tmp_path / "s.json"
    rig.run("ceremony-online", "export", "--all", "--out", str(batch))
    rig.run("ceremony", "sign", str(batch), "--out", str(sigs), "--yes")
    gone = dict(rig.env, CEREMONY_SERVER=f"https://127.0.0.1:{free_port()}")
    failed = rig.run_env(gone, "ceremony-online", "publish", str(sigs), code=3)
    assert failed.stdout.count(": FAILED") == 2
    assert "run the same publish again" in one_sentence(failed)
    status = json.loads(rig.run("ceremony-online", "status", "--json").stdout)
    assert all(len(s["requests_waiting"]) == 1 for s in status)  # kept, with its signatures
    done = rig.run("ceremony-online", "publish", str(sigs))
    assert done.stdout.count(": published (targets v2)") == 2
    for gun in guns:
        assert notary_cli.list_targets(gun) == {"app-1.0": DIGEST}
