"""Names that could disguise themselves are flagged; names Notary cannot publish are refused."""

from __future__ import annotations

import pytest

from ceremony.core.changes import AddTarget, RemoveTarget, SetDelegation
from ceremony.core.errors import InputRejected
from ceremony.core.metadata import FileMeta
from ceremony.core.names import NAME_SHOWN, disguised, shown, unpublishable
from ceremony.signing.private import PrivateKey

HIDDEN = [
    "app\u202e",  # bidi overrides and isolates
    *[f"app{chr(c)}x" for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))],
    "la\u200btest",  # zero-width space, joiner, non-joiner, word joiner, BOM
    "la\u200ctest",
    "la\u200dtest",
    "la\u2060test",
    "la\u3000test",
    "la\ufefftest",
    "line\u2028sep",
    "para\u2029sep",
    "nb\u00a0space",
    "lat\u0435st",  # Cyrillic е
    "l\u0430test",  # Cyrillic а
    "\u0440ush",  # Cyrillic р
    "latest\u0301",  # a combining mark
    "ｌatest",  # fullwidth
    "\U0001d425atest",  # mathematical bold l
]


@pytest.mark.parametrize("name", HIDDEN)
def test_invisible_and_look_alike_characters_are_flagged(name: str) -> None:
    assert disguised(name)
    assert shown(name).isprintable()


@pytest.mark.parametrize("name", ["latest", "v1.2.3-rc<&>", "café", "日本/タグ", "a\\b", "x y"])
def test_ordinary_names_are_not_flagged(name: str) -> None:
    assert not disguised(name)


def test_a_long_name_is_cut_with_its_length_shown() -> None:
    text = shown("a" * 10_000)
    assert text.startswith("a" * NAME_SHOWN + "…")
    assert "10000 characters, first 200 shown" in text
    assert len(text) < NAME_SHOWN + 50


@pytest.mark.parametrize("code", [*range(0x20), 0x7F])
def test_every_c0_control_and_del_is_refused_in_every_change(code: int) -> None:
    name = f"app{chr(code)}x"
    assert unpublishable(name)
    meta = FileMeta.for_bytes(b"x")
    with pytest.raises(InputRejected, match="Notary cannot publish"):
        AddTarget("targets", name, meta)
    with pytest.raises(InputRejected, match="Notary cannot publish"):
        RemoveTarget("targets", name)
    key = PrivateKey.generate_ecdsa().public_key()
    with pytest.raises(InputRejected, match="Notary cannot publish"):
        SetDelegation("targets/releases", (key,), 1, (name,))


@pytest.mark.parametrize("name", ["a\u2028b", "a\u2029b", "<", ">", "&", "a<b>&c"])
def test_names_notary_publishes_are_accepted(name: str) -> None:
    assert unpublishable(name) is None
    AddTarget("targets", name, FileMeta.for_bytes(b"x"))


def test_the_refusal_is_one_printable_sentence() -> None:
    with pytest.raises(InputRejected) as info:
        AddTarget("targets", "evil\x1b]8;;http://x\x07" + "y" * 500, FileMeta.for_bytes(b"x"))
    assert info.value.message.isprintable()
    assert "U+001B" in info.value.message and len(info.value.message) < 250
