"""What the offline process does to itself before it touches a key.

- No core dumps (`RLIMIT_CORE` 0): a crash while a key is decrypted must not write the
  key's memory to disk.
- A private umask (077): every folder and file the process creates is its owner's only,
  whatever umask the shell had (`umask 000` included).
- An offline home that someone opened to other users is closed again, with one note.
"""

from __future__ import annotations

import os
import resource
import stat
from pathlib import Path

from ceremony.core.errors import EnvironmentFailure


def harden_process() -> None:
    """No core dumps and a private umask, for the rest of this process."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.umask(0o077)


def tighten_home(home: Path) -> str | None:
    """Close an existing home to other users (0700); the note to show, or None."""
    try:
        info = home.lstat()
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(info.st_mode):
        info = home.stat()
    if not stat.S_ISDIR(info.st_mode):
        raise EnvironmentFailure(f"The home {home} is not a folder; point --home at a folder.")
    mode = stat.S_IMODE(info.st_mode)
    if not mode & 0o077:
        return None
    try:
        os.chmod(home, 0o700)
    except OSError:
        raise EnvironmentFailure(
            f"The home {home} is open to other users (mode {mode:04o}) and cannot be closed; "
            "run `chmod 700` on it."
        ) from None
    return f"The home {home} was open to other users (mode {mode:04o}); it is now 0700."
