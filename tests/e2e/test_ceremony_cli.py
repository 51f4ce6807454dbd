"""The offline half's refusals and threshold signing, driven through both real CLIs.

Every refusal exits 1 with one sentence and writes nothing: no signatures file,
and the offline trust state is byte-for-byte unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ceremony.core.canonical import encode_canonical
from tests.attacker import reidentify
from tests.e2e.rig import (
    BIN,
    Rig,
    expect_keys,
    export_change,
    fingerprints,
    full_ceremony,
    one_sentence,
    publish_new,
    stage_text_target,
)
from tests.notary_env import NotaryCli, NotaryServer


def snapshot_home(home: Path) -> dict[str, bytes]:
    """Every file of a home and its bytes (lock files carry nothing and are left out; the
    transcript, the one file every command appends to, is tested in tests/test_transcript.py)."""
    return {
        str(p.relative_to(home)): p.read_bytes()
        for p in sorted(home.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock") and p.name != "transcript.jsonl"
    }


@pytest.fixture
def published(notary_server: NotaryServer, new_gun, tmp_path: Path) -> Rig:
    return publish_new(notary_server, tmp_path, new_gun())


@pytest.fixture(scope="module")
def shared(
    notary_server: NotaryServer, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Rig, bytes]:
    """One published repository and one exported request, for tests that only read them."""
    rig = publish_new(
        notary_server, tmp_path_factory.mktemp("shared"), "example.com/test/tamper-shared"
    )
    return rig, export_change(rig, "b").read_bytes()


def refuse(rig: Rig, request: Path, *, env: dict[str, str] | None = None, code: int = 1) -> str:
    """Sign must refuse: exit `code`, one sentence, no output file, trust state untouched."""
    env = env or rig.env
    home = Path(env["CEREMONY_HOME"])
    before = snapshot_home(home)
    out = rig.tmp / "refused.sig.json"
    proc = rig.run_env(env, "ceremony", "sign", str(request), "--out", str(out), "--yes", code=code)
    assert not out.exists()
    assert snapshot_home(home) == before
    return one_sentence(proc)


def mutate(doc: dict[str, Any], path: tuple[Any, ...], value: Callable[[Any], Any]) -> None:
    target = doc
    for key in path[:-1]:
        if isinstance(key, str) and key.startswith("@"):  # a base entry by role
            target = next(e for e in target if e["role"] == key[1:])
        else:
            target = target[key]
    target[path[-1]] = value(target[path[-1]])


def flip_hex(h: str) -> str:
    return ("0" if h[0] != "0" else "1") + h[1:]


def edit_b64(old: bytes, new: bytes) -> Callable[[str], str]:
    def edit(data: str) -> str:
        raw = base64.b64decode(data)
        assert old in raw
        return base64.b64encode(raw.replace(old, new, 1)).decode()

    return edit


TAMPERS: dict[str, tuple[tuple[Any, ...], Callable[[Any], Any]]] = {
    "id": (("id",), flip_hex),
    "nonce": (("nonce",), flip_hex),
    "gun": (("gun",), lambda g: g + "-other"),
    "created": (("created",), lambda c: "2001-01-01T00:00:00Z"),
    "base-data": (("base", 0, "data"), edit_b64(b'"expires":"2', b'"expires":"3')),
    "base-form": (("base", 0, "data"), edit_b64(b'"version":', b'"version": ')),
    "base-targets": (("base", "@targets", "data"), edit_b64(b'"expires":"2', b'"expires":"3')),
    "base-version": (("base", 0, "version"), lambda v: v + 1),
    "base-sha256": (("base", 0, "sha256"), flip_hex),
    "change-name": (("changes", 0, "name"), lambda n: n + "-evil"),
    "change-length": (("changes", 0, "meta", "length"), lambda n: n + 1),
    "expect-digest": (("expect", 0, "digest"), flip_hex),
    "expect-version": (("expect", 0, "version"), lambda v: v + 5),
    "expect-expires": (("expect", 0, "expires"), lambda e: "2099-01-01T00:00:00Z"),
    "expect-signers": (("expect", 0, "signers", 0, "threshold"), lambda t: t + 1),
    "media-type": (("media_type",), lambda m: m.replace("request", "signatures")),
}


@pytest.mark.parametrize("field", sorted(TAMPERS))
def test_each_tampered_field_is_refused(shared: tuple[Rig, bytes], field: str) -> None:
    rig, original = shared
    doc = json.loads(original)
    path, change = TAMPERS[field]
    mutate(doc, path, change)
    bad = rig.tmp / f"tampered-{field}.json"
    bad.write_bytes(encode_canonical(doc))
    refuse(rig, bad)


REIDENTIFIED = {
    "change-name": "altered",
    "expect-digest": "altered",
    "base-data": "does not chain",
    "base-targets": "valid signature",
    "base-form": "exact form",
    "gun": "not valid for",
}


@pytest.mark.parametrize("field", sorted(REIDENTIFIED))
def test_tampering_with_a_recomputed_id_is_still_refused(
    shared: tuple[Rig, bytes], field: str
) -> None:
    """An attacker who also fixes the content id is caught by verification and recomputation."""
    rig, original = shared
    doc = json.loads(original)
    path, change = TAMPERS[field]
    mutate(doc, path, change)
    reidentify(doc)
    bad = rig.tmp / f"reidentified-{field}.json"
    bad.write_bytes(encode_canonical(doc))
    assert REIDENTIFIED[field] in refuse(rig, bad)


def test_wrong_passphrase_fails_cleanly(shared: tuple[Rig, bytes]) -> None:
    rig, original = shared
    request = rig.tmp / "passphrase.json"
    request.write_bytes(original)
    env = dict(rig.env, NOTARY_TARGETS_PASSPHRASE="not-the-passphrase")
    sentence = refuse(rig, request, env=env)
    assert "passphrase" in sentence and "not-the-passphrase" not in sentence


def test_sign_without_terminal_or_yes_aborts(shared: tuple[Rig, bytes]) -> None:
    rig, original = shared
    request = rig.tmp / "no-yes.json"
    request.write_bytes(original)
    out = rig.tmp / "no-yes.sig"
    proc = rig.run("ceremony", "sign", str(request), "--out", str(out), code=4)
    assert not out.exists()
    assert "--yes" in one_sentence(proc)


def test_replayed_request_is_refused(published: Rig) -> None:
    request = export_change(published, "b")
    published.run("ceremony", "sign", str(request), "--out", str(published.tmp / "b.sig"), "--yes")
    published.run("ceremony-online", "publish", str(published.tmp / "b.sig"))
    sentence = refuse(published, request)
    assert "already signed" in sentence


def test_stale_base_after_a_newer_one_is_refused(published: Rig) -> None:
    old = export_change(published, "b")  # targets v2 base
    published.run("ceremony", "sign", str(old), "--out", str(published.tmp / "b.sig"), "--yes")
    published.run("ceremony-online", "publish", str(published.tmp / "b.sig"))
    newer = export_change(published, "c")  # base targets v3: the offline side now trusts v3
    published.run("ceremony", "review", str(newer))
    published.run("ceremony", "sign", str(newer), "--out", str(published.tmp / "c.sig"), "--yes")
    # A request built on the old base, with a fresh id (an attacker replaying old data).
    doc = json.loads(old.read_bytes())
    doc["nonce"] = "0" * 32
    reidentify(doc)
    stale = published.tmp / "stale.json"
    stale.write_bytes(encode_canonical(doc))
    assert "stale or replayed" in refuse(published, stale)


def test_request_for_another_gun_with_a_recomputed_id_is_refused(shared: tuple[Rig, bytes]) -> None:
    """A request that names another GUN but carries this repository's root fails the certificate check."""
    rig, original = shared
    doc = json.loads(original)
    doc["gun"] = "example.com/someone/else"
    reidentify(doc)
    bad = rig.tmp / "other-gun.json"
    bad.write_bytes(encode_canonical(doc))
    assert "not valid for example.com/someone/else" in refuse(rig, bad)


def test_base_that_does_not_chain_to_the_trust_state_is_refused(
    published: Rig, notary_cli: NotaryCli, tmp_path: Path
) -> None:
    """The server's repository is replaced by one under other keys: the offline root no longer chains."""
    notary_cli.run("delete", published.gun, "--remote")
    impostor = Rig.__new__(Rig)
    impostor.__dict__.update(published.__dict__)
    impostor.env = dict(
        published.env,
        CEREMONY_HOME=str(tmp_path / "impostor-offline"),
        CEREMONY_ONLINE_HOME=str(tmp_path / "impostor-online"),
    )
    impostor.setup_repository()
    stage_text_target(impostor, "x", "x\n")
    full_ceremony(impostor, "impostor-init")
    (tmp_path / "y.txt").write_text("y\n")
    impostor.run("ceremony-online", "add", published.gun, "y", str(tmp_path / "y.txt"))
    impostor.run("ceremony-online", "export", published.gun, "--out", str(tmp_path / "y.json"))
    sentence = refuse(published, tmp_path / "y.json")
    assert "does not chain" in sentence or "differs from the root" in sentence


def test_signatures_for_another_request_are_refused_at_publish(published: Rig) -> None:
    first = export_change(published, "b")
    published.run("ceremony", "sign", str(first), "--out", str(published.tmp / "b.sig"), "--yes")
    # A second request for the same change set, never signed: publishing b.sig for it is fine,
    # but a signatures document whose request id was altered is for no request we exported.
    doc = json.loads((published.tmp / "b.sig").read_bytes())
    doc["request_id"] = flip_hex(doc["request_id"])
    foreign = published.tmp / "foreign.sig"
    foreign.write_bytes(encode_canonical(doc))
    proc = published.run("ceremony-online", "publish", str(foreign), code=1)
    one_sentence(proc)


def test_threshold_two_of_two_across_two_homes(
    notary_server: NotaryServer, notary_cli: NotaryCli, new_gun, tmp_path: Path
) -> None:
    rig = Rig(notary_server, tmp_path, new_gun())
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    a_env, b_env = rig.offline(alice), rig.offline(bob)
    rig.run_env(a_env, "ceremony", "key", "generate", "root", "--gun", rig.gun)
    a_id = rig.run_env(
        a_env, "ceremony", "key", "generate", "targets", "--gun", rig.gun
    ).stdout.strip()
    b_id = rig.run_env(
        b_env, "ceremony", "key", "generate", "targets", "--gun", rig.gun
    ).stdout.strip()
    rig.run_env(
        a_env,
        "ceremony",
        "key",
        "export-public",
        "--gun",
        rig.gun,
        "--out",
        str(tmp_path / "a.pub"),
    )
    rig.run_env(
        b_env,
        "ceremony",
        "key",
        "export-public",
        "--gun",
        rig.gun,
        "--out",
        str(tmp_path / "b.pub"),
    )
    merged = json.loads((tmp_path / "a.pub").read_bytes())
    merged["keys"] += json.loads((tmp_path / "b.pub").read_bytes())["keys"]
    (tmp_path / "ab.pub").write_bytes(encode_canonical(merged))
    rig.run(
        "ceremony-online",
        "init",
        rig.gun,
        "--public-keys",
        str(tmp_path / "ab.pub"),
        "--targets-threshold",
        "2",
    )
    (tmp_path / "t.txt").write_text("two keys\n")
    rig.run("ceremony-online", "add", rig.gun, "t", str(tmp_path / "t.txt"))
    rig.run("ceremony-online", "export", rig.gun, "--out", str(tmp_path / "r.json"))
    # Each keyholder confirms the keys it does not hold by the fingerprints on the record.
    a_fp, b_fp = fingerprints(tmp_path / "a.pub"), fingerprints(tmp_path / "b.pub")
    rig.run_env(
        a_env,
        "ceremony",
        "sign",
        str(tmp_path / "r.json"),
        "--out",
        str(tmp_path / "a.sig"),
        "--yes",
        *expect_keys(*b_fp["targets"]),
    )
    rig.run_env(
        b_env,
        "ceremony",
        "sign",
        str(tmp_path / "r.json"),
        "--out",
        str(tmp_path / "b.sig"),
        "--yes",
        *expect_keys(*a_fp["root"], *a_fp["targets"]),
    )

    short = rig.run("ceremony-online", "publish", str(tmp_path / "a.sig"), code=1)
    sentence = one_sentence(short)
    assert "targets" in sentence and "1 more" in sentence
    rig.run("ceremony-online", "publish", str(tmp_path / "b.sig"), str(tmp_path / "a.sig"))
    assert notary_cli.list_targets(rig.gun) == {"t": hashlib.sha256(b"two keys\n").hexdigest()}
    assert a_id != b_id


@pytest.mark.parametrize(
    ("content", "sentence"),
    [
        (b"\x89PNG not json", "The signing request is not UTF-8 text."),
        (b"[1, 2", "The signing request is not valid JSON"),
        (
            b'{"media_type": "application/vnd.notary-ceremony.signatures.v1+json"}',
            "This file is a signatures document, not a signing request.",
        ),
        (
            b'{"media_type": "text/plain"}',
            "This is not a signing request: its media type is 'text/plain'.",
        ),
        (b'{"a": 1}', "This is not a signing request of this toolkit (no media type)."),
        (
            b'{"a": 1.5}',
            "The signing request is not acceptable: the JSON holds a non-integer number",
        ),
    ],
)
def test_garbage_and_foreign_files_are_one_sentence(
    tmp_path: Path, content: bytes, sentence: str
) -> None:
    path = tmp_path / "input.json"
    path.write_bytes(content)
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", CEREMONY_HOME=str(tmp_path / "home"))
    proc = Rig.__new__(Rig).run_env(env, "ceremony", "review", str(path), code=1)
    assert one_sentence(proc).startswith(f"error: {sentence}")
