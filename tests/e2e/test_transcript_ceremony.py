"""A real ceremony against the real notary-server, as the offline transcript records it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ceremony.core.canonical import encode_canonical
from ceremony.core.documents import Request
from ceremony.offline.transcript import head_words, verify_chain
from tests.attacker import reidentify
from tests.e2e.rig import Rig, full_ceremony, one_sentence, stage_text_target
from tests.notary_env import PASSPHRASE, NotaryServer


def signed_key_ids(signatures: Path) -> list[str]:
    doc = json.loads(signatures.read_bytes())
    return [s["keyid"] for role in doc["roles"] for s in role["signatures"]]


def test_review_sign_and_a_refused_request_are_on_the_transcript(
    notary_server: NotaryServer, new_gun: Callable[[], str], tmp_path: Path
) -> None:
    rig = Rig(notary_server, tmp_path, new_gun())
    rig.setup_repository()
    stage_text_target(rig, "a", "a\n")
    full_ceremony(rig, "init")
    stage_text_target(rig, "b", "b\n")
    request = tmp_path / "b.request.json"
    rig.run("ceremony-online", "export", rig.gun, "--out", str(request))
    rig.run("ceremony", "review", str(request))
    signatures = tmp_path / "b.sig"
    rig.run("ceremony", "sign", str(request), "--out", str(signatures), "--yes")
    rig.run("ceremony-online", "publish", str(signatures))
    # The request moved to another GUN under a fresh id: `review` refuses it (this
    # repository's root certificate names the real GUN), and the transcript says so.
    doc = json.loads(request.read_bytes())
    doc["gun"] = "example.com/someone/else"
    reidentify(doc)
    moved = tmp_path / "other-gun.json"
    moved.write_bytes(encode_canonical(doc))
    refused = rig.run("ceremony", "review", str(moved), code=1)

    home = tmp_path / "offline"
    text = (home / "transcript.jsonl").read_text()
    assert PASSPHRASE not in text
    entries = verify_chain(text.encode()).entries
    commands = [e.argv[0] if e.argv[0] != "key" else " ".join(e.argv[:2]) for e in entries]
    assert commands == [
        "key generate",
        "key generate",
        "key export-public",
        "sign",
        "review",
        "sign",
        "review",
    ]
    assert all(e.exit == 0 for e in entries[:-1])
    b = Request.from_bytes(request.read_bytes())
    review, sign, stale_review = entries[-3:]
    assert (review.request_id, review.digest, review.keys) == (b.id, b.digest, ())
    assert (sign.request_id, sign.digest) == (b.id, b.digest)
    assert list(sign.keys) == signed_key_ids(signatures) and sign.keys
    assert stale_review.exit == 1
    assert stale_review.request_id == doc["id"] != b.id
    assert f"error: {stale_review.error}" == one_sentence(refused)
    assert f"transcript: line 7, head {head_words(stale_review.hash)}" in refused.stderr
    init_sign = entries[3]
    assert init_sign.keys and init_sign.request_id is not None
