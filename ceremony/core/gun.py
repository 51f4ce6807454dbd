"""The one rule for a GUN (a repository's name), and the one way to turn it into a folder name.

Notary's own rule is only "no `*`" (a `*` ends a wildcard certificate name). Both
halves of this toolkit check one stricter rule when they read a GUN, from a
command line or from a document: 1 to 255 characters (notary-server stores it
in a varchar(255)); no `*`, whitespace or control characters; and no empty,
`.` or `..` path segment, which would make the server URL name another
repository. A GUN that breaks it is refused as input (exit 1), before it can
reach a file name, a certificate or the server.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from ceremony.core.errors import MalformedInput

MAX_GUN_LENGTH = 255
_FOLDER_LIMIT = 100  # longer folder names are cut and finished with a hash of the GUN
_UNSAFE = re.compile(r"[^A-Za-z0-9_.~-]")  # what `urllib.parse.quote(safe="")` leaves alone


def _percent(match: re.Match[str]) -> str:
    return "".join(f"%{byte:02X}" for byte in match.group().encode("utf-8"))


def gun_problem(gun: object) -> str | None:
    """None if `gun` is a valid GUN, else why not (a phrase)."""
    if not isinstance(gun, str) or not gun:
        return "it is empty"
    if len(gun) > MAX_GUN_LENGTH:
        return f"it has {len(gun)} characters, more than the {MAX_GUN_LENGTH} allowed"
    if "*" in gun:
        return "it contains '*', which Notary keeps for wildcard certificate names"
    for ch in gun:
        if ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            return "it contains whitespace or a control character"
    if any(segment in ("", ".", "..") for segment in gun.split("/")):
        return "it has an empty, '.' or '..' path segment"
    return None


def check_gun(gun: object, where: str = "") -> str:
    """`gun` if it is a valid GUN; MalformedInput (exit 1) naming where it came from otherwise."""
    problem = gun_problem(gun)
    if problem is not None:
        shown = repr(gun[:80] + "…" if isinstance(gun, str) and len(gun) > 80 else gun)
        source = f" in {where}" if where else ""
        raise MalformedInput(
            f"The GUN {shown}{source} is not valid ({problem}): use a name like "
            "registry.example.com/team/app."
        )
    assert isinstance(gun, str)  # noqa: S101 - gun_problem returned None
    return gun


def gun_folder(gun: str) -> str:
    """A file-name-safe folder name for a valid GUN: %-quoted, long ones cut and hashed.

    The folder's own files always record the GUN itself, so the name only has
    to be unique and safe, not reversible.
    """
    quoted = _UNSAFE.sub(_percent, check_gun(gun))
    if len(quoted) <= _FOLDER_LIMIT:
        return quoted
    digest = hashlib.sha256(gun.encode("utf-8")).hexdigest()[:32]
    return f"{quoted[: _FOLDER_LIMIT - 34]}~{digest}"
