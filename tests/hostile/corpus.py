"""The hostile-input corpus: every reader of the toolkit, fed what an attacker or an accident
could hand it. Generated here (code, not blobs), from valid seeds made by the library itself.

A `Case` is one hostile input for one reader: `make(folder)` writes it under `folder` and
returns the command line to run; the test runs it as a subprocess and expects the exit
code, one sentence naming the input, no traceback and no change to either home.

Memory caps (RLIMIT_AS per process, virtual memory: the interpreter and its libraries take
about 250 MiB of it before any input is read):
- JSON documents, key files, trust dirs, changelists, homes, config: 1 GiB
- QR images (decoded pictures, the fountain decoder): 1.5 GiB
Time: each process is killed after `TIMEOUT` seconds (a bound, not a speed assertion).
"""

from __future__ import annotations

import base64
import json
import os
import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, rsa
from cryptography.x509.oid import NameOID

GIB = 1024**3
CAP_JSON = 1 * GIB
CAP_QR = 3 * GIB // 2
TIMEOUT = 60  # seconds: generous on a shared 2-core machine; a hang is what it catches
GUN = "example.com/fuzz/app"  # the GUN of the seed documents
HOME_GUN = "example.com/hostile/app"  # the GUN of the homes' key and staged change

Make = Callable[[Path], list[str]]


@dataclass(frozen=True)
class Case:
    kind: str  # what is wrong (the corpus counts distinct kinds)
    reader: str  # which reader it attacks
    make: Make
    code: int = 1
    names: tuple[str, ...] = ()  # words one of which the sentence must contain
    cap: int = CAP_JSON
    env: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.reader}:{self.kind}"


# ---------------------------------------------------------------------------
# seeds


def seeds() -> dict[str, bytes]:
    from tests.core.test_fuzz_inputs import DOCS

    return dict(DOCS)


SEEDS = seeds()
RNG = random.Random(1313)


def _json(kind: str) -> dict[str, Any]:
    value = json.loads(SEEDS[kind])
    assert isinstance(value, dict)
    return value


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


# ---------------------------------------------------------------------------
# generic mutations of a JSON document (name -> seed bytes -> hostile bytes)


def _boundaries(data: bytes) -> list[int]:
    """Offsets just after each top-level structural token (`{`, `,`, `:`, `}`) of `data`."""
    out, depth, in_string, escaped = [], 0, False, False
    for i, byte in enumerate(data):
        ch = chr(byte)
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch in "{[":
            depth += 1
            if depth == 1:
                out.append(i + 1)
        elif ch in "}]":
            depth -= 1
        elif ch in ",:" and depth == 1:
            out.append(i + 1)
    return out


def truncations(data: bytes) -> list[bytes]:
    """`data` cut at every top-level structural boundary (and just before its end)."""
    cuts = [*_boundaries(data), len(data) - 1]
    return [data[:n] for n in sorted(set(cuts)) if 0 < n < len(data)]


def sample_truncations(data: bytes) -> list[tuple[int, bytes]]:
    """A representative sample of `truncations(data)`, with each cut's index among them: just
    after the opening brace, at the middle boundary, and one byte short of the end. Every
    structural cut is a clean parse error of the same reader; three show it without paying
    a process for each of the forty."""
    cuts = truncations(data)
    picked = sorted({0, len(cuts) // 2, len(cuts) - 1})
    return [(i, cuts[i]) for i in picked]


def _set_first_number(value: Any, new: Any) -> bool:
    """Replace the first integer found (depth first) by `new`; True if one was found."""
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in list(items):
        if isinstance(item, int) and not isinstance(item, bool):
            value[key] = new
            return True
        if isinstance(item, dict | list) and _set_first_number(item, new):
            return True
    return False


def _with_number(kind: str, raw: str) -> bytes:
    marker = "__NUMBER__"
    doc = _json(kind)
    if not _set_first_number(doc, marker):  # a document without numbers: a string field
        where, key = _string_slot(doc)
        where[key] = marker
    return _dump(doc).replace(f'"{marker}"'.encode(), raw.encode(), 1)


def _string_slot(doc: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The first dict (depth first) holding a string value, and that value's key."""
    for key, value in sorted(doc.items()):
        if isinstance(value, str):
            return doc, key
    for value in doc.values():
        if isinstance(value, dict):
            return _string_slot(value)
    raise KeyError("no string field")


def _with_string(kind: str, text: str) -> bytes:
    doc = _json(kind)
    where, key = _string_slot(doc)
    where[key] = text
    return json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _duplicate_keys(kind: str) -> bytes:
    data = SEEDS[kind]
    key = sorted(_json(kind))[0]
    return data.rstrip()[:-1] + b"," + _dump({key: "other"})[1:]


MUTATIONS: dict[str, Callable[[str], bytes]] = {
    "empty": lambda _k: b"",
    "random-bytes": lambda _k: RNG.randbytes(4096),
    "nesting-100000-arrays": lambda _k: b"[" * 100_000 + b"]" * 100_000,
    "nesting-100000-objects": lambda _k: b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "duplicate-keys": _duplicate_keys,
    "float-number": lambda k: _with_number(k, "1.5"),
    "nan": lambda k: _with_number(k, "NaN"),
    "huge-integer": lambda k: _with_number(k, "1" + "0" * 400),
    "negative-number": lambda k: _with_number(k, "-1"),
    "number-2^63": lambda k: _with_number(k, str(2**63)),
    "invalid-utf8": lambda k: SEEDS[k].replace(b'"', b'"\xff\xfe', 1),
    "bom": lambda k: b"\xef\xbb\xbf" + SEEDS[k],
    "utf16": lambda k: SEEDS[k].decode().encode("utf-16"),
    "nul-in-string": lambda k: _with_string(k, "a\x00b"),
    "control-chars-in-string": lambda k: _with_string(k, "a\x1b[2J\x07\r\nb"),
    "lone-surrogate": lambda k: _dump(_json(k)).replace(b'"', b'"\\ud800', 1),
    "string-10MB": lambda k: _with_string(k, "x" * (10 * 1024 * 1024)),
    "top-level-array": lambda k: b"[" + SEEDS[k] + b"]",
    "trailing-garbage": lambda k: SEEDS[k] + b"}{",
}


def wrong_types(kind: str) -> list[tuple[str, bytes]]:
    """For every top-level field, the document with that field of a wrong type."""
    doc = _json(kind)
    out = []
    for key, value in sorted(doc.items()):
        wrong: Any = [] if not isinstance(value, list) else {"x": 1}
        if isinstance(value, str):
            wrong = 7
        out.append((key, _dump({**doc, key: wrong})))
    return out


# ---------------------------------------------------------------------------
# keys and certificates


def _cert(
    private: Any,
    cn: str,
    *,
    days: int = 365,
    start: datetime | None = None,
    algorithm: Any = None,
) -> bytes:
    start = start or datetime(2030, 1, 1, tzinfo=UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
    )
    return builder.sign(private, algorithm).public_bytes(serialization.Encoding.PEM)


def _pubkeys_with(pem: bytes, keytype: str = "ecdsa-x509") -> bytes:
    doc = _json("pubkeys")
    entry = doc["keys"][0]
    entry["key"] = {
        "keytype": keytype,
        "keyval": {"private": None, "public": base64.b64encode(pem).decode()},
    }
    return _dump(doc)


def _key_file(private: Any, role: str = "targets") -> bytes:
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"hostile-passphrase"),
    )
    first, rest = pem.split(b"\n", 1)
    return first + f"\nrole: {role}\n\n".encode() + rest


RSA1024 = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the point
P521 = ec.generate_private_key(ec.SECP521R1())
ED448 = ed448.Ed448PrivateKey.generate()
P256 = ec.generate_private_key(ec.SECP256R1())


def key_documents() -> dict[str, bytes]:
    """Public keys documents with unsupported or broken keys and certificates."""
    sha = hashes.SHA256()
    seed_cert = base64.b64decode(_json("pubkeys")["keys"][0]["key"]["keyval"]["public"])
    return {
        "rsa-1024-certificate": _pubkeys_with(_cert(RSA1024, GUN, algorithm=sha)),
        "p521-certificate": _pubkeys_with(_cert(P521, GUN, algorithm=hashes.SHA512())),
        "ed448-certificate": _pubkeys_with(_cert(ED448, GUN)),
        "rsa-1024-bare-key": _pubkeys_with(
            RSA1024.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            "rsa",
        ),
        "expired-certificate": _pubkeys_with(
            _cert(P256, GUN, days=1, start=datetime(2001, 1, 1, tzinfo=UTC), algorithm=sha)
        ),
        "certificate-far-future": _pubkeys_with(
            _cert(P256, GUN, days=1, start=datetime(9000, 1, 1, tzinfo=UTC), algorithm=sha)
        ),
        "certificate-cn-not-gun": _pubkeys_with(_cert(P256, "example.com/other", algorithm=sha)),
        "malformed-certificate": _pubkeys_with(
            seed_cert.replace(b"\n", b"\n", 3)[:200] + b"\n-----END CERTIFICATE-----\n"
        ),
        "certificate-not-base64": _dump(
            {
                **_json("pubkeys"),
                "keys": [
                    {
                        **_json("pubkeys")["keys"][0],
                        "key": {"keytype": "ecdsa-x509", "keyval": {"public": "%%%"}},
                    }
                ],
            }
        ),
    }


def key_files() -> dict[str, bytes]:
    good = SEEDS["keyfile"]
    lines = good.splitlines(keepends=True)
    body = [i for i, line in enumerate(lines) if line.strip() and b":" not in line][1:-1]
    flipped = list(lines)
    flipped[body[0]] = flipped[body[0]][::-1].strip() + b"\n"
    return {
        "rsa-1024-key": _key_file(RSA1024),
        "p521-key": _key_file(P521),
        "ed448-key": _key_file(ED448),
        "truncated-pem": good[: len(good) // 2],
        "pem-without-end": good.replace(b"-----END ENCRYPTED PRIVATE KEY-----", b""),
        "corrupted-pem-body": b"".join(flipped),
        "two-pem-blocks": good + good,
        "pem-header-only": b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nrole: targets\n\n-----END ENCRYPTED PRIVATE KEY-----\n",
        "unknown-role-header": good.replace(b"role: targets", b"role: ../../etc"),
    }


# ---------------------------------------------------------------------------
# QR frames


def _frame_images(folder: Path, texts: list[str]) -> list[str]:
    import segno

    folder.mkdir(parents=True, exist_ok=True)
    for i, text in enumerate(texts):
        segno.make(text, error="l", mode="alphanumeric").save(
            str(folder / f"frame-{i:03d}.png"), scale=3, border=4
        )
    return [str(folder)]


def _request_encoder(document: bytes, *, block_size: int = 600) -> Any:
    from ceremony.qr.frames import ContentType, Encoder

    return Encoder(document, block_size=block_size, content_type=ContentType.REQUEST)


def qr_bomb(folder: Path) -> list[str]:
    """A few tens of KB of zlib that inflate to 48 MiB (3x the 16 MiB cap)."""
    from ceremony.qr.frames import Compression, ContentType, Encoder

    payload = zlib.compress(b" " * (48 * 1024 * 1024), 9)
    encoder = Encoder.from_payload(
        payload, block_size=1500, content_type=ContentType.REQUEST, compression=Compression.ZLIB
    )
    return _frame_images(folder, encoder.frames(encoder.k))


def qr_mixed(folder: Path) -> list[str]:
    """Half the frames of one request and half of another, in one folder."""
    other = _dump({**_json("request"), "nonce": "cd" * 16})
    a, b = _request_encoder(SEEDS["request"]), _request_encoder(other)
    texts = a.frames(a.k)[: a.k // 2 + 1] + b.frames(b.k)[b.k // 2 :]
    return _frame_images(folder, texts)


def _patched_frames(seed: bytes, patch: Callable[[bytearray], None]) -> list[str]:
    import base45

    from ceremony.qr.frames import PREFIX

    encoder = _request_encoder(seed)
    texts = []
    for seq in range(encoder.k):
        raw = bytearray(encoder.frame_bytes(seq))
        if seq == 1:
            patch(raw)
            body = bytes(raw[:-4])
            raw[-4:] = zlib.crc32(body).to_bytes(4, "big")
        texts.append(PREFIX + base45.b45encode(bytes(raw)).decode())
    return texts


def _header_field(name: str) -> tuple[int, int]:
    """Offset and size of a field of the frame header (struct HEADER)."""
    from ceremony.qr.frames import HEADER

    fmt = HEADER.format.lstrip("<>!=@")
    names = ["version", "flags", "tid", "k", "seq", "length"]
    import struct

    offset = 0
    for field_name, code in zip(names, fmt, strict=True):
        size = struct.calcsize(">" + code)
        if field_name == name:
            return offset, size
        offset += size
    raise KeyError(name)


def _bump(name: str, delta: int) -> Callable[[bytearray], None]:
    def patch(raw: bytearray) -> None:
        offset, size = _header_field(name)
        value = int.from_bytes(raw[offset : offset + size], "big") + delta
        raw[offset : offset + size] = (value % (1 << (8 * size))).to_bytes(size, "big")

    return patch


def qr_inconsistent(name: str) -> Make:
    def make(folder: Path) -> list[str]:
        return _frame_images(folder, _patched_frames(SEEDS["request"], _bump(name, 1)))

    return make


def qr_plain(texts: list[str]) -> Make:
    return lambda folder: _frame_images(folder, texts)


def qr_random_image(folder: Path) -> list[str]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    Image.frombytes("L", (300, 300), RNG.randbytes(90_000)).save(folder / "noise.png")
    (folder / "not-an-image.png").write_bytes(RNG.randbytes(5000))
    return [str(folder)]


def qr_incomplete(folder: Path) -> list[str]:
    encoder = _request_encoder(SEEDS["request"])
    return _frame_images(folder, encoder.frames(encoder.k)[:-1])


# ---------------------------------------------------------------------------
# files that are not files


def special(kind: str, folder: Path, name: str) -> Path:
    """A path where a file is expected that is a symlink, a folder, a FIFO or a device."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if kind == "symlink-to-device":
        path.symlink_to("/dev/zero")
    elif kind == "dangling-symlink":
        path.symlink_to(folder / "nowhere")
    elif kind == "symlink-loop":
        path.symlink_to(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        os.mknod(path, 0o600 | 0o020000, os.makedev(1, 5))  # a char device: /dev/zero's numbers
    else:
        raise KeyError(kind)
    return path


SPECIALS = ("symlink-to-device", "dangling-symlink", "symlink-loop", "directory", "fifo", "device")
SPECIAL_CODES = {"dangling-symlink": 2, "directory": 2, "symlink-loop": 1}


def big_whitespace(path: Path) -> Path:
    """200 MB of whitespace (written in 1 MB pieces)."""
    if not path.exists():
        chunk = b" \n\t\r" * (256 * 1024)
        with path.open("wb") as out:
            for _ in range(200):
                out.write(chunk)
    return path
