"""Seed corpora for every harness, built with the project's own code.

Real documents: requests (an init, a full and a thin request over a repository
with a delegation), the signatures documents made for them, public keys
documents, Notary key files of every key type (encrypted PKCS#8 with role/gun
headers, plain, legacy PEM), QR frames of real transfers, notary changelist
files, policy files and online configurations. The real-notary fixtures under
`tests/vectors/notary/` (metadata, key files and changelists written by the real
notary 0.7 client and server, made by `python -m fuzz.seeds --real-notary`) and
the QR vectors of `tests/vectors/qr/` are added as they are, and so is every input
that once crashed a parser (`fuzz/regressions/<target>/`).

    python -m fuzz.seeds OUT_DIR                 write OUT_DIR/<target>/<seed>
    python -m fuzz.seeds --real-notary           regenerate tests/vectors/notary/
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shutil
import sys
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "vectors"
NOTARY_VECTORS = VECTORS / "notary"
REGRESSIONS = Path(__file__).resolve().parent / "regressions"  # inputs that once crashed
NOW = datetime(2030, 1, 1, tzinfo=UTC)
GUN = "example.com/fuzz/app"
PASSPHRASE = "fuzz-passphrase"


_KEYS: dict[str, Any] = {}  # the seeds' private keys, by type: filled by _documents


def _canonical_edge_cases() -> dict[str, bytes]:
    return {
        "dup-key": b'{"a":1,"a":2}',
        "float": b'{"a":1.0}',
        "exp": b"[1e3]",
        "nan": b"[NaN]",
        "big-int": b"[9223372036854775808]",
        "max-int": b"[9223372036854775807,-9223372036854775808]",
        "surrogate": b'["\\ud800"]',
        "pair": b'["\\ud83d\\ude00"]',
        "escapes": b'["\\u0008\\u000c\\n\\r\\t\\"\\\\\\/<>&\\u2028"]',
        "unsorted": b'{"b":1,"a":2}',
        "spaces": b' { "a" : [ 1 , 2 ] } ',
        "bom": b'\xef\xbb\xbf{"a":1}',
        "utf16": '{"a":1}'.encode("utf-16"),
        "invalid-utf8": b'["\xff\xfe"]',
        "nested": b"[" * 60 + b"]" * 60,
        "raw-utf8": '{"é":"☃\u2028"}'.encode(),
        "empty": b"",
        "null": b"null",
        "control": b'["\x01"]',
    }


def _documents() -> dict[str, dict[str, bytes]]:
    """Requests, signatures, public keys and metadata from one repository."""
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    from ceremony.core.batch import BatchRequest, BatchSignatures
    from ceremony.core.changes import (
        AddTarget,
        InitRepository,
        RemoveTarget,
        SetDelegation,
        SetExpiry,
        SetVersion,
        UpdateDelegation,
    )
    from ceremony.core.documents import (
        LivenessProof,
        PublicKeyEntry,
        PublicKeysDocument,
        Request,
        RoleSignatures,
        SignaturesDocument,
    )
    from ceremony.core.gotime import GoTime
    from ceremony.core.liveness import challenge
    from ceremony.core.metadata import FileMeta, parse_any
    from ceremony.core.plan import plan
    from ceremony.offline.trust import SignedRecord, SignedRole, TrustState
    from ceremony.signing.certificates import make_root_certificate
    from ceremony.signing.private import PrivateKey, sign
    from online.flow import choose_base
    from tests.core.repos import OfflineRepo

    out: dict[str, dict[str, bytes]] = {
        "request": {},
        "signatures": {},
        "public_keys": {},
        "metadata": {},
        "liveness": {},
        "batch": {},
        "trust_state": {},
    }
    root_private = PrivateKey.generate_ecdsa()
    root_key = make_root_certificate(root_private, GUN, NOW)
    targets_private = PrivateKey.generate_ecdsa()
    targets_key = targets_private.public_key()
    server = PrivateKey.generate_ecdsa().public_key()
    later = GoTime.from_datetime(NOW + timedelta(days=1095))

    def signed(name: str, request: Request, keys: Mapping[str, PrivateKey], result: Any) -> None:
        roles = []
        for role, rp in result.roles.items():
            private = keys.get(role)
            if private is None:
                continue
            sig = sign(private, private.public_key(), rp.signed_bytes)
            roles.append(RoleSignatures(role, rp.digest, (sig,)))
        doc = SignaturesDocument(request.id, request.digest, request.gun, tuple(roles))
        out["signatures"][name] = doc.to_bytes()

    # an init request
    changes = [
        InitRepository((root_key,), 1, (targets_key,), 1, server, server),
        AddTarget("targets", "app<&>\u2028é", FileMeta.for_bytes(b"app")),
        SetExpiry("root", GoTime.from_datetime(NOW + timedelta(days=3650))),
        SetExpiry("targets", later),
    ]
    result = plan({}, changes)
    init = Request.build(
        gun=GUN,
        created=GoTime.from_datetime(NOW),
        nonce="ab" * 16,
        base=[],
        changes=changes,
        plan=result,
    )
    out["request"]["init"] = init.to_bytes()
    signed("init", init, {"root": root_private, "targets": targets_private}, result)

    # requests over a repository with a delegation (full and thin)
    repo = OfflineRepo(gun=GUN)
    files = repo.files(nightly=repo.releases_body(nested_paths=("nightly/",)))
    envelopes = {name: parse_any(data) for name, data in files.items()}
    for name, data in files.items():
        out["metadata"][name.replace("/", "-")] = data
    bodies = {name: env.body for name, env in envelopes.items()}
    rel = repo.keys["targets/releases"]
    new_delegate = PrivateKey.generate_ecdsa().public_key()
    more = [
        AddTarget("targets", "v2.tar", FileMeta.for_bytes(b"v2", sha512=False)),
        RemoveTarget("targets", "hello.txt"),
        AddTarget("targets/releases", "rel-2", FileMeta.for_bytes(b"rel two")),
        SetDelegation("targets/qa", (new_delegate,), 1, ("qa/",)),
        UpdateDelegation("targets/releases", add_paths=("extra/",)),
        SetVersion("targets", 7),
        SetExpiry("targets", later),
        SetExpiry("targets/releases", later),
        SetExpiry("targets/qa", later),
    ]
    result = plan(bodies, more)
    base = choose_base(envelopes, more)
    request = Request.build(
        gun=GUN,
        created=GoTime.from_datetime(NOW),
        nonce="cd" * 16,
        base=base,
        changes=more,
        plan=result,
    )
    out["request"]["full"] = request.to_bytes()
    out["request"]["thin"] = request.to_bytes(thin=True)
    signed(
        "full",
        request,
        {"targets": repo.keys["targets"].private, "targets/releases": rel.private},
        result,
    )

    # public keys: a root certificate and bare keys of every type
    rsa_private = PrivateKey(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    ed_private = PrivateKey(ed25519.Ed25519PrivateKey.generate())
    entries = [
        PublicKeyEntry("root", root_private.canonical_id, root_key),
        PublicKeyEntry("targets", targets_private.canonical_id, targets_key),
        PublicKeyEntry("targets/releases", rsa_private.canonical_id, rsa_private.public_key()),
        PublicKeyEntry("snapshot", ed_private.canonical_id, ed_private.public_key()),
    ]
    out["public_keys"]["all"] = PublicKeysDocument(GUN, tuple(entries)).to_bytes()
    out["public_keys"]["root"] = PublicKeysDocument(GUN, tuple(entries[:1])).to_bytes()

    # a liveness proof by two keys
    when = "2030-01-01T00:00:00Z"
    for name, nonce in (("nonce", "ab" * 16), ("no-nonce", "")):
        message = challenge(when, bytes.fromhex(nonce))
        proof_sigs = tuple(sign(p, p.public_key(), message) for p in (targets_private, rsa_private))
        out["liveness"][name] = LivenessProof(when, nonce, proof_sigs).to_bytes()

    # a batch of two repositories and the signatures made for it
    other = Request.build(
        gun="example.com/fuzz/other",
        created=GoTime.from_datetime(NOW),
        nonce="ef" * 16,
        base=[],
        changes=changes,
        plan=plan({}, changes),
    )
    batch = BatchRequest((init, other))
    out["batch"]["request"] = batch.to_bytes()
    out["batch"]["request-thin"] = BatchRequest((other, request.thinned())).to_bytes(thin=True)
    init_sigs = SignaturesDocument.from_bytes(out["signatures"]["init"])
    out["batch"]["signatures"] = BatchSignatures(
        batch.id, batch.digest, (init_sigs,), ("example.com/fuzz/other",)
    ).to_bytes()

    # the offline home's trust state after signing the full request
    record = SignedRecord(
        request.id,
        request.digest,
        request.created,
        ("2030-01-01T00:00:01Z",),
        {
            role: SignedRole(rp.body.version, rp.digest, (repo.keys["targets"].keyid,))
            for role, rp in result.roles.items()
        },
        ("expired base",),
    )
    state = TrustState(GUN, envelopes["root"], {"root": 1, "targets": 7}, {request.id: record})
    out["trust_state"]["signed"] = state.to_bytes()
    out["trust_state"]["fresh"] = TrustState(GUN, envelopes["root"]).to_bytes()
    _KEYS.update({"ecdsa": targets_private, "rsa": rsa_private, "ed25519": ed_private})
    return out


def _key_files() -> dict[str, bytes]:
    from cryptography.hazmat.primitives import serialization

    from ceremony.signing.keyfile import encode_key_file, private_key_info

    out: dict[str, bytes] = {}
    for kind, private in _KEYS.items():
        out[f"{kind}-encrypted"] = encode_key_file(
            private, role="targets", gun=GUN, passphrase=PASSPHRASE
        )
        out[f"{kind}-root"] = encode_key_file(private, role="root", gun=None, passphrase=PASSPHRASE)
        out[f"{kind}-plain"] = encode_key_file(private, role="snapshot", gun=GUN, passphrase=None)
        out[f"{kind}-pkcs8-der"] = private_key_info(private)  # the harness wraps bare DER
        native = private.native
        out[f"{kind}-standard-pkcs8"] = native.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        if kind != "ed25519":
            out[f"{kind}-legacy"] = native.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
            out[f"{kind}-legacy-encrypted"] = native.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.BestAvailableEncryption(PASSPHRASE.encode()),
            )
    return out


def _qr_frames(documents: Mapping[str, bytes]) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """Single frames (one per seed) and whole scans for the fountain harness."""
    from ceremony.qr.frames import Compression, ContentType, Encoder

    frames: dict[str, bytes] = {}
    vectors = json.loads((VECTORS / "qr" / "frames.json").read_text(encoding="utf-8"))
    for i, case in enumerate(vectors["cases"]):
        for frame in case["frames"][:4]:
            frames[f"vector{i}-{frame['seq']}"] = frame["text"].encode("ascii")
    for name, document in documents.items():
        kind = ContentType.SIGNATURES if "signatures" in name else ContentType.REQUEST
        encoder = Encoder(document, block_size=200, content_type=kind)
        for seq in (0, encoder.k - 1, encoder.k + 3):
            frames[f"{name}-{seq}"] = encoder.frame(seq).encode("ascii")
    plain = Encoder(b'{"x":1}', block_size=8, compression=Compression.NONE)
    frames["uncompressed"] = plain.frame(0).encode("ascii")
    frames["foreign"] = b"https://example.com/"
    frames["other-generation"] = b"NC2ABC"
    # The fountain harness is driven by a data provider: any bytes are a valid seed, and
    # documents make the first choices realistic.
    fountain = {f"doc-{name}": data[:3000] for name, data in documents.items()}
    fountain["zeros"] = bytes(64)
    fountain["ones"] = b"\xff" * 256
    return frames, fountain


def _change(action: str, role: str, kind: str, path: str, data: Any) -> dict[str, Any]:
    raw = None if data is None else base64.b64encode(json.dumps(data).encode()).decode()
    return {"action": action, "role": role, "type": kind, "path": path, "data": raw}


def _changelists() -> dict[str, bytes]:
    from ceremony.core.keys import pem_encode

    sha = base64.b64encode(hashlib.sha256(b"x").digest()).decode()
    sha512 = base64.b64encode(hashlib.sha512(b"x").digest()).decode()
    key = _KEYS["ecdsa"].public_key().to_dict()
    cert = {
        "keytype": "ecdsa-x509",
        "keyval": {
            "private": None,
            "public": base64.b64encode(pem_encode("CERTIFICATE", b"\x30\x00", {})).decode(),
        },
    }
    target = {"length": 1, "hashes": {"sha256": sha, "sha512": sha512}}
    custom = {"length": 1, "hashes": {"sha256": sha}, "custom": {"b": [1, 2], "a": "é"}}
    lists: dict[str, list[dict[str, Any]]] = {
        "add": [_change("create", "targets", "target", "app.tar", target)],
        "custom": [_change("create", "targets/releases", "target", "x", custom)],
        "remove": [_change("delete", "targets", "target", "old", None)],
        "delegation": [
            _change(
                "create", "targets/releases", "delegation", "", {"add_keys": [key], "threshold": 1}
            ),
            _change("create", "targets/releases", "delegation", "", {"add_paths": ["rel/"]}),
        ],
        "delegation-cert": [
            _change("create", "targets/qa", "delegation", "", {"add_keys": [cert], "threshold": 2})
        ],
        "remove-delegation": [_change("delete", "targets/old", "delegation", "", None)],
        "witness": [_change("update", "targets/releases", "witness", "", None)],
        "refused": [
            _change("update", "targets/releases", "delegation", "", {"remove_keys": ["ab"]}),
            _change("create", "root", "target", "x", target),
        ],
    }
    out: dict[str, bytes] = {}
    for name, changes in lists.items():
        files = [
            {"name": f"{1700000000000000000 + i}_{name}.change", "change": c}
            for i, c in enumerate(changes)
        ]
        out[f"structured-{name}"] = json.dumps({"files": files}).encode()
        out[f"raw-{name}"] = SEPARATOR.join(json.dumps(c).encode() for c in changes)
    return out


SEPARATOR = b"\n\x00--\x00\n"  # between change files in a raw changelist input


def _policies() -> dict[str, bytes]:
    return {
        "full": (
            b"# limits\n"
            b"max_expiry_days = { root = 3650, targets = 1095, delegation = 1095 }\n"
            b"min_threshold = { root = 2, targets = 1, delegation = 1 }\n"
            b'gun_prefixes = ["registry.example.com/"]\n'
            b"allow_wildcard_root_cn = false\n"
        ),
        "tables": b"[max_expiry_days]\nroot = 1\n[min_threshold]\ntargets = 3\n",
        "empty": b"",
        "unknown": b"max_expiry = 3\n",
        "dates": b"gun_prefixes = [1979-05-27T07:32:00Z]\n",
        "nested": b"a = " + b"[" * 40 + b"]" * 40 + b"\n",
    }


def _online_configs() -> dict[str, bytes]:
    auth = base64.b64encode(b"alice:s3cret").decode()
    config = {"auths": {"https://notary.example.com:4443/v1/": {"auth": auth}}}
    env = b"CEREMONY_SERVER=https://notary.example.com:4443\nCEREMONY_DOWNLOAD_DEADLINE=30\n"
    return {
        "docker": env + b"\n" + json.dumps(config).encode(),
        "explicit": (
            b"CEREMONY_SERVER=https://notary.example.com\nCEREMONY_USERNAME=u\nCEREMONY_PASSWORD=p\n\n{}"
        ),
        "http": b'CEREMONY_SERVER=http://127.0.0.1:4443\nCEREMONY_ALLOW_HTTP=1\n\n{"auths":{}}',
        "docker-server": b'DOCKER_CONTENT_TRUST_SERVER=https://h:1/p/\n\n{"auths":{"h:1":{"auth":"eA=="}}}',
        "none": b"\n\n",
    }


def _notary_vectors() -> dict[str, dict[str, bytes]]:
    """The real-notary fixtures, by harness: metadata, key files, changelists."""
    out: dict[str, dict[str, bytes]] = {"metadata": {}, "keyfile": {}, "changelist": {}}
    if not NOTARY_VECTORS.is_dir():
        return out
    for path in sorted((NOTARY_VECTORS / "metadata").rglob("*.json")):
        name = path.relative_to(NOTARY_VECTORS).as_posix().replace("/", "-")
        out["metadata"][f"notary-{name}"] = path.read_bytes()
    for path in sorted((NOTARY_VECTORS / "private").glob("*.key")):
        data = path.read_bytes()
        out["keyfile"][f"notary-{path.stem[:12]}"] = data
        out["keyfile"][f"notary-{path.stem[:12]}-reencrypted"] = _reencrypted(data)
    for folder in sorted(p for p in (NOTARY_VECTORS / "changelists").iterdir() if p.is_dir()):
        changes = sorted(folder.glob("*.change"))
        out["changelist"][f"notary-{folder.name}"] = SEPARATOR.join(p.read_bytes() for p in changes)
        files = [{"name": p.name, "change": _decoded(p.read_bytes())} for p in changes]
        out["changelist"][f"notary-structured-{folder.name}"] = json.dumps(
            {"files": files}
        ).encode()
    return out


def _reencrypted(data: bytes) -> bytes:
    """A real notary key file under the harness's passphrase (the harness tries only that one)."""
    from ceremony.signing.keyfile import decode_key_file, encode_key_file, read_key_file_headers

    headers = read_key_file_headers(data)
    private = decode_key_file(data, _notary_passphrase())
    role = headers.role or "targets"
    return encode_key_file(private, role=role, gun=headers.gun, passphrase=PASSPHRASE)


def _decoded(change: bytes) -> Any:
    """A change file with its base64 `data` decoded, as the structured changelist input holds it."""
    doc = json.loads(change)
    if isinstance(doc.get("data"), str):
        doc["data"] = json.loads(base64.b64decode(doc["data"]))
    return doc


def build() -> dict[str, dict[str, bytes]]:
    """Every harness's seeds: target name -> seed name -> bytes."""
    docs = _documents()
    seeds: dict[str, dict[str, bytes]] = {name: dict(v) for name, v in docs.items()}
    seeds["keyfile"] = _key_files()
    texts = {
        **{f"request-{k}": v for k, v in docs["request"].items()},
        **{f"signatures-{k}": v for k, v in docs["signatures"].items()},
    }
    seeds["qr_frame"], seeds["fountain"] = _qr_frames(texts)
    seeds["changelist"] = _changelists()
    seeds["policy"] = _policies()
    seeds["online_config"] = _online_configs()
    for target, extra in _notary_vectors().items():
        seeds[target].update(extra)
    for folder in sorted(p for p in REGRESSIONS.iterdir() if p.is_dir()):
        for path in sorted(folder.iterdir()):
            seeds[folder.name][f"regression-{path.name}"] = path.read_bytes()
    canonical = _canonical_edge_cases()
    for target in ("request", "signatures", "public_keys", "metadata", "liveness", "batch"):
        for name, data in seeds[target].items():
            canonical[f"{target}-{name}"] = data
    for name, data in seeds["changelist"].items():
        if name.startswith("raw-") or (name.startswith("notary-") and "structured" not in name):
            canonical[f"change-{name}"] = data.split(SEPARATOR)[0]
    seeds["canonical"] = canonical
    return seeds


def write(out: Path) -> dict[str, int]:
    """Write the seeds under `out/<target>/`; returns the count per target."""
    counts = {}
    for target, seeds in build().items():
        folder = out / target
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        for name, data in seeds.items():
            (folder / name).write_bytes(data)
        counts[target] = len(seeds)
    return counts


# ---------------------------------------------------------------------------
# the real-notary fixtures (needs notary and notary-server; run by hand, output committed)


def real_notary(out: Path = NOTARY_VECTORS) -> None:
    """Run the real notary 0.7 client against a real notary-server and keep what it wrote."""
    from tests.core.repos import _build
    from tests.notary_env import NotaryCli, start_server

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = start_server(work / "server")
        try:
            repo = _build(server, work / "repo")
            if out.exists():
                shutil.rmtree(out)
            (out / "metadata").mkdir(parents=True)
            for name, data in repo.files.items():
                path = out / "metadata" / f"{name}.json"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            for name, data in repo.early.items():
                (out / "metadata" / f"early.{name}.json").write_bytes(data)
            (out / "private").mkdir()
            for path in sorted((work / "repo" / "trust" / "private").glob("*.key")):
                shutil.copyfile(path, out / "private" / path.name)
            # Staged (not published) changes: the changelist `notary add`/`delegation` write.
            cli = NotaryCli(server, work / "repo" / "trust")
            payload = work / "payload"
            payload.write_bytes(b"staged target\n")
            custom = work / "custom.json"
            custom.write_text('{"a":[1,2],"b":"é"}', encoding="utf-8")
            gun = repo.gun
            cli.run("add", gun, "staged.txt", str(payload), "--custom", str(custom))
            cli.run("add", gun, "rel-staged", str(payload), "--roles", "targets/releases")
            cli.run("remove", gun, "hello.txt")
            crt = work / "repo" / "releases.crt"
            cli.run("delegation", "add", gun, "targets/qa", str(crt), "--paths", "qa/")
            cli.run("delegation", "remove", gun, "targets/old", "--yes")
            cli.run("witness", gun, "targets/releases")
            staged = work / "repo" / "trust" / "tuf" / gun / "changelist"
            target = out / "changelists" / "staged"
            target.mkdir(parents=True)
            for path in sorted(staged.glob("*.change")):
                shutil.copyfile(path, target / path.name)
        finally:
            server.stop()
    readme = out / "README.md"
    readme.write_text(
        "Written by the real notary 0.7 client and notary-server (`python -m fuzz.seeds "
        "--real-notary`): the repository of `tests/core/repos.py` (metadata), the client's "
        f"key files (passphrase `{_notary_passphrase()}`, test keys only) and a staged "
        "changelist. Seeds for `make fuzz`.\n",
        encoding="utf-8",
    )


def _notary_passphrase() -> str:
    from tests.notary_env import PASSPHRASE as NOTARY_PASSPHRASE

    return str(NOTARY_PASSPHRASE)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path)
    parser.add_argument("--real-notary", action="store_true")
    args = parser.parse_args()
    if args.real_notary:
        real_notary()
        print(f"wrote {NOTARY_VECTORS}")
        return 0
    if args.out is None:
        parser.error("give an output folder or --real-notary")
    for target, count in sorted(write(args.out).items()):
        print(f"{target}: {count} seeds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
