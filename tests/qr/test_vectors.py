"""Golden frame vectors (tests/vectors/qr/frames.json) and an independent reading of the spec.

Regenerate after an intentional format change with:
    .venv/bin/python -m tests.qr.test_vectors --write
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
import zlib
from pathlib import Path
from typing import Any

import base45

from ceremony.qr.frames import Compression, ContentType, Encoder, decode_frames

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "qr" / "frames.json"

CASES: list[dict[str, Any]] = [
    {
        "name": "request, zlib, 7 blocks of 16 bytes",
        "document": b'{"type":"request","gun":"example.com/app","roles":["targets"]}',
        "content_type": ContentType.REQUEST,
        "compression": Compression.ZLIB,
        "block_size": 16,
    },
    {
        "name": "signatures, zlib, one block (static code)",
        "document": b'{"type":"signatures","sigs":[]}',
        "content_type": ContentType.SIGNATURES,
        "compression": Compression.ZLIB,
        "block_size": 80,
    },
    {
        "name": "other, no compression, 9 blocks of 10 bytes, padded",
        "document": bytes(range(50)),
        "content_type": ContentType.OTHER,
        "compression": Compression.NONE,
        "block_size": 10,
    },
]
EXTRA_FRAMES = 4


def _payload(case: dict[str, Any]) -> bytes:
    if case["compression"] is Compression.ZLIB:
        return zlib.compress(case["document"], 9)
    return bytes(case["document"])


def build_vectors() -> dict[str, Any]:
    """Everything an independent implementation needs to check itself, frame by frame."""
    cases = []
    for case in CASES:
        payload = _payload(case)
        encoder = Encoder.from_payload(
            payload,
            block_size=case["block_size"],
            content_type=case["content_type"],
            compression=case["compression"],
        )
        block_count = encoder.k + EXTRA_FRAMES
        cases.append(
            {
                "name": case["name"],
                "document_hex": case["document"].hex(),
                "content_type": int(case["content_type"]),
                "compression": int(case["compression"]),
                "block_size": case["block_size"],
                "payload_hex": payload.hex(),
                "transfer_id": encoder.transfer_id.hex(),
                "k": encoder.k,
                "message_length": len(encoder.message),
                "frames": [
                    {
                        "seq": seq,
                        "blocks": _reference_blocks(encoder.transfer_id, seq, encoder.k),
                        "text": encoder.frame(seq),
                    }
                    for seq in range(block_count)
                ],
            }
        )
    return {
        "format": "NC1 QR frames, see docs/qr-format.md",
        "note": "payload_hex is normative for the frames; zlib output may differ by zlib build",
        "cases": cases,
    }


def _reference_blocks(transfer_id: bytes, seq: int, k: int) -> list[int]:
    """The spec's coefficient rule, written out bit by bit, independently of frames.py."""
    if seq < k:
        return [seq]
    stream = b""
    counter = 0
    while len(stream) * 8 < k:
        stream += hashlib.sha256(
            transfer_id + struct.pack(">I", seq) + struct.pack(">I", counter)
        ).digest()
        counter += 1
    chosen = [i for i in range(k) if stream[i // 8] >> (i % 8) & 1]
    return chosen or [seq % k]


def test_vectors_match_the_checked_in_file() -> None:
    assert json.loads(VECTORS.read_text()) == build_vectors()


def test_vector_frames_follow_the_spec_independently() -> None:
    for case in json.loads(VECTORS.read_text())["cases"]:
        payload = bytes.fromhex(case["payload_hex"])
        if case["compression"] == 1:
            assert zlib.decompress(payload) == bytes.fromhex(case["document_hex"])
        message = hashlib.sha256(payload).digest() + payload
        block = case["block_size"]
        k = -(-len(message) // block)
        padded = message.ljust(k * block, b"\0")
        blocks = [padded[i * block : (i + 1) * block] for i in range(k)]
        for frame in case["frames"]:
            text = frame["text"]
            assert text.startswith("NC1")
            raw = base45.b45decode(text[3:])
            body, crc = raw[:-4], raw[-4:]
            assert struct.pack(">I", zlib.crc32(body)) == crc
            version, flags, tid, kk, seq, length = struct.unpack(">BBIHII", body[:16])
            assert version == 1
            assert flags == case["compression"] | case["content_type"] << 2
            assert tid.to_bytes(4, "big") == hashlib.sha256(payload).digest()[:4]
            assert (kk, seq, length) == (k, frame["seq"], len(message))
            data = bytes(block)
            for index in _reference_blocks(tid.to_bytes(4, "big"), seq, k):
                data = bytes(a ^ b for a, b in zip(data, blocks[index], strict=True))
            assert body[16:] == data
            assert frame["blocks"] == _reference_blocks(tid.to_bytes(4, "big"), seq, k)


def test_vector_frames_decode() -> None:
    for case in json.loads(VECTORS.read_text())["cases"]:
        texts = [frame["text"] for frame in case["frames"]]
        document = bytes.fromhex(case["document_hex"])
        assert decode_frames(texts) == document
        assert decode_frames(reversed(texts)) == document


def test_some_vector_uses_the_all_zero_rule() -> None:
    """K=1 repair frames have a 1-in-2 chance of an empty mix; the vectors must show one."""
    case = json.loads(VECTORS.read_text())["cases"][1]
    assert case["k"] == 1
    tid = bytes.fromhex(case["transfer_id"])
    empty = [
        frame["seq"]
        for frame in case["frames"]
        if frame["seq"] >= 1
        and not hashlib.sha256(tid + struct.pack(">II", frame["seq"], 0)).digest()[0] & 1
    ]
    assert empty, "no frame exercises the all-zero rule; pick another document"


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    VECTORS.write_text(json.dumps(build_vectors(), indent=1) + "\n")
    print(f"wrote {VECTORS}")
