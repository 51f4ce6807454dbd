"""PGP word rendering of digests, against the published example vectors."""

from __future__ import annotations

import hashlib

import pytest

from ceremony.core.words import _EVEN_WORDS, _ODD_WORDS, byte_word, digest_words


def test_tables_are_complete_and_distinct() -> None:
    assert len(_EVEN_WORDS) == len(set(_EVEN_WORDS)) == 256
    assert len(_ODD_WORDS) == len(set(_ODD_WORDS)) == 256
    assert not set(_EVEN_WORDS) & set(_ODD_WORDS)


@pytest.mark.parametrize(
    ("hex_digest", "words"),
    [
        ("E58294F2", "topmost Istanbul Pluto vagabond"),
        (
            "E58294F2E9A227486E8B061B31CC528FD7FA3F19",
            "topmost Istanbul Pluto vagabond treadmill Pacific brackish dictator goldfish "
            "Medusa afflict bravado chatter revolver Dupont midsummer stopwatch whimsical "
            "cowbell bottomless",
        ),
        (
            "12b4b0057400076fa5c0f5cbf726ac65",
            "atlas politeness ruffled almighty indoors adroitness ahead hemisphere reindeer "
            "recipe vapor revival virus caretaker ribcage glossary",
        ),
        ("", ""),
    ],
)
def test_known_vectors(hex_digest: str, words: str) -> None:
    assert digest_words(bytes.fromhex(hex_digest)) == words


def test_table_ends() -> None:
    assert (byte_word(0x00, 0), byte_word(0x00, 1)) == ("aardvark", "adroitness")
    assert (byte_word(0xFF, 0), byte_word(0xFF, 1)) == ("Zulu", "Yucatan")


def test_count_takes_a_prefix() -> None:
    digest = hashlib.sha256(b"document").digest()
    assert len(digest_words(digest).split()) == 32
    assert digest_words(digest, 4) == " ".join(digest_words(digest).split()[:4])
    assert digest_words(digest, 0) == ""
    with pytest.raises(ValueError, match="count"):
        digest_words(digest, 33)
