"""The ceremony transcript: one hash-chained JSON line per offline command.

Layout under the offline home::

    HOME/transcript.jsonl     one canonical JSON object per line, appended, never rewritten
    HOME/.transcript.lock     held while a line is appended (one writer at a time)

Every `ceremony` command, read-only ones and refused inputs included, appends a
line when it ends: the offline clock, the command line (option values named like a
secret are redacted), the request it was about, the key ids it used, how it ended
(exit code and the sentence it printed) and the tool's version. Each line names the
hash of the line before it (`prev`) and carries its own (`hash`: SHA-256 of its
canonical JSON without `hash`), so an edited or removed line breaks the chain at
that line. A chain cannot show that its last lines were cut off: the head hash,
shown as PGP words after every command and written on the paper record by the
witnesses, can (`ceremony transcript verify --expect-head WORDS`).

Nothing here reads the clock or prompts; the CLI passes `now` in.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ceremony.core.canonical import CanonicalError, encode_canonical, parse_json
from ceremony.core.errors import (
    EnvironmentFailure,
    MalformedInput,
    UsageError,
    VerificationFailed,
    printable,
)
from ceremony.core.words import digest_words
from ceremony.edge.fsutil import locked, private_dir, write_point

TRANSCRIPT_FILE = "transcript.jsonl"
LOCK_FILE = ".transcript.lock"
FORMAT = 1
HEAD_WORD_COUNT = 8  # the head hash's first 8 bytes as words: what witnesses write down
MAX_TRANSCRIPT = 256 * 1024 * 1024  # far beyond years of ceremonies
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
REDACTED = "<redacted>"

# Option names whose value is never written down (secrets never come on the command line,
# but a value typed there by mistake must not be recorded either).
_SECRET_PARTS = frozenset(
    {"pin", "passphrase", "password", "passwd", "secret", "mnemonic", "puk", "sopin"}
)
_HEX64 = re.compile(r"[0-9a-f]{64}")
# A PIN inside a PKCS#11 URI (RFC 7512 `pin-value`, `pin-source`): refused by the tool, but
# a URI typed with one must not put the PIN on the record either.
_URI_PIN = re.compile(r"(pin-value|pin-source)=[^&;?]*", re.IGNORECASE)


def transcript_path(home: Path) -> Path:
    return home / TRANSCRIPT_FILE


def format_time(now: datetime) -> str:
    """The offline clock as written in the transcript: UTC, whole seconds."""
    return now.astimezone(UTC).strftime(TIME_FORMAT)


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)


def head_words(head: str) -> str:
    """The words for a line's hash that witnesses write on the paper record."""
    return digest_words(bytes.fromhex(head), HEAD_WORD_COUNT)


def _secret_option(arg: str) -> bool:
    name = arg.lstrip("-").split("=", 1)[0].lower()
    parts = re.split(r"[-_]", name)
    return arg.startswith("-") and any(
        p in _SECRET_PARTS or p.startswith("passphrase") for p in parts
    )


def redact_argv(argv: Sequence[str]) -> list[str]:
    """The command line as recorded: values of secret-looking options replaced, text printable."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(REDACTED)
            hide_next = False
        elif arg == "--":
            out.append(arg)
        elif _secret_option(arg):
            if "=" in arg:
                out.append(f"{arg.split('=', 1)[0]}={REDACTED}")
            else:
                out.append(printable(arg))
                hide_next = True
        else:
            out.append(printable(_URI_PIN.sub(rf"\1={REDACTED}", arg)))
    return out


# --- What a command tells the transcript while it runs --------------------------------


@dataclass(slots=True)
class Notes:
    """What the running command is about; filled in through `note` (mutable on purpose)."""

    request_id: str | None = None
    digest: str | None = None
    keys: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


_NOTES: ContextVar[Notes | None] = ContextVar("ceremony_transcript_notes", default=None)


@contextlib.contextmanager
def collecting() -> Iterator[Notes]:
    """Collect what the command run inside notes (used once per process, by the CLI)."""
    notes = Notes()
    token = _NOTES.set(notes)
    try:
        yield notes
    finally:
        _NOTES.reset(token)


def note(
    *,
    request_id: str | None = None,
    digest: str | None = None,
    keys: Iterable[str] = (),
    details: Mapping[str, Any] | None = None,
) -> None:
    """Tell the transcript the request, its digest, the key ids used, or other public details.

    Never pass a secret. Outside a recorded command (a library caller, a test) it does nothing.
    """
    notes = _NOTES.get()
    if notes is None:
        return
    if request_id is not None:
        notes.request_id = request_id
    if digest is not None:
        notes.digest = digest
    for key in keys:
        if key not in notes.keys:
            notes.keys.append(key)
    if details:
        notes.details.update(details)


# --- Lines -----------------------------------------------------------------------------


def line_hash(entry: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the entry's canonical JSON without its `hash` field."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(encode_canonical(body)).hexdigest()


@dataclass(frozen=True, slots=True)
class Entry:
    """One verified line of the transcript."""

    seq: int
    time: str
    argv: tuple[str, ...]
    exit: int
    error: str | None
    request_id: str | None
    digest: str | None
    keys: tuple[str, ...]
    tool: str
    details: Mapping[str, Any]
    hash: str

    @property
    def when(self) -> datetime:
        return parse_time(self.time)


@dataclass(frozen=True, slots=True)
class Chain:
    """A transcript whose every line was checked against its content and its predecessor."""

    entries: tuple[Entry, ...]

    @property
    def head(self) -> str | None:
        return self.entries[-1].hash if self.entries else None

    def position_of_head(self, words: str) -> int | None:
        """The line number (1-based) whose hash reads as `words`, newest first; None if none."""
        wanted = normalise_words(words)
        for entry in reversed(self.entries):
            if normalise_words(head_words(entry.hash)) == wanted:
                return entry.seq
        return None


def normalise_words(words: str) -> str:
    return " ".join(words.lower().replace(",", " ").split())


def _entry_from(value: Any, number: int) -> Entry:
    where = f"Line {number} of the transcript"
    if not isinstance(value, dict):
        raise VerificationFailed(f"{where} is not a transcript entry (it was damaged or edited).")
    try:
        request = value.get("request")
        entry = Entry(
            seq=int(value["seq"]),
            time=str(value["time"]),
            argv=tuple(str(a) for a in value["argv"]),
            exit=int(value["exit"]),
            error=None if value.get("error") is None else str(value["error"]),
            request_id=None if request is None else str(request["id"]),
            digest=None if request is None else str(request["digest"]),
            keys=tuple(str(k) for k in value.get("keys", ())),
            tool=str(value["tool"]),
            details=dict(value.get("details", {})),
            hash=str(value["hash"]),
        )
        parse_time(entry.time)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise VerificationFailed(
            f"{where} lacks a field every entry has (it was damaged or edited)."
        ) from exc
    return entry


def verify_chain(data: bytes) -> Chain:
    """Check every line: its content against its hash, and its place in the chain.

    Raises VerificationFailed naming the first line that is wrong.
    """
    if not data:
        return Chain(())
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    else:
        raise VerificationFailed(
            f"Line {len(lines)} of the transcript is cut short (an interrupted write, or an edit)."
        )
    entries: list[Entry] = []
    prev: str | None = None
    for number, raw in enumerate(lines, start=1):
        where = f"Line {number} of the transcript"
        try:
            value = parse_json(raw, what=f"line {number} of the transcript")
        except MalformedInput as exc:
            raise VerificationFailed(
                f"{where} is not a transcript entry (it was damaged or edited)."
            ) from exc
        entry = _entry_from(value, number)
        try:
            canonical = encode_canonical(value)
            recomputed = line_hash(value)
        except CanonicalError as exc:
            raise VerificationFailed(f"{where} holds a value no entry holds (edited).") from exc
        if not _HEX64.fullmatch(entry.hash) or recomputed != entry.hash:
            raise VerificationFailed(
                f"{where} was changed after it was written: its content does not match its hash."
            )
        if canonical != raw:
            raise VerificationFailed(f"{where} was rewritten: it is not as the tool wrote it.")
        if value.get("prev") != prev:
            raise VerificationFailed(
                f"{where} does not follow line {number - 1}: the line before it was removed, "
                "inserted or replaced."
                if number > 1
                else f"{where} is not the first entry ever written: earlier lines were removed."
            )
        if entry.seq != number:
            raise VerificationFailed(
                f"{where} is entry {entry.seq}: entries before it were removed or inserted."
            )
        entries.append(entry)
        prev = entry.hash
    return Chain(tuple(entries))


# --- Reading and appending ------------------------------------------------------------


def _read(path: Path) -> bytes:
    """The transcript's bytes ('' when there is none yet); refuses anything but a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return b""
    except OSError as exc:
        raise EnvironmentFailure(
            f"The ceremony transcript {path} cannot be opened ({exc.strerror}); "
            "it must be a regular file of this home."
        ) from exc
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise EnvironmentFailure(
                f"The ceremony transcript {path} is not a regular file; move it aside."
            )
        data = handle.read(MAX_TRANSCRIPT + 1)
    if len(data) > MAX_TRANSCRIPT:
        raise EnvironmentFailure(
            f"The ceremony transcript {path} is larger than {MAX_TRANSCRIPT} bytes; "
            "export it and start a new one."
        )
    return data


def read_transcript(home: Path) -> bytes:
    return _read(transcript_path(home))


def load_chain(home: Path) -> Chain:
    """The verified transcript of `home` (VerificationFailed names a broken line)."""
    return verify_chain(read_transcript(home))


def last_time(data: bytes) -> datetime | None:
    """The time of the newest line that can be read (for preflight's clock check)."""
    for raw in reversed(data.split(b"\n")):
        if not raw.strip():
            continue
        try:
            value = parse_json(raw, what="transcript line")
            return parse_time(str(value["time"]))
        except (MalformedInput, KeyError, TypeError, ValueError):
            continue
    return None


def _tail(data: bytes) -> tuple[int, str | None]:
    """(the number of the last line, its hash) to chain the next line to.

    A last line that cannot be read (a torn write) is chained by the hash of its bytes,
    so the next line still follows it; `verify` names it.
    """
    lines = [line for line in data.split(b"\n") if line]
    if not lines:
        return 0, None
    last = lines[-1]
    try:
        value = parse_json(last, what="transcript line")
        stored = value["hash"]
        if isinstance(stored, str) and _HEX64.fullmatch(stored):
            return len(lines), stored
    except (MalformedInput, KeyError, TypeError):
        pass
    return len(lines), hashlib.sha256(last).hexdigest()


@dataclass(frozen=True, slots=True)
class Appended:
    seq: int
    hash: str

    @property
    def words(self) -> str:
        return head_words(self.hash)


def append(
    home: Path,
    *,
    argv: Sequence[str],
    exit_code: int,
    error: str | None,
    notes: Notes,
    tool: str,
    now: datetime,
) -> Appended:
    """Append one line for a command that ended, under the transcript lock.

    Raises EnvironmentFailure when the line cannot be written; a partly written line is
    cut off again where that is possible.
    """
    path = transcript_path(home)
    try:
        private_dir(home)
        with locked(home / LOCK_FILE):
            data = _read(path)
            seq, prev = _tail(data)
            entry: dict[str, Any] = {
                "argv": redact_argv(argv),
                "error": error,
                "exit": exit_code,
                "format": FORMAT,
                "keys": list(notes.keys),
                "prev": prev,
                "request": (
                    None
                    if notes.request_id is None
                    else {"digest": notes.digest or "", "id": notes.request_id}
                ),
                "seq": seq + 1,
                "time": format_time(now),
                "tool": tool,
            }
            if notes.details:
                entry["details"] = notes.details
            entry["hash"] = line_hash(entry)
            line = encode_canonical(entry) + b"\n"
            if data and not data.endswith(b"\n"):
                line = b"\n" + line  # after a torn line, start a new one
            _append_bytes(path, line, len(data))
    except OSError as exc:
        raise EnvironmentFailure(
            f"The ceremony transcript {path} could not be written ({exc.strerror or exc})."
        ) from exc
    return Appended(seq + 1, entry["hash"])


def _append_bytes(path: Path, line: bytes, size_before: int) -> None:
    write_point("append", path, can_fail=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        try:
            view = memoryview(line)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size_before)  # no half line left behind
            raise
    finally:
        os.close(fd)
    write_point("appended", path, can_fail=False)


def check_expected_head(chain: Chain, words: str) -> int:
    """The line the paper record's head words name; VerificationFailed when none does."""
    if len(normalise_words(words).split()) != HEAD_WORD_COUNT:
        raise UsageError(
            f"--expect-head takes the {HEAD_WORD_COUNT} words written on the paper record."
        )
    position = chain.position_of_head(words)
    if position is None:
        raise VerificationFailed(
            "No line of this transcript has the head written on the paper record: lines were "
            "cut off its end, or it is another machine's transcript."
        )
    return position
