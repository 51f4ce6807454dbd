"""The shared fuzzing driver: one harness per parser, run under atheris (libFuzzer).

A harness is a `Target`: a `check(data)` that feeds the bytes to one parser and
asserts what must hold, seeds built with the project's own code (`fuzz.seeds`),
and optionally a structure-aware mutator (JSON, PEM, QR frame) that libFuzzer
uses half of the time instead of its byte mutations.

The contract checked for every input: the parser returns its typed object, or
raises a `CeremonyError` whose message is one non-empty sentence on one line (no
secret in it). Any other exception is a crash. `check` may add round-trip
properties; a broken property raises `PropertyFailed`, also a crash.

Crashes are recorded (input and traceback under the crash folder) and the run
goes on, so a long run reports how many inputs crashed, not only the first. A
hang or a memory blow-up is caught by libFuzzer (`-timeout`, `-rss_limit_mb`),
which ends the worker; the runner then reports it as a crash with its artifact.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PASSPHRASE = "fuzz-passphrase"  # the seeds' key files are encrypted with it; never in a message
MAX_MESSAGE = 1000  # characters: a message quoting a whole hostile input is a finding too
_SENTENCE_BREAK = re.compile(r"[.!?]\s+[A-Z]")


class PropertyFailed(AssertionError):
    """A parse succeeded but a property that must hold for its result does not."""


@dataclass(frozen=True)
class Target:
    """One parser under fuzzing."""

    name: str
    check: Callable[[bytes], None]
    description: str
    mutator: Callable[[bytes, int, int], bytes] | None = None
    max_len: int = 16384


def check_message(exc: BaseException) -> None:
    """A refusal must be one sentence an operator can read: raise PropertyFailed if not."""
    message = getattr(exc, "message", "")
    if not isinstance(message, str) or not message.strip():
        raise PropertyFailed(f"{type(exc).__name__} has an empty message")
    if "\n" in message or "\r" in message:
        raise PropertyFailed(f"{type(exc).__name__} message spans lines: {message[:200]!r}")
    if len(message) > MAX_MESSAGE:
        raise PropertyFailed(
            f"{type(exc).__name__} message is {len(message)} characters: {message[:200]!r}"
        )
    if "Traceback" in message or PASSPHRASE in message:
        raise PropertyFailed(f"{type(exc).__name__} message leaks: {message[:200]!r}")
    if not message.rstrip().endswith((".", "!", "?")):
        raise PropertyFailed(f"{type(exc).__name__} message is not a sentence: {message[:200]!r}")
    exit_code = getattr(exc, "exit_code", None)
    if exit_code not in (1, 2, 3, 4):
        raise PropertyFailed(f"{type(exc).__name__} has exit code {exit_code!r}")


REFUSED: Any = object()
"""What `refused` returns when the parser refused the input (cleanly)."""


def refused(call: Callable[[], Any]) -> Any:
    """Run one parse: its result, or REFUSED after checking that the refusal is a clean one."""
    from ceremony.core.errors import CeremonyError

    try:
        return call()
    except CeremonyError as exc:
        try:
            check_message(exc)
        except PropertyFailed as failed:
            raise failed from exc  # the refusal's own traceback names where it was raised
        return REFUSED


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise PropertyFailed(what)


# ---------------------------------------------------------------------------
# structure-aware mutators

_ODD_STRINGS = (
    "",
    "x",
    "\x00",
    "\x1b[31m",
    "\u202e",
    "\u2028",
    "<&>",
    "é",
    "../..",
    "targets/",
    "targets/x",
    "root",
    "0" * 64,
    "a" * 300,
    "2030-01-01T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999999+23:59",
    "\ud800",
    "AAAA",
    "====",
)
_ODD_VALUES: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    1,
    -1,
    2**31,
    2**53,
    2**53 - 1,
    2**63 - 1,
    2**63,
    -(2**63) - 1,
    10**30,
    1.5,
    [],
    {},
    [None],
    {"": None},
)


def _nodes(doc: Any, limit: int = 4000) -> list[tuple[Any, Any]]:
    """(container, key) of every value in a parsed JSON document, breadth first."""
    out: list[tuple[Any, Any]] = []
    queue = [doc]
    while queue and len(out) < limit:
        node = queue.pop(0)
        if isinstance(node, dict):
            for k in list(node):
                out.append((node, k))
                queue.append(node[k])
        elif isinstance(node, list):
            for i in range(len(node)):
                out.append((node, i))
                queue.append(node[i])
    return out


_PEM = re.compile(
    rb"(-----BEGIN [^\n]*-----\n(?:[^\n]*: [^\n]*\n)*\n?)([A-Za-z0-9+/=\n]+)(-----END )"
)


def mutate_bytes(raw: bytes, extra: int = 32) -> bytes:
    """libFuzzer's byte mutation of `raw` (inside a structure the caller rebuilds)."""
    import atheris

    return bytes(atheris.Mutate(raw, len(raw) + extra))


def mutate_pem(text: bytes) -> bytes:
    """Mutate the DER inside the first PEM block, keeping the armour valid base64."""
    match = _PEM.search(text)
    if match is None:
        return mutate_bytes(text)
    try:
        der = base64.b64decode(match.group(2).replace(b"\n", b""), validate=True)
    except ValueError:
        return mutate_bytes(text)
    body = base64.b64encode(mutate_bytes(der))
    lines = b"\n".join(body[i : i + 64] for i in range(0, len(body), 64)) + b"\n"
    return text[: match.start(2)] + lines + text[match.end(2) :]


def _mutate_base64(text: str) -> str | None:
    """A base64 string (key, signature, certificate, base file): mutate the bytes it holds."""
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        return None
    if not raw:
        return None
    inner = mutate_pem(raw) if b"-----BEGIN" in raw else mutate_bytes(raw)
    return base64.b64encode(inner).decode("ascii")


def _mutate_string(rng: random.Random, text: str) -> str:
    if len(text) >= 8 and rng.random() < 0.4:
        mutated = _mutate_base64(text)
        if mutated is not None:
            return mutated
    choice = rng.randrange(6)
    if choice == 0 and text:
        return text[: rng.randrange(len(text))]
    if choice == 1:
        return text + rng.choice(_ODD_STRINGS)
    if choice == 2 and text:
        i = rng.randrange(len(text))
        return (
            text[:i] + chr(rng.choice((0, 9, 10, 0x7F, 0x80, 0x2028, 0xFEFF, 0x10FFFF))) + text[i:]
        )
    if choice == 3:
        return text.upper() if text != text.upper() else text.lower()
    if choice == 4 and text:
        i = rng.randrange(len(text))
        return text[:i] + chr((ord(text[i]) ^ (1 << rng.randrange(7))) or 1) + text[i + 1 :]
    return rng.choice(_ODD_STRINGS)


def _mutate_value(rng: random.Random, value: Any, donors: list[Any]) -> Any:
    if isinstance(value, str) and rng.random() < 0.7:
        return _mutate_string(rng, value)
    if isinstance(value, int) and not isinstance(value, bool) and rng.random() < 0.7:
        return rng.choice((value + 1, value - 1, -value, value * 2**32, 0, 2**63 - 1, 2**53))
    if rng.random() < 0.3 and donors:
        return json.loads(json.dumps(rng.choice(donors)))  # a copy of another node (splice)
    if rng.random() < 0.1:
        nested: Any = None
        for _ in range(rng.choice((10, 100, 1000))):
            nested = [nested]
        return nested
    return rng.choice(_ODD_VALUES)


def mutate_document(rng: random.Random, doc: Any) -> Any:
    """One structural edit: replace, delete, add or rename a field, or reshape a list."""
    nodes = _nodes(doc)
    if not nodes:
        return _mutate_value(rng, doc, [])
    container, key = rng.choice(nodes)
    donors = [c[k] for c, k in rng.sample(nodes, min(8, len(nodes)))]
    op = rng.randrange(8)
    if op == 0 and isinstance(container, dict):
        del container[key]
    elif op == 1 and isinstance(container, dict):
        container[_mutate_string(rng, str(key))] = container.pop(key)
    elif op == 2 and isinstance(container, dict):
        container[rng.choice(_ODD_STRINGS)] = _mutate_value(rng, None, donors)
    elif op == 3 and isinstance(container, list):
        if rng.random() < 0.5:
            del container[key]
        else:
            container.insert(key, json.loads(json.dumps(container[key])))
    else:
        container[key] = _mutate_value(rng, container[key], donors)
    return doc


def dump_json(rng: random.Random, doc: Any) -> bytes:
    """JSON text of a mutated document: compact, usually in canonical key order."""
    text = json.dumps(
        doc,
        sort_keys=rng.random() < 0.7,
        separators=(",", ":"),
        ensure_ascii=rng.random() < 0.2,
    )
    return text.encode("utf-8", "surrogatepass")


def json_mutator(data: bytes, max_size: int, seed: int) -> bytes:
    """Half libFuzzer's byte mutations, half a structural edit of the parsed JSON."""
    import atheris

    rng = random.Random(seed)
    if rng.random() < 0.5:
        return bytes(atheris.Mutate(data, max_size))
    try:
        doc = json.loads(data)
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            doc = mutate_document(rng, doc)
        out = dump_json(rng, doc)
    except (ValueError, TypeError, RecursionError):  # not JSON, or a mutation too deep to write
        return bytes(atheris.Mutate(data, max_size))
    return out[:max_size]


# ---------------------------------------------------------------------------
# crash bookkeeping


@dataclass
class Tally:
    """Iterations and crashes of one worker, written to its summary file as it goes."""

    target: str
    runs: int
    crash_dir: Path
    summary: Path
    iterations: int = 0
    crashing_inputs: int = 0
    crashes: dict[str, str] = field(default_factory=dict)  # signature -> first input file

    def record(self, exc: BaseException, data: bytes) -> None:
        self.crashing_inputs += 1
        source = exc.__cause__ if isinstance(exc, PropertyFailed) and exc.__cause__ else exc
        frames = traceback.extract_tb(source.__traceback__)
        ours = [f for f in frames if "/ceremony/" in f.filename or "/online/" in f.filename]
        where = ours[-1] if ours else (frames[-1] if frames else None)
        place = f"{Path(where.filename).name}:{where.lineno}" if where else "?"
        head = str(exc).split(":")[0][:80] if isinstance(exc, PropertyFailed) else ""
        head = re.sub(r"\d+", "N", head)  # "message is 1005 characters" and "1006" are one crash
        signature = f"{type(exc).__name__} at {place} {head}".strip()
        if signature in self.crashes:
            return
        self.crash_dir.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha1(data).hexdigest()  # noqa: S324 (a file name)
        path = self.crash_dir / f"crash-{digest}"
        path.write_bytes(data)
        text = "".join(traceback.format_exception(exc))
        path.with_suffix(".txt").write_text(f"{signature}\n\n{text}", encoding="utf-8")
        self.crashes[signature] = str(path)
        self.write()

    def write(self, *, finished: bool = False) -> None:
        doc = {
            "target": self.target,
            "runs": self.runs,
            "iterations": self.iterations,
            "crashes": len(self.crashes),
            "crashing_inputs": self.crashing_inputs,
            "signatures": self.crashes,
            "finished": finished,
        }
        tmp = self.summary.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8")
        tmp.replace(self.summary)


def seed_files(folders: Iterable[Path]) -> list[Path]:
    return sorted(
        p for folder in folders if folder.is_dir() for p in folder.iterdir() if p.is_file()
    )
