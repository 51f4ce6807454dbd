"""A request encoded in parts, and add-target changes read without a `FileMeta`, are exact.

`Request` hashes and writes its base, changes and rest as separately encoded parts (the
changes a few thousand at a time), and `read_change` reads the usual add-target shape in
one loop. Both must give exactly what the reference encoder and the full reader give:
the same bytes, ids and digests, and the same answer (or the same error) for every input.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ceremony.core import canonical, documents
from ceremony.core import changes as changes_module
from ceremony.core.canonical import (
    RawJSON,
    canonical_parts,
    encode_canonical,
    parse_json,
    reference_encode,
    reference_parse,
)
from ceremony.core.changes import (
    AddTarget,
    Change,
    InitRepository,
    SetDelegation,
    SetExpiry,
    read_change,
)
from ceremony.core.documents import BaseFile, Request
from ceremony.core.errors import CeremonyError, MalformedInput, VerificationFailed
from ceremony.core.gotime import GoTime
from ceremony.core.metadata import FileMeta, b64encode
from ceremony.core.plan import plan
from ceremony.signing.certificates import make_root_certificate
from ceremony.signing.private import PrivateKey
from tests.core.test_canonical import (
    _holds_unencodable_checked,
    _json_texts,
    _parsed,
    any_values,
    same,
)
from tests.core.test_canonical import (
    _outcome as _encoded_or_refused,
)

NOW = datetime(2030, 1, 1, tzinfo=UTC)
GUN = "example.com/parts/app"
ROOT = PrivateKey.generate_ecdsa()
ROOT_KEY = make_root_certificate(ROOT, GUN, NOW)
TARGETS_KEY = PrivateKey.generate_ecdsa().public_key()
SERVER_KEY = PrivateKey.generate_ecdsa().public_key()
RELEASES_KEY = PrivateKey.generate_ecdsa().public_key()


def _changes(count: int) -> list[Change]:
    plain = [
        AddTarget("targets", f"pkg/{i:04d}<&>", FileMeta.for_bytes(str(i).encode(), sha512=i % 2 == 0))
        for i in range(count)
    ]  # fmt: skip
    custom = FileMeta(3, {"sha256": hashlib.sha256(b"abc").digest()}, RawJSON({"z": 1, "a": "<"}))
    return [
        InitRepository((ROOT_KEY,), 1, (TARGETS_KEY,), 1, SERVER_KEY, SERVER_KEY),
        *plain,
        AddTarget("targets", "with-custom", custom),
        SetDelegation("targets/releases", (RELEASES_KEY,), 1, ("rel/",)),
        SetExpiry("root", GoTime.from_datetime(NOW + timedelta(days=3650))),
        SetExpiry("targets", GoTime.from_datetime(NOW + timedelta(days=1095))),
    ]


def _base() -> tuple[BaseFile, ...]:
    """A full base: a targets file (dropped from the thin form) and a snapshot (always kept)."""
    files = {"targets": b'{"signed":{}}', "snapshot": b'{"signed":{"x":1}}'}
    return tuple(
        BaseFile(role, 1, hashlib.sha256(data).hexdigest(), "0" * 64, (), data)
        for role, data in files.items()
    )


def _request(changes: list[Change], base: tuple[BaseFile, ...] = ()) -> Request:
    return Request.build(
        gun=GUN,
        created=GoTime.from_datetime(NOW),
        nonce="cd" * 16,
        base=base,
        changes=changes,
        plan=plan({}, changes),
    )


@pytest.fixture(params=[1, 2, 3, 4096], ids=lambda n: f"chunk-{n}")
def chunk(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    monkeypatch.setattr(documents, "_CHANGES_CHUNK", request.param)
    yield request.param


@pytest.mark.parametrize("with_base", [False, True], ids=["no-base", "full-base"])
@pytest.mark.parametrize("count", [0, 1, 7])
def test_the_parts_are_the_reference_encoding(chunk: int, count: int, with_base: bool) -> None:
    request = _request(_changes(count), _base() if with_base else ())
    full, thin = reference_encode(request.to_dict()), reference_encode(request.to_dict(thin=True))
    assert request.to_bytes() == full
    assert request.to_bytes(thin=True) == thin
    assert (full != thin) is with_base
    assert request.digest == hashlib.sha256(thin).hexdigest()
    assert request.id == hashlib.sha256(reference_encode(request._content())).hexdigest()[:32]
    assert request.id == Request.content_id(request._content())

    again = Request.from_bytes(full)
    assert again == request
    (view,) = again._encoded["changes"]
    assert isinstance(view, memoryview)  # a view of the bytes read
    assert (again.to_bytes(), again.digest, again.id) == (full, request.digest, request.id)
    thinned = request.thinned()
    assert thinned.to_bytes() == thin and thinned.digest == request.digest
    assert Request.from_bytes(thin).to_bytes(thin=True) == thin


def test_a_read_request_plans_to_the_same_bytes() -> None:
    changes = _changes(5)
    request = _request(changes)
    again = Request.from_bytes(request.to_bytes())
    ours, theirs = plan({}, changes), plan({}, again.changes)
    assert {r: p.signed_bytes for r, p in ours.roles.items()} == {
        r: p.signed_bytes for r, p in theirs.roles.items()
    }
    read = [c for c in again.changes if isinstance(c, AddTarget)]
    assert read[0].meta == FileMeta.for_bytes(b"0", sha512=True)  # built when asked
    assert read[-1].meta.custom == RawJSON({"z": 1, "a": "<"})  # key order kept


def _tampered(request: Request, old: bytes, new: bytes) -> bytes:
    data = request.to_bytes()
    assert data.count(old) == 1
    return data.replace(old, new)


def test_a_tampered_request_is_named_as_before() -> None:
    request = _request(_changes(2))
    repeated = _tampered(request, b'"gun":', b'"gun":"x","gun":')
    with pytest.raises(MalformedInput, match=r"repeats the key 'gun'"):
        Request.from_bytes(repeated)
    floating = _tampered(request, b'"z":1', b'"z":1.5')
    with pytest.raises(MalformedInput, match=r"non-integer number \(1\.5\)"):
        Request.from_bytes(floating)
    spaced = _tampered(request, b'"gun":', b'"gun": ')
    with pytest.raises(MalformedInput, match="not in canonical form"):
        Request.from_bytes(spaced)
    renamed = _tampered(request, b'"pkg/0001<&>"', b'"pkg/0009<&>"')
    with pytest.raises(VerificationFailed, match="does not match its id"):
        Request.from_bytes(renamed)


# ---------------------------------------------------------------------------
# read_change: the plain add-target shape read in one loop, or by the full reader

_SHA256 = b64encode(hashlib.sha256(b"x").digest())
_SHA512 = b64encode(hashlib.sha512(b"x").digest())
_NOT_CANONICAL = _SHA256[:-2] + "B="  # decodes, but Go would write the last digit otherwise

metas = st.one_of(
    st.fixed_dictionaries(
        {
            "length": st.sampled_from([0, 7, -1, 2**53 - 1, 2**53, True, "7"]),
            "hashes": st.one_of(
                st.fixed_dictionaries({"sha256": st.sampled_from([_SHA256, _NOT_CANONICAL, "", _SHA512])}),
                st.fixed_dictionaries({"sha256": st.just(_SHA256), "sha512": st.sampled_from([_SHA512, _SHA256])}),
                st.fixed_dictionaries({"sha512": st.just(_SHA512)}),
                st.fixed_dictionaries({"sha256": st.just(_SHA256), "md5": st.just("AAAA")}),
                st.just([_SHA256]),
            ),
        },
        optional={"custom": st.sampled_from([None, {"a": 1}, [1, "<"]]), "note": st.just("x")},
    ),
    st.just(None),
    st.just("meta"),
)  # fmt: skip
add_targets = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["add-target", "add-targets", "remove-target"]),
        "role": st.sampled_from(["targets", "targets/releases", "Targets", "targets/../x", "", 5]),
        "name": st.one_of(st.text(max_size=8), st.sampled_from(["a\x00b", "a\ud800", "ok"])),
        "meta": metas,
    },
    optional={"extra": st.just(1)},
)


def _outcome(d: dict[str, Any]) -> tuple[Any, ...]:
    try:
        change, data = read_change(d)
    except CeremonyError as exc:
        return ("refused", type(exc), exc.message)
    return ("read", change, change.to_dict(), encode_canonical(data))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(add_targets)
def test_the_plain_reader_agrees_with_the_full_reader(d: dict[str, Any]) -> None:
    fast = _outcome(copy.deepcopy(d))
    full_reader = changes_module._plain_add_target
    changes_module._plain_add_target = lambda _d: None  # type: ignore[assignment]
    try:
        full = _outcome(copy.deepcopy(d))
    finally:
        changes_module._plain_add_target = full_reader
    assert fast == full


def test_the_plain_reader_takes_the_usual_shape_and_shares_its_json() -> None:
    meta = {"hashes": {"sha256": _SHA256, "sha512": _SHA512}, "length": 7}
    d = {"type": "add-target", "role": "targets/releases", "name": "a", "meta": meta}
    change, data = read_change(d)
    assert data is d and isinstance(change, AddTarget) and change.meta_json is meta
    assert change == AddTarget("targets/releases", "a", FileMeta.from_dict(meta, "meta"))
    with pytest.raises(AttributeError):
        change.name = "b"  # type: ignore[misc]


# ---------------------------------------------------------------------------
# canonical_parts: large documents compared with their input piece by piece


@settings(max_examples=400, deadline=None)
@given(any_values, st.sampled_from([1, 2, 3]))
def test_canonical_parts_join_to_the_encoding(value: Any, part: int) -> None:
    if _holds_unencodable_checked(value):
        return  # as in test_canonical: Checked promises encodable JSON inside
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(canonical, "_PART", part)
        pieces = _encoded_or_refused(lambda v: b"".join(canonical_parts(v)), value)
    assert pieces == _encoded_or_refused(encode_canonical, value)


@settings(max_examples=600, deadline=None)
@given(_json_texts(), st.sampled_from([1, 2]))
def test_parsing_compared_in_parts_equals_the_reference(data: bytes, part: int) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(canonical, "_PART", part)
        patch.setattr(canonical, "_COMPARE_IN_PARTS", 0)
        fast = _parsed(parse_json, data)
    reference = _parsed(reference_parse, data)
    assert fast[0] == reference[0]
    if fast[0] == "ok":
        assert same(fast[1], reference[1])
    else:
        assert fast[1] == reference[1]
