"""`TargetFiles` reads a `targets` map in a loop with no call per usual entry; it must accept,
refuse and keep exactly what the full `FileMeta` reader does, entry by entry."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ceremony.core.canonical import RawJSON, encode_canonical
from ceremony.core.metadata import FileMeta, MetadataError, TargetFiles

b64 = st.binary(min_size=0, max_size=70).map(lambda b: base64.b64encode(b).decode())
odd_b64 = st.sampled_from(
    [
        "LIsI2lzmA5jh8Zrw5dzMdE3ydLgmq+WF6rpoxSVDSAZ=",  # unused bits set
        "LIsI2lzmA5jh8Zrw5dzMdE3ydLgmq+WF6rpoxSVDSAY",  # no padding
        "LIsI2lzmA5jh8Zrw5dzMdE3ydLgmq-WF6rpoxSVDSAY=",  # URL alphabet
        "LIsI2lzmA5jh8Zrw5dzMdE3ydLgmq+WF6rpoxSVDSAY=\n",
        "",
    ]
)
hash_values = (
    b64
    | odd_b64
    | st.integers(min_value=0, max_value=9)
    | st.none()
    | st.lists(st.text(max_size=2), max_size=1)
)
algorithms = st.sampled_from(["sha256", "sha512", "md5", "SHA256"])
entries = (
    st.fixed_dictionaries(
        {},
        optional={
            "length": st.integers(min_value=-2, max_value=2**53 + 1)
            | st.booleans()
            | st.text(max_size=2),
            "hashes": st.dictionaries(algorithms, hash_values, max_size=3) | st.lists(st.none()),
            "custom": st.none()
            | st.dictionaries(st.text(max_size=2), st.integers(-(2**63), 2**63 - 1), max_size=2),
            "extra": st.integers(min_value=-(2**63), max_value=2**63 - 1),  # what parse_json gives
        },
    )
    | st.integers()
    | st.lists(st.none(), max_size=1)
)


def _full(entry: Any) -> dict[str, Any] | str:
    try:
        return FileMeta.from_dict(entry, "t").to_dict()
    except MetadataError:
        return "refused"


@settings(max_examples=1500, deadline=None)
@given(entries)
def test_each_entry_is_read_as_filemeta_reads_it(entry: Any) -> None:
    expected = _full(entry)
    try:
        files = TargetFiles.from_dict({"x": entry}, "t")
    except MetadataError:
        assert expected == "refused"
        return
    assert expected != "refused"
    assert files.to_dict()["x"] == expected
    assert encode_canonical(files.to_dict()) == encode_canonical({"x": expected})
    assert files["x"] == FileMeta.from_dict(entry, "t")


def test_usual_entries_stay_the_parsed_objects() -> None:
    meta = FileMeta.for_bytes(b"payload").to_dict()
    raw = {"a": meta}
    files = TargetFiles.from_dict(raw, "t")
    assert files.to_dict()["a"] is meta  # no copy, no typed object per entry


def test_custom_data_keeps_its_order() -> None:
    entry = dict(FileMeta.for_bytes(b"x").to_dict(), custom={"z": 1, "a": 2})
    files = TargetFiles.from_dict({"n": entry}, "t")
    assert files.to_dict()["n"]["custom"] == RawJSON({"z": 1, "a": 2})
    assert b'"custom":{"z":1,"a":2}' in encode_canonical(files.to_dict())


@pytest.mark.parametrize("edit", ["add", "remove", "change", "none"])
def test_differences(edit: str) -> None:
    old = TargetFiles.of({f"t{i}": FileMeta.for_bytes(bytes([i])) for i in range(5)})
    entries = old.edit()
    if edit == "add":
        entries["new"] = FileMeta.for_bytes(b"new").to_dict()
    elif edit == "remove":
        del entries["t1"]
    elif edit == "change":
        entries["t2"] = FileMeta.for_bytes(b"other").to_dict()
    new = TargetFiles.with_entries(entries)
    added, removed, changed = old.differences(new)
    assert (added, removed, changed) == (
        ["new"] if edit == "add" else [],
        ["t1"] if edit == "remove" else [],
        ["t2"] if edit == "change" else [],
    )
