"""Attacks found by a red-team pass on the offline signer, each now refused.

Each test rebuilds the attack the way a compromised online machine would (our own
library, every unkeyed digest recomputed) and shows that `ceremony sign` refuses it
with one sentence and changes nothing, or marks it `!` and asks for it by name.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

from ceremony.core.changes import (
    AddTarget,
    InitRepository,
    RemoveTarget,
    ReplaceKeys,
    SetExpiry,
    SetVersion,
)
from ceremony.core.documents import Request
from ceremony.core.errors import MalformedInput
from ceremony.core.gotime import GoTime
from ceremony.core.keys import describe_key, key_fingerprint, pem_blocks, pem_encode, public_key_of
from ceremony.core.metadata import (
    DelegatedRole,
    Delegations,
    Envelope,
    FileMeta,
    Key,
    RoleKeys,
    Root,
    Snapshot,
    Targets,
    Timestamp,
    body_bytes,
    parse_any,
)
from ceremony.core.plan import plan
from ceremony.core.verify import parse_files
from ceremony.signing.certificates import make_root_certificate
from ceremony.signing.private import PrivateKey, sign
from online.client.config import ServerConfig
from online.client.http import TrustServer
from online.flow import base_envelopes, choose_base, default_expiry
from tests.attacker import capture, edit, forge, with_changes, write
from tests.e2e.rig import (
    Rig,
    expect_keys,
    export_change,
    full_ceremony,
    new_key,
    offline_delegation,
    publish_new,
)
from tests.e2e.test_trust import home, refused, review, signed
from tests.notary_env import NotaryServer

pytestmark = pytest.mark.notary

NOW = datetime.now(UTC)


@pytest.fixture
def published(notary_server: NotaryServer, new_gun, tmp_path: Path) -> Rig:
    return publish_new(notary_server, tmp_path, new_gun())


def _signed(body: object, private: PrivateKey, key: Key) -> bytes:
    return Envelope.create(body, (sign(private, key, body_bytes(body)),)).to_bytes()  # type: ignore[arg-type]


def with_releases(rig: Rig, *targets: str) -> None:
    """A `targets/releases` delegation held offline, published with `targets` in it."""
    offline_delegation(rig)
    for name in targets:
        (rig.tmp / name).write_text(name)
        rig.run(
            "ceremony-online",
            "add",
            rig.gun,
            name,
            str(rig.tmp / name),
            "--role",
            "targets/releases",
        )
        full_ceremony(rig, name)


def test_f1_first_contact_needs_root_keys_that_signed_not_merely_listed(
    published: Rig, notary_server: NotaryServer, tmp_path: Path
) -> None:
    """A fake repository whose root lists the real root key (and the attacker's, threshold 1),
    signed by the attacker only: confirming the real key's fingerprint does not trust it."""
    rig = published
    restored = tmp_path / "restored"  # the keys from a backup, no trust state
    shutil.copytree(home(rig), restored)
    shutil.rmtree(restored / "trust")
    env = dict(rig.env, CEREMONY_HOME=str(restored))
    real = parse_any(capture(notary_server, rig.gun)["root"]).body
    real_cert = real.keys[real.roles["root"].keyids[0]]
    real_targets = real.keys[real.roles["targets"].keyids[0]]
    expiry = GoTime.from_datetime(NOW + timedelta(days=365))
    attacker, a_targets, a_snap, a_ts = (PrivateKey.generate_ecdsa() for _ in range(4))
    a_cert = make_root_certificate(attacker, rig.gun, NOW)
    keys = [
        real_cert,
        a_cert,
        real_targets,
        a_targets.public_key(),
        a_snap.public_key(),
        a_ts.public_key(),
    ]
    root = Root(
        expiry,
        1,
        {k.key_id: k for k in keys},
        {
            "root": RoleKeys((real_cert.key_id, a_cert.key_id), 1),
            "targets": RoleKeys((real_targets.key_id, a_targets.public_key().key_id), 1),
            "snapshot": RoleKeys((a_snap.public_key().key_id,), 1),
            "timestamp": RoleKeys((a_ts.public_key().key_id,), 1),
        },
    )
    evil = PrivateKey.generate_ecdsa().public_key()
    targets = Targets(
        expiry,
        5,
        {"a": FileMeta.for_bytes(b"EVIL a\n")},
        Delegations(
            {evil.key_id: evil}, (DelegatedRole("targets/releases", (evil.key_id,), 1, ("",)),)
        ),
    )
    files = {
        "root": _signed(root, attacker, a_cert),
        "targets": _signed(targets, a_targets, a_targets.public_key()),
    }
    snapshot = Snapshot(expiry, 1, {n: FileMeta.for_bytes(d) for n, d in files.items()})
    files["snapshot"] = _signed(snapshot, a_snap, a_snap.public_key())
    timestamp = Timestamp(expiry, 1, {"snapshot": FileMeta.for_bytes(files["snapshot"])})
    files["timestamp"] = _signed(timestamp, a_ts, a_ts.public_key())
    forged = write(
        tmp_path / "fake.json",
        forge(rig.gun, files, [AddTarget("targets", "b", FileMeta.for_bytes(b"b\n"))]),
    )
    text = review(rig, forged, env=env)
    record = key_fingerprint(real_cert)
    assert f"key {record} (held on this machine; DID NOT sign it" in text
    assert f"key {key_fingerprint(a_cert)} (not held here; signed it" in text
    assert f"targets (1 needed) is signed by key {key_fingerprint(a_targets.public_key())}" in text
    sentence = refused(rig, forged, "--expect-key", record, env=env)
    assert "first contact" in sentence


def test_f2_a_thin_entry_naming_another_roles_body_is_refused(
    published: Rig, notary_server: NotaryServer
) -> None:
    rig = published
    with_releases(rig, "rel-1", "rel-2")
    files = capture(notary_server, rig.gun)
    releases = parse_any(files["targets/releases"])
    honest = forge(rig.gun, files, [AddTarget("targets", "b", FileMeta.for_bytes(b"b\n"))])
    digest = hashlib.sha256(releases.signed_map_bytes).hexdigest()
    base = tuple(
        replace(b, data=None, body_sha256=digest, version=releases.body.version)
        if b.role == "targets"
        else b
        for b in honest.base
    )
    bodies = {"root": parse_any(files["root"]).body, "targets": releases.body}
    changes = [
        AddTarget("targets", "b", FileMeta.for_bytes(b"b\n")),
        SetExpiry("targets", default_expiry("targets", NOW)),
    ]
    forged = Request.build(
        gun=rig.gun,
        created=GoTime.from_datetime(NOW),
        nonce="cd" * 16,
        base=base,
        changes=changes,
        plan=plan(bodies, changes),
    )
    path = write(rig.tmp / "thin.json", forged, thin=True)
    assert "does not rebuild into the file it names" in refused(rig, path)


def test_f3_a_delegation_left_out_of_the_base_is_refused(
    published: Rig, notary_server: NotaryServer
) -> None:
    rig = published
    with_releases(rig, "rel-1")
    files = capture(notary_server, rig.gun)
    changes = [
        AddTarget("targets/releases", "rel-3", FileMeta.for_bytes(b"rel 3\n")),
        SetVersion("targets/releases", 4),
        SetExpiry("targets/releases", default_expiry("targets/releases", NOW)),
    ]
    base = tuple(
        b for b in choose_base(parse_files(files), changes) if b.role != "targets/releases"
    )
    forged = Request.build(
        gun=rig.gun,
        created=GoTime.from_datetime(NOW),
        nonce="ef" * 16,
        base=base,
        changes=changes,
        plan=plan({r: e.body for r, e in base_envelopes(base).items()}, changes),
    )
    path = write(rig.tmp / "omit.json", forged)
    assert "leaves out targets/releases, which the server serves" in refused(rig, path)


def _certificate_for(public: Key, gun: str) -> Key:
    """Another certificate for the public key of `public`, made by anyone (Notary does not
    check certificate signatures, so a throwaway key signs it)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, gun)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key_of(public))
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(hours=1))
        .not_valid_after(NOW + timedelta(days=3650))
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    return Key("ecdsa-x509", base64.b64encode(pem).decode())


def test_f4_one_public_key_under_two_ids_is_refused(
    published: Rig, notary_server: NotaryServer
) -> None:
    """Two certificates of one key in root, threshold 2: one machine would meet it alone."""
    rig = published
    root = parse_any(capture(notary_server, rig.gun)["root"]).body
    real = root.keys[root.roles["root"].keyids[0]]
    twin = _certificate_for(real, rig.gun)
    assert key_fingerprint(twin) == key_fingerprint(real) and twin.key_id != real.key_id
    routine = Request.from_bytes(export_change(rig, "b").read_bytes())
    forged = write(
        rig.tmp / "twins.json", with_changes(routine, [ReplaceKeys("root", (real, twin), 2)])
    )
    assert "one public key under two ids" in refused(rig, forged, "--accept", "root")


def test_f5_a_thin_abandoned_root_cannot_become_the_trusted_root(
    published: Rig, notary_server: NotaryServer
) -> None:
    rig = published
    _, first_pub = new_key(rig, "root")
    rig.run("ceremony-online", "rotate", rig.gun, "root", "--public-keys", str(first_pub))
    r1 = rig.tmp / "r1.json"
    rig.run("ceremony-online", "export", rig.gun, "--out", str(r1))
    signed(rig, r1, "--accept", "root")
    rig.run(
        "ceremony-online", "requests", "cancel", rig.gun, Request.from_bytes(r1.read_bytes()).id
    )
    time.sleep(1.1)
    r2 = rig.tmp / "r2.json"
    rig.run("ceremony-online", "export", rig.gun, "--out", str(r2))
    r1_id = Request.from_bytes(r1.read_bytes()).id
    rig.run(
        "ceremony-online", "publish", str(signed(rig, r2, "--accept", "root", "--abandon", r1_id))
    )
    # A thin request whose root v2 names the abandoned R1 body, with the published root's digest.
    files = capture(notary_server, rig.gun)
    honest = forge(rig.gun, files, [AddTarget("targets", "c", FileMeta.for_bytes(b"c\n"))])
    r1_root = next(rp for rp in Request.from_bytes(r1.read_bytes()).expect if rp.role == "root")
    forged = replace(
        honest,
        base=tuple(
            replace(b, data=None, body_sha256=r1_root.digest)
            if b.role == "root" and b.version == 2
            else b
            for b in honest.base
        ),
    )
    forged = replace(forged, id=Request.content_id(forged._content()))
    path = write(rig.tmp / "thin-root.json", forged, thin=True)
    assert "does not rebuild into the file it names" in refused(rig, path)


def test_f6_pem_is_read_where_go_reads_it_or_refused() -> None:
    """Go's pem.Decode takes a BEGIN line only at the start of a line: a reader that finds it
    elsewhere would show one certificate while Notary verifies with the next."""
    pem = make_root_certificate(PrivateKey.generate_ecdsa(), "example.com/x", NOW).public_bytes
    with pytest.raises(MalformedInput, match="does not start a line"):
        pem_blocks(b"x" + pem + pem)
    junk_after_end = pem.replace(b"-----END CERTIFICATE-----", b"-----END CERTIFICATE----- junk")
    with pytest.raises(MalformedInput, match="after a PEM END line"):
        pem_blocks(junk_after_end)
    assert [b.type for b in pem_blocks(b"preface\n" + pem + b"between\n" + pem)] == [
        "CERTIFICATE",
        "CERTIFICATE",
    ]


@pytest.mark.parametrize("expiry", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+01:00"])
def test_f7_an_expiry_outside_the_calendar_is_one_sentence(published: Rig, expiry: str) -> None:
    rig = published
    request = export_change(rig, "b")

    def far(doc: dict[str, Any]) -> None:
        for change in doc["changes"]:
            if change["type"] == "set-expiry":
                change["expires"] = expiry

    bad = edit(request, rig.tmp / "far.json", far)
    assert "outside the years 1 to 9999" in refused(rig, bad)


def test_f8_target_meta_with_unknown_fields_is_refused_and_every_hash_is_shown(
    published: Rig,
) -> None:
    rig = published
    request = export_change(rig, "b")
    other = base64.b64encode(b"\x11" * 64).decode()

    def smuggle(doc: dict[str, Any]) -> None:
        doc["changes"][0]["meta"]["note"] = "hidden"

    bad = edit(request, rig.tmp / "smuggled.json", smuggle)
    assert "unexpected fields ['note']" in refused(rig, bad)
    routine = Request.from_bytes(request.read_bytes())
    add = routine.changes[0]
    assert isinstance(add, AddTarget)
    meta = FileMeta(add.meta.length, {**add.meta.hashes, "sha512": base64.b64decode(other)})
    shown = with_changes(routine, [AddTarget(add.role, add.name, meta), *routine.changes[1:]])
    text = review(rig, write(rig.tmp / "sha512.json", shown), "--full")
    assert f"sha512 {'11' * 64}" in text


# ---------------------------------------------------------------------------
# second pass


def _upload(server: NotaryServer, gun: str, files: dict[str, bytes]) -> None:
    with TrustServer(ServerConfig(url=server.url, tls_ca=server.ca)) as client:
        client.publish(gun, files)


def test_r1_the_targets_key_never_signs_a_delegation_whose_body_could_become_targets(
    published: Rig, notary_server: NotaryServer
) -> None:
    """A compromised online delegation key delegates a sub-role to the public targets key;
    a body signed for it would be a valid top-level `targets` (a body names no role)."""
    rig = published
    ci = PrivateKey.generate_ecdsa()
    (rig.tmp / "ci.pem").write_bytes(pem_encode("PUBLIC KEY", ci.public_key().public_bytes))
    rig.run(
        "ceremony-online",
        "delegation",
        "add",
        rig.gun,
        "targets/ci",
        "--cert",
        str(rig.tmp / "ci.pem"),
        "--all-paths",
    )
    full_ceremony(
        rig,
        "ci",
        None,
        "--accept",
        "targets/ci",
        "--expect-key",
        key_fingerprint(ci.public_key()),
    )
    files = capture(notary_server, rig.gun)
    root = parse_any(files["root"]).body
    targets_key = root.keys[root.roles["targets"].keyids[0]]
    version = parse_any(files["targets"]).body.version
    expiry = GoTime.from_datetime(NOW + timedelta(days=300))
    ci_body = Targets(
        expiry,
        1,
        {},
        Delegations(
            {targets_key.key_id: targets_key},
            (DelegatedRole("targets/ci/x", (targets_key.key_id,), 1, ("",)),),
        ),
    )
    _upload(notary_server, rig.gun, {"targets/ci": _signed(ci_body, ci, ci.public_key())})
    files = capture(notary_server, rig.gun)
    forged = write(
        rig.tmp / "r1.json",
        forge(
            rig.gun,
            files,
            [
                AddTarget("targets/ci/x", "latest", FileMeta.for_bytes(b"EVIL\n")),
                SetVersion("targets/ci/x", version + 50),
            ],
        ),
    )
    text = review(rig, forged)
    assert "is held here as a targets key: it will not sign targets/ci/x" in text
    assert "holds none of the keys" in refused(rig, forged)


def test_r2_keys_sign_only_for_the_repository_they_are_held_for(
    published: Rig, notary_server: NotaryServer
) -> None:
    """An init of another GUN built from this repository's public keys: a targets body signed
    for it would be a valid `targets` here, so nothing may sign it."""
    rig = published
    files = capture(notary_server, rig.gun)
    root = parse_any(files["root"]).body
    own_root = root.keys[root.roles["root"].keyids[0]]
    own_targets = root.keys[root.roles["targets"].keyids[0]]
    other_gun = "example.com/r2/elsewhere"
    forged = write(
        rig.tmp / "r2.json",
        forge(
            other_gun,
            None,
            [
                InitRepository(
                    (_certificate_for(own_root, other_gun),),
                    1,
                    (own_targets,),
                    1,
                    PrivateKey.generate_ecdsa().public_key(),
                    PrivateKey.generate_ecdsa().public_key(),
                ),
                AddTarget("targets", "latest", FileMeta.for_bytes(b"EVIL\n")),
                SetVersion("targets", 50),
            ],
        ),
    )
    text = review(rig, forged)
    assert "held on this machine" not in text.split("Changes to who can sign")[1]
    assert "--expect-key" in refused(rig, forged)
    fps = [key_fingerprint(own_root), key_fingerprint(own_targets)]
    assert "holds none of the keys" in refused(rig, forged, *expect_keys(*fps))


def test_r3_a_withheld_signed_request_cannot_be_hidden_by_leaving_its_role_out(
    published: Rig, notary_server: NotaryServer
) -> None:
    rig = published
    files = capture(notary_server, rig.gun)
    revoke = write(rig.tmp / "revoke.json", forge(rig.gun, files, [RemoveTarget("targets", "a")]))
    signed(rig, revoke)  # and the online machine withholds it
    refresh = forge(
        rig.gun, files, [SetExpiry("root", GoTime.from_datetime(NOW + timedelta(days=3000)))]
    )
    assert "targets" in {b.role for b in refresh.base}  # the honest online half includes it
    assert "ABANDONED OR HIDDEN REQUEST" in review(rig, write(rig.tmp / "honest.json", refresh))
    stripped = replace(refresh, base=tuple(b for b in refresh.base if b.role != "targets"))
    stripped = replace(stripped, id=Request.content_id(stripped._content()))
    path = write(rig.tmp / "stripped.json", stripped)
    assert "leaves out targets, which the server serves and this machine signed" in refused(
        rig, path
    )


def test_r4_pem_whitespace_go_does_not_skip_is_refused() -> None:
    pem = make_root_certificate(PrivateKey.generate_ecdsa(), "example.com/x", NOW).public_bytes
    lines = pem.split(b"\n")
    lines[2] = lines[2][:10] + b"\x0b" + lines[2][10:]  # a vertical tab: Python skips it, Go not
    with pytest.raises(MalformedInput, match="not valid base64 as Go reads it"):
        pem_blocks(b"\n".join(lines) + pem)


def test_r5_a_certificate_with_a_duplicated_extension_is_one_sentence() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(1)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=9))
        .add_extension(x509.UnrecognizedExtension(ObjectIdentifier("1.2.3.4"), b"\x05\x00"), False)
        .add_extension(x509.UnrecognizedExtension(ObjectIdentifier("1.2.3.5"), b"\x05\x00"), False)
        .sign(private, hashes.SHA256())
    )
    der = cert.public_bytes(serialization.Encoding.DER).replace(
        b"\x06\x03\x2a\x03\x05", b"\x06\x03\x2a\x03\x04"
    )
    key = Key("ecdsa-x509", base64.b64encode(pem_encode("CERTIFICATE", der)).decode())
    with pytest.raises(MalformedInput):
        describe_key(key)


def test_r6_names_are_shown_without_emoji_codes_replaced(published: Rig) -> None:
    rig = published
    name = "release-1.0:white_check_mark:verified:lock:"
    rig.run("ceremony-online", "add", rig.gun, name, "--sha256", "ab" * 32, "--length", "1")
    request = rig.tmp / "emoji.json"
    rig.run("ceremony-online", "export", rig.gun, "--out", str(request))
    assert f"+ target {name}" in review(rig, request, "--full")
