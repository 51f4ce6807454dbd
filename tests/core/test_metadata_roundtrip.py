"""Every file the real notary client and server wrote survives parse -> to_bytes byte for byte.

Sources: the server (`root`, every `N.root` after two rotations, `targets`,
`targets/releases`, `snapshot`, `timestamp`, and the set captured before the
later publishes, whose snapshot the client signed) and the client's cache
directory. The notary 0.7 client never caches `N.root.json`; those come from
the server only. Then: unknown fields survive, and strict parsing refuses
malformed metadata with one sentence (notary-formats.md §2, §7.3).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ceremony.core.canonical import (
    RawJSON,
    encode_canonical,
    envelope_escape,
    parse_json,
    reference_encode,
    reference_parse,
)
from ceremony.core.errors import MalformedInput
from ceremony.core.metadata import (
    Envelope,
    MetadataError,
    Root,
    Snapshot,
    Targets,
    Timestamp,
    parse_any,
    parse_envelope,
)
from tests.core import repos
from tests.core.repos import NotaryRepo, assert_one_sentence
from tests.notary_env import NotaryServer


@pytest.fixture(scope="module")
def repo(notary_server: NotaryServer, tmp_path_factory: pytest.TempPathFactory) -> NotaryRepo:
    return repos.notary_repo(notary_server, tmp_path_factory)


def all_files(repo: NotaryRepo) -> dict[str, bytes]:
    out = {f"server:{k}": v for k, v in repo.files.items()}
    out.update({f"server:{n}.root": v for n, v in repo.versioned_roots.items()})
    out.update({f"server-early:{k}": v for k, v in repo.early.items()})
    out.update({f"cache:{k}": v for k, v in repo.cache_files().items()})
    return out


EXPECTED = {
    "server:root", "server:1.root", "server:2.root", "server:3.root", "server:targets",
    "server:targets/releases", "server:snapshot", "server:timestamp",
    "server-early:root", "server-early:targets", "server-early:snapshot", "server-early:timestamp",
    "cache:root", "cache:targets", "cache:targets/releases", "cache:snapshot", "cache:timestamp",
}  # fmt: skip


def test_the_scenario_produced_every_kind_of_file(repo: NotaryRepo) -> None:
    files = all_files(repo)
    assert set(files) == EXPECTED
    versions = {k: parse_any(v).body.version for k, v in files.items()}
    assert versions["server:root"] == 3  # init v1, snapshot rotation v2, root rotation v3
    assert [versions[f"server:{n}.root"] for n in (1, 2, 3)] == [1, 2, 3]
    assert files["server:3.root"] == files["server:root"] == files["cache:root"]
    # the cache is what `notary list` last fetched: the server's current files
    for role in ("targets", "targets/releases", "snapshot", "timestamp"):
        assert files[f"cache:{role}"] == files[f"server:{role}"], role


def test_every_real_file_round_trips_byte_for_byte(repo: NotaryRepo) -> None:
    for name, data in all_files(repo).items():
        env = parse_any(data, what=name)
        assert env.to_bytes() == data, name
        # what Go verifies (the received map, re-canonicalised) is what the typed body signs
        assert env.signed_map_bytes == env.signed_bytes, name
        assert env.is_go_fixed_point, name
        assert Envelope.create(env.body, env.signatures).to_bytes() == data, name
        # the envelope is the canonical body, HTML-escaped, in the fixed field order
        assert data.startswith(
            b'{"signed":' + envelope_escape(env.signed_bytes) + b',"signatures":['
        )
        assert not data.endswith(b"\n")


def test_fast_and_reference_codecs_agree_on_every_real_file(repo: NotaryRepo) -> None:
    """The C-speed parser and encoder give, on every file Notary wrote, what the pure-Python
    reference gives: the same value, the same map bytes, the same signed bytes."""
    for name, data in all_files(repo).items():
        env = parse_any(data, what=name)
        doc = reference_parse(data, what=name)
        assert parse_json(data, form=lambda _, d=data: d) == doc, name
        assert env.signed_map_bytes == reference_encode(doc["signed"]), name
        assert env.signed_bytes == reference_encode(env.body.to_dict()), name


def test_real_envelope_escapes_but_signs_raw(repo: NotaryRepo) -> None:
    data = repo.files["targets"]
    env = parse_any(data)
    escaped = json.dumps(repos.WEIRD_NAME, ensure_ascii=False).replace("&", "\\u0026")
    escaped = escaped.replace("<", "\\u003c").replace(">", "\\u003e")
    assert escaped.encode() in data
    assert json.dumps(repos.WEIRD_NAME, ensure_ascii=False).encode() in env.signed_bytes
    custom = env.body.targets["custom.bin"].custom
    assert custom is not None
    assert encode_canonical(custom) == repos.CUSTOM_JSON.encode()


def test_real_targets_match_their_payloads(repo: NotaryRepo) -> None:
    body = parse_any(repo.files["targets"]).body
    assert set(body.targets) == set(repos.TARGET_CONTENTS)
    for name, content in repos.TARGET_CONTENTS.items():
        meta = body.targets[name]
        assert meta.matches(content) is None, name
        assert set(meta.hashes) == {"sha256", "sha512"}  # notary add writes both
        assert meta.sha256_hex == repo.listed[name]  # what `notary list` printed
    releases = parse_any(repo.files["targets/releases"]).body
    assert releases.targets[repos.RELEASE_NAME].matches(repos.RELEASE_CONTENT) is None
    assert releases.targets[repos.RELEASE_NAME].sha256_hex == repo.listed[repos.RELEASE_NAME]
    (role,) = body.delegations.roles
    assert (role.name, role.paths, role.threshold) == ("targets/releases", ("",), 1)
    assert releases.delegations.to_dict() == {"keys": {}, "roles": []}


def test_real_snapshot_and_timestamp_hash_the_exact_bytes(repo: NotaryRepo) -> None:
    for files in (repo.files, repo.early):
        snapshot = parse_any(files["snapshot"]).body
        for role, meta in snapshot.meta.items():
            assert meta.matches(files[role]) is None, role
        ts = parse_any(files["timestamp"]).body
        assert ts.meta["snapshot"].matches(files["snapshot"]) is None
    assert set(parse_any(repo.files["snapshot"]).body.meta) == {
        "root",
        "targets",
        "targets/releases",
    }


def test_rotation_keeps_old_root_certificate(repo: NotaryRepo) -> None:
    v2 = parse_any(repo.files["2.root"]).body
    v3 = parse_any(repo.files["root"]).body
    old_root = v2.roles["root"].keyids
    assert set(old_root) <= set(v3.keys)  # §2.3: the old certificate stays in keys
    assert not set(old_root) & set(v3.roles["root"].keyids)
    signers = {s.keyid for s in parse_any(repo.files["root"]).signatures}
    assert signers == set(old_root) | set(v3.roles["root"].keyids)


def test_cache_dir_layout(repo: NotaryRepo) -> None:
    names = sorted(p.relative_to(repo.cache_dir).as_posix() for p in repo.cache_dir.rglob("*.json"))
    assert names == [
        "root.json",
        "snapshot.json",
        "targets.json",
        "targets/releases.json",
        "timestamp.json",
    ]


def test_offline_repo_round_trips(tmp_path: Path) -> None:
    """The self-built repository (U+2028 in a target name, nested delegation) is in Go form too."""
    offline = repos.OfflineRepo()
    files = offline.files(
        releases=offline.releases_body(nested_paths=("a/",)),
        nightly=offline.releases_body(targets={}),
    )
    for name, data in files.items():
        env = parse_any(data, what=name)
        assert env.to_bytes() == data, name
        assert env.signed_map_bytes == env.signed_bytes, name
    assert b"\\u2028" in files["targets"]
    assert "\u2028".encode() in parse_any(files["targets"]).signed_bytes


# ---------------------------------------------------------------------------
# unknown fields


def _envelope(signed: dict[str, Any], sigs: list[dict[str, Any]]) -> bytes:
    """Envelope bytes as Go writes them, for a hand-edited body (signatures no longer match)."""
    body = envelope_escape(encode_canonical(signed))
    return (
        b'{"signed":'
        + body
        + b',"signatures":'
        + encode_canonical([RawJSON(s) for s in sigs])
        + b"}"
    )


def _doc(data: bytes) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(data)
    return doc


@pytest.mark.parametrize("role", ["root", "targets", "targets/releases", "snapshot", "timestamp"])
def test_unknown_signed_fields_are_preserved(repo: NotaryRepo, role: str) -> None:
    doc = _doc(repo.files[role])
    doc["signed"]["zz_unknown"] = {"b": [1, "x<y"], "a": None}
    doc["signed"]["aa_unknown"] = "é"
    data = _envelope(doc["signed"], doc["signatures"])
    env = parse_any(data)
    assert env.to_bytes() == data
    assert env.signed_map_bytes == env.signed_bytes
    assert set(env.body.unrecognized) == {"zz_unknown", "aa_unknown"}
    assert not env.is_go_fixed_point  # Go would drop them


def test_unknown_file_meta_fields_are_preserved(repo: NotaryRepo) -> None:
    doc = _doc(repo.files["targets"])
    doc["signed"]["targets"]["hello.txt"]["extra"] = {"k": 1}
    data = _envelope(doc["signed"], doc["signatures"])
    assert parse_any(data).to_bytes() == data


def test_uppercase_method_is_read_lowercased(repo: NotaryRepo) -> None:
    """Go lowercases `method` on unmarshal, so its re-serialisation is lowercase too."""
    data = repo.files["targets"].replace(b'"method":"ecdsa"', b'"method":"ECDSA"')
    env = parse_any(data)
    assert env.signatures[0].method == "ecdsa"
    assert env.to_bytes() == repo.files["targets"]


# ---------------------------------------------------------------------------
# strict validation: one sentence each

Edit = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Edit:
    def edit(doc: dict[str, Any]) -> None:
        *parents, last = path.split("|")
        node: Any = doc
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value

    return edit


_DELETE = object()
SHA = "signed|meta|targets|hashes|sha256"

STRUCTURE_CASES: list[tuple[str, str, Edit, str]] = [
    ("root", "missing snapshot role", _set("signed|roles|snapshot", _DELETE), "does not define the snapshot role"),
    ("root", "missing consistent_snapshot", _set("signed|consistent_snapshot", _DELETE), "lacks the field 'consistent_snapshot'"),
    ("root", "threshold zero", _set("signed|roles|targets|threshold", 0), "out of range"),
    ("root", "unknown key type", lambda d: _set(f"signed|keys|{next(iter(d['signed']['keys']))}|keytype", "dsa")(d), "not one Notary supports"),
    ("root", "private key present", lambda d: _set(f"signed|keys|{next(iter(d['signed']['keys']))}|keyval|private", "c2VjcmV0")(d), "carries a private key"),
    ("root", "role key not in keys", lambda d: d["signed"]["roles"]["targets"]["keyids"].append("0" * 64), "but not its key"),
    ("targets", "lowercase _type", _set("signed|_type", "targets"), "not Notary metadata"),
    ("targets", "_type of another role", _set("signed|_type", "Timestamp"), "lacks the field 'meta'"),
    ("targets", "version as string", _set("signed|version", "6"), "wrong type"),
    ("targets", "version as boolean", _set("signed|version", True), "must be an integer"),
    ("targets", "version too large for float64", _set("signed|version", 2**53), "out of range"),
    ("targets", "negative length", _set("signed|targets|hello.txt|length", -1), "out of range"),
    ("targets", "expires not RFC 3339", _set("signed|expires", "2029-11-22 04:41:12Z"), "not an RFC 3339 time"),
    ("targets", "missing delegations", _set("signed|delegations", _DELETE), "lacks the field 'delegations'"),
    ("targets", "bad delegation name", _set("signed|delegations|roles|0|name", "targets/Releases"), "not a valid delegation name"),
    ("targets", "delegation name with newline", _set("signed|delegations|roles|0|name", "targets/releases\n"), "not a valid delegation name"),
    ("targets", "delegation key missing", _set("signed|delegations|keys", {}), "but not its key"),
    ("targets", "extra delegation field", _set("signed|delegations|extra", 1), "unexpected fields"),
    ("targets", "hash not base64", _set("signed|targets|hello.txt|hashes|sha256", "not base64!"), "not valid base64"),
    ("targets", "hash url-safe base64", _set("signed|targets|hello.txt|hashes|sha256", "_" * 43 + "="), "not valid base64"),
    ("targets", "hash unpadded", _set("signed|targets|hello.txt|hashes|sha256", base64.b64encode(bytes(32)).decode().rstrip("=")), "base64"),
    ("targets", "hash hex", _set("signed|targets|hello.txt|hashes|sha256", hashlib.sha256(b"").hexdigest()), "wrong length"),
    ("snapshot", "sha256 of 31 bytes", _set(SHA, base64.b64encode(bytes(31)).decode()), "wrong length"),
    ("snapshot", "no targets meta", _set("signed|meta|targets", _DELETE), "does not record a sha256 for targets"),
    ("timestamp", "no snapshot meta", _set("signed|meta", {}), "does not record the snapshot"),
    ("timestamp", "signature key id not hex", _set("signatures|0|keyid", "X" * 64), "malformed key id"),
    ("timestamp", "signature key id with newline", _set("signatures|0|keyid", "a" * 64 + "\n"), "malformed key id"),
    ("timestamp", "signature without sig", _set("signatures|0|sig", _DELETE), "lacks the field 'sig'"),
    ("timestamp", "signature extra field", _set("signatures|0|valid", True), "unexpected fields"),
    ("timestamp", "signatures not a list", _set("signatures", {}), "no signature list"),
    ("timestamp", "extra envelope field", _set("extra", 1), "not a signed metadata envelope"),
    ("timestamp", "signed is a list", _set("signed", []), "not Notary metadata"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("role", "edit", "fragment"),
    [pytest.param(r, e, f, id=f"{r}: {label}") for r, label, e, f in STRUCTURE_CASES],
)
def test_strict_structure_errors(repo: NotaryRepo, role: str, edit: Edit, fragment: str) -> None:
    doc = _doc(repo.files[role])
    edit(doc)
    data = json.dumps(doc).encode()
    with pytest.raises(MalformedInput) as err:
        parse_any(data, what=f"{role} metadata")
    assert fragment in err.value.message
    assert_one_sentence(err.value.message)


RAW_CASES: list[tuple[str, bytes, bytes, str]] = [
    ("targets", b'"version":', b'"version":1.0,"v":', "non-integer number"),
    ("targets", b'"length":6', b'"length":6.5', "non-integer number"),
    ("snapshot", b'"version":', b'"version":1,"version":', "repeats the key 'version'"),
    ("timestamp", b'"signed":', b'"signed":NaN,"x":', "not valid JSON"),
    ("timestamp", b'"sig":"', b'"sig":"\\udc00', "invalid unicode escape"),
    ("root", b"{", b"\xff{", "not UTF-8"),
]


@pytest.mark.parametrize(("role", "old", "new", "fragment"), RAW_CASES)
def test_strict_json_errors(
    repo: NotaryRepo, role: str, old: bytes, new: bytes, fragment: str
) -> None:
    data = repo.files[role].replace(old, new, 1)
    assert data != repo.files[role]
    with pytest.raises(MalformedInput) as err:
        parse_any(data, what=f"{role} metadata")
    assert fragment in err.value.message
    assert f"{role} metadata" in err.value.message
    assert_one_sentence(err.value.message)


@pytest.mark.parametrize(
    ("role", "kind", "wrong"),
    [
        ("root", Root, Targets),
        ("targets", Targets, Snapshot),
        ("snapshot", Snapshot, Timestamp),
        ("timestamp", Timestamp, Root),
    ],
)
def test_parse_envelope_checks_type(repo: NotaryRepo, role: str, kind: Any, wrong: Any) -> None:
    assert isinstance(parse_envelope(repo.files[role], kind).body, kind)
    with pytest.raises(MetadataError) as err:
        parse_envelope(repo.files[role], wrong, what=f"{role} file")
    assert f"expected {wrong.TYPE!r}" in err.value.message
    assert_one_sentence(err.value.message)
