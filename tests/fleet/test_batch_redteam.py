"""Issue 14 follow-up: an attacker who controls the online machine rebuilds a whole BATCH.

The attacker holds everything the online half holds (tests/attacker.py): it rebuilds any
inner request from anything the server ever served, recomputes every unkeyed digest, each
inner request id and the batch's own digest, and reads the matching words aloud. What is
left to stop it is keyed: the offline trust state, the keys held here and acknowledgements
by name. Through the real `ceremony review` / `ceremony sign` on the batch, each attack is
refused as a whole, or shown with a `!` line and refused until acknowledged by name.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ceremony.core.canonical import encode_canonical
from ceremony.core.changes import InitRepository, ReplaceKeys, SetDelegation
from ceremony.core.documents import PublicKeysDocument
from ceremony.core.gun import gun_folder
from ceremony.core.keys import key_fingerprint
from ceremony.core.metadata import Key
from ceremony.signing.certificates import make_root_certificate
from ceremony.signing.private import PrivateKey
from tests.attacker import capture, forge, with_changes
from tests.e2e.rig import Rig, one_sentence
from tests.fleet.rig import gun_args, inner, make_fleet, rebatch
from tests.notary_env import NotaryServer

pytestmark = pytest.mark.notary

GUNS = [f"example.com/fleet-redteam/r{i}" for i in range(3)]


@pytest.fixture(scope="module")
def fleet(
    notary_server: NotaryServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Rig, Path]]:
    """Three repositories sharing root and targets keys, published by one batch ceremony,
    and an honest refresh batch for all three, exported and not yet signed."""
    tmp = tmp_path_factory.mktemp("batch-redteam")
    rig = Rig(notary_server, tmp, GUNS[0])
    make_fleet(rig, GUNS)
    rig.run("ceremony-online", "refresh", *gun_args(GUNS), "--role", "targets")
    honest = tmp / "refresh.batch.json"
    rig.run("ceremony-online", "export", "--all", "--out", str(honest))
    yield rig, honest


def held_key(rig: Rig, gun: str, role: str) -> Key:
    """A key the offline home holds, as the online machine got it (the public keys file)."""
    document = PublicKeysDocument.from_bytes(
        (rig.tmp / "pub" / f"{gun_folder(gun)}.json").read_bytes()
    )
    return next(e.key for e in document.keys if e.role == role)


def refused_as_a_whole(rig: Rig, batch: Path, gun: str, *args: str) -> str:
    """`sign` refuses the batch naming `gun` (and no other), writes nothing; the review, too."""
    out = rig.tmp / "never.sigs"
    proc = rig.run("ceremony", "sign", str(batch), "--out", str(out), "--yes", *args, code=1)
    sentence = one_sentence(proc)
    assert "The batch is refused" in sentence and gun in sentence, sentence
    assert all(g not in sentence for g in GUNS if g != gun), sentence
    assert not out.exists()
    assert gun in one_sentence(rig.run("ceremony", "review", str(batch), code=1))
    return proc.stdout


def needs_acknowledgement(rig: Rig, batch: Path, gun: str, flag: str) -> str:
    """The review shows a `!` line for `gun` and asks for `flag` by name; `sign` without it
    refuses and writes nothing. Returns the review."""
    review = rig.run("ceremony", "review", str(batch)).stdout
    bangs = [line for line in review.splitlines() if line.startswith(f"! {gun}: ")]
    assert bangs, review
    assert f"  {flag}" in review, review
    out = rig.tmp / "never.sigs"
    proc = rig.run("ceremony", "sign", str(batch), "--out", str(out), "--yes", code=1)
    sentence = one_sentence(proc)
    assert "must be acknowledged by name" in sentence and flag.split()[0] in sentence, sentence
    assert not out.exists()
    return review


def test_another_repositorys_base_under_this_gun_is_refused(
    fleet: tuple[Rig, Path], notary_server: NotaryServer
) -> None:
    """r1's inner request rebuilt on r0's metadata (same root key and targets key: only the
    certificate's CN tells them apart) with r1's name on it."""
    rig, honest = fleet
    requests = inner(honest)
    stolen = capture(notary_server, GUNS[0])
    requests[GUNS[1]] = forge(GUNS[1], stolen, list(requests[GUNS[1]].changes))
    forged = rebatch(requests, rig.tmp / "swapped-base.json")
    shown = refused_as_a_whole(rig, forged, GUNS[1])
    assert f"x {GUNS[1]}" in shown and "does not chain to the trust state" in shown


def test_a_repository_never_trusted_here_with_a_new_root_needs_its_keys_confirmed(
    fleet: tuple[Rig, Path],
) -> None:
    """A fourth repository slipped into the batch: the attacker's root (a certificate for the
    new GUN) and keys; nothing of it is held here."""
    rig, honest = fleet
    gun = "example.com/fleet-redteam/planted"
    root = PrivateKey.generate_ecdsa()
    keys = [PrivateKey.generate_ecdsa().public_key() for _ in range(3)]
    now = datetime.now(UTC)
    cert = make_root_certificate(root, gun, now)
    change = InitRepository((cert,), 1, (keys[0],), 1, keys[1], keys[2])
    requests = inner(honest) | {gun: forge(gun, None, [change], now=now)}
    forged = rebatch(requests, rig.tmp / "planted.json")
    review = rig.run("ceremony", "review", str(forged)).stdout
    assert f"! {gun}: root: + root key {key_fingerprint(cert)} (not held here)" in review
    assert f"--expect-key {key_fingerprint(cert)}" in review
    out = rig.tmp / "never.sigs"
    proc = rig.run("ceremony", "sign", str(forged), "--out", str(out), "--yes", code=1)
    assert "--expect-key" in one_sentence(proc) and not out.exists()
    # The planted root made with the fleet's own root key (a certificate the attacker
    # issues for the new GUN: Notary checks no certificate signature) is still not held for
    # that GUN: confirming its fingerprint signs nothing for it.
    own = held_key(rig, GUNS[0], "root")
    targets = held_key(rig, GUNS[0], "targets")
    borrowed = _certificate_for(own, gun, now)
    change = InitRepository((borrowed,), 1, (targets,), 1, keys[1], keys[2])
    requests = inner(honest) | {gun: forge(gun, None, [change], now=now)}
    forged = rebatch(requests, rig.tmp / "planted-own-key.json")
    proc = rig.run("ceremony", "sign", str(forged), "--out", str(out), "--yes", code=1)
    assert "--expect-key" in one_sentence(proc) and not out.exists()
    # The fingerprints even match the keyholder's record (they are the fleet's own keys),
    # but neither key is held for that GUN: confirming them signs nothing.
    confirmed = [a for k in (own, targets) for a in ("--expect-key", key_fingerprint(k))]
    proc = rig.run("ceremony", "sign", str(forged), "--out", str(out), "--yes", *confirmed, code=1)
    assert f"! {gun}: root: + root key {key_fingerprint(own)} (not held here)" in proc.stdout
    assert "holds none of the keys" in one_sentence(proc) and not out.exists()


def _certificate_for(key: Key, gun: str, now: datetime) -> Key:
    """An X.509 certificate for GUN holding `key`'s public half, issued by another key."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from ceremony.core.keys import public_key_of

    issuer = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, gun)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key_of(key))
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .sign(issuer, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    return Key("ecdsa-x509", base64.b64encode(pem).decode())


def test_a_key_and_threshold_change_in_one_inner_request_needs_accept_and_expect_key(
    fleet: tuple[Rig, Path],
) -> None:
    rig, honest = fleet
    requests = inner(honest)
    theirs = PrivateKey.generate_ecdsa().public_key()
    targets = held_key(rig, GUNS[2], "targets")
    request = requests[GUNS[2]]
    requests[GUNS[2]] = with_changes(
        request, [*request.changes, ReplaceKeys("targets", (targets, theirs), 2)]
    )
    forged = rebatch(requests, rig.tmp / "threshold.json")
    review = needs_acknowledgement(rig, forged, GUNS[2], "--accept targets")
    assert f"--expect-key {key_fingerprint(theirs)}" in review
    # Accepting the role is not enough: the attacker's key is confirmed by fingerprint.
    out = rig.tmp / "never.sigs"
    proc = rig.run(
        "ceremony", "sign", str(forged), "--out", str(out), "--yes", "--accept", "targets", code=1
    )
    assert "--expect-key" in one_sentence(proc) and not out.exists()


def test_a_delegation_added_in_one_inner_request_needs_accept_by_role(
    fleet: tuple[Rig, Path],
) -> None:
    rig, honest = fleet
    requests = inner(honest)
    theirs = PrivateKey.generate_ecdsa().public_key()
    request = requests[GUNS[1]]
    requests[GUNS[1]] = with_changes(
        request, [*request.changes, SetDelegation("targets/releases", (theirs,), 1, ("rel/",))]
    )
    forged = rebatch(requests, rig.tmp / "delegation.json")
    needs_acknowledgement(rig, forged, GUNS[1], "--accept targets/releases")


def test_an_inner_request_already_signed_here_is_a_replay(fleet: tuple[Rig, Path]) -> None:
    """r0's init request, signed and published by the first batch, put into the refresh."""
    rig, honest = fleet
    requests = inner(honest)
    requests[GUNS[0]] = inner(rig.tmp / "init.batch.json")[GUNS[0]]
    forged = rebatch(requests, rig.tmp / "replay.json")
    shown = refused_as_a_whole(rig, forged, GUNS[0])
    assert "already signed" in shown


def test_the_batch_digest_dropped_or_left_stale_is_refused(fleet: tuple[Rig, Path]) -> None:
    rig, honest = fleet
    doc = json.loads(honest.read_bytes())
    del doc["id"]
    dropped = rig.tmp / "no-id.json"
    dropped.write_bytes(encode_canonical(doc))
    proc = rig.run("ceremony", "review", str(dropped), code=1)
    assert "id" in one_sentence(proc)
    doc = json.loads(honest.read_bytes())
    doc["requests"].pop()
    stale = rig.tmp / "stale-id.json"
    stale.write_bytes(encode_canonical(doc))
    proc = rig.run("ceremony", "sign", str(stale), "--out", str(rig.tmp / "x"), "--yes", code=1)
    assert "altered after export" in one_sentence(proc) and not (rig.tmp / "x").exists()


def test_the_honest_batch_still_signs(fleet: tuple[Rig, Path]) -> None:
    """The attacks above left nothing behind: the honest refresh signs and publishes."""
    rig, honest = fleet
    sigs = rig.tmp / "refresh.sigs"
    rig.run("ceremony", "sign", str(honest), "--out", str(sigs), "--yes")
    rig.run("ceremony-online", "publish", str(sigs))
