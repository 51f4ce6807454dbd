"""Names a keyholder reads: which ones can be published, and which ones could disguise.

Target names and delegation paths come from whoever staged the change. Two things can
go wrong with them on the offline screen:

- The name cannot be published. notary-server rejects a targets file whose names hold a
  C0 control character (the real `notary` client cannot even encode one), so a request
  with such a name would be signed offline and then fail at publish, after the offline
  machine recorded it as signed. DEL is refused with them: it is invisible on a terminal.
- The name disguises itself: escape sequences, CR/LF, bidi controls, zero-width
  characters or letters that look like ASCII ones (a Cyrillic "е" in "latest"). Those are
  shown escaped (`printable`) and flagged with a `!` line.

A name longer than `NAME_SHOWN` characters is cut on screen with its length shown, so one
name cannot push the rest of the review off the screen.
"""

from __future__ import annotations

import re
import unicodedata

from ceremony.core.errors import InputRejected, escape_where

NAME_SHOWN = 200  # characters of a name shown in the review; longer ones are cut
DISGUISE_NOTE = "contains invisible or look-alike characters"

_UNPUBLISHABLE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
_PLAIN = re.compile(r"[ -~]*").fullmatch
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs", "Mn", "Me"})

# Letters of other scripts drawn like ASCII ones (after Unicode's confusables.txt, the
# common cases). Anything whose compatibility form (NFKC) is ASCII is caught as well:
# fullwidth letters, mathematical alphanumerics, ligatures, superscripts.
_LOOKALIKES = frozenset(
    # Cyrillic
    "аеорсухіјѕԁԛԝһӏјɡАВЕКМНОРСТХІЈЅԌԚԜҮѴ"
    # Greek
    "αοριυνκχΑΒΕΖΗΙΚΜΝΟΡΤΥΧϲϳ"
    # Armenian, Cherokee and other common ones
    "օսոհցզՕՍᎪᎬᎻᏞᎢᏴℓıɑ"
)


def unpublishable(name: str) -> str | None:
    """Why notary-server would refuse `name` in a targets file, or None."""
    bad = _UNPUBLISHABLE.search(name)
    if bad is None:
        return None
    ch = bad.group()
    if "\ud800" <= ch <= "\udfff":
        return "an unpaired surrogate, which is not text"
    return f"the control character U+{ord(ch):04X}, which Notary cannot publish"


def check_publishable(name: str, what: str) -> None:
    """Refuse a name notary-server would refuse, before anything is signed over it."""
    reason = unpublishable(name)
    if reason is not None:
        cut = name[:60] + ("…" if len(name) > 60 else "")  # the error escapes it once
        raise InputRejected(f"The {what} {cut} contains {reason}; rename it (nothing was signed).")


def _suspicious(ch: str) -> bool:
    if ch == " " or ("!" <= ch <= "~"):
        return False
    if unicodedata.category(ch) in _INVISIBLE or ch in _LOOKALIKES:
        return True
    return ord(ch) > 0x7F and bool(_PLAIN(unicodedata.normalize("NFKC", ch)))


def disguised(text: str) -> bool:
    """True when `text` holds a character that is invisible or looks like an ASCII one."""
    return not _PLAIN(text) and any(_suspicious(ch) for ch in text)


def _escaped(text: str) -> str:
    if _PLAIN(text) and "\\" not in text:
        return text
    return escape_where(text, _suspicious)


def shown(name: str, limit: int = NAME_SHOWN) -> str:
    """`name` for a terminal: invisible and look-alike characters escaped (`\\u0435`), cut
    at `limit` characters with its length stated."""
    if len(name) <= limit:
        return _escaped(name)
    return f"{_escaped(name[:limit])}… ({len(name)} characters, first {limit} shown)"
