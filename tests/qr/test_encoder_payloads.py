"""No document may fail to export: every frame of every preset draws and reads back.

python-qrcode 8.2 failed with "glog(0)" whenever a QR data block was all zero bits (a run
of Base45 "0"s, which zero bytes and zero-padded blocks give). The frames are now drawn by
`qrcodegen`; these tests draw many random and real payloads at every preset, including the
all-zero runs that broke the old encoder, and decode each frame back with both decoders.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from ceremony.qr.capacity import PRESETS, TransferPlan, alphanumeric_capacity, plan
from ceremony.qr.frames import Compression, ContentType, Decoder
from ceremony.qr.render import frame_image, qr_matrix
from ceremony.qr.scan import Backend, decode_image

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "qr" / "frames.json"


def _real_documents() -> list[bytes]:
    """Documents shaped like real ones: Notary metadata JSON, a target list, the QR vectors."""
    rng = random.Random(7)
    targets = {
        f"app/v{i}.tar.gz": {
            "hashes": {"sha256": rng.randbytes(32).hex()},
            "length": rng.randint(1, 1 << 30),
        }
        for i in range(40)
    }
    metadata = {
        "signed": {
            "_type": "Targets",
            "delegations": {"keys": {}, "roles": []},
            "expires": "2029-12-04T11:00:00Z",
            "targets": targets,
            "version": 3,
        },
        "signatures": [{"keyid": rng.randbytes(32).hex(), "method": "ecdsa", "sig": "A" * 88}],
    }
    listing = "\n".join(
        f"{name} {t['hashes']['sha256']} {t['length']}" for name, t in targets.items()
    )
    return [
        json.dumps(metadata, sort_keys=True, separators=(",", ":")).encode(),
        json.dumps(metadata, indent=2).encode(),
        listing.encode(),
        VECTORS.read_bytes(),
    ]


def _zero_heavy_documents() -> list[bytes]:
    """The shapes that made python-qrcode fail: long runs of zero bytes, sent uncompressed."""
    return [
        bytes(4000),
        b"\x01" + bytes(3000) + b"\x02",
        bytes(700) + random.Random(3).randbytes(900),
    ]


def _check_frames(p: TransferPlan, seqs: list[int]) -> None:
    decoder = Decoder()
    for seq in seqs:
        text = p.encoder.frame(seq)
        image = frame_image(text, version=p.version, error=p.error, scale=3)
        for backend in (Backend.ZXING, Backend.PYZBAR):
            assert decode_image(image, backend=backend) == [text], (p.version, p.error, seq)
        decoder.add(text)
    if len(seqs) >= p.k:
        assert decoder.complete


def _frames_to_check(p: TransferPlan) -> list[int]:
    """All source frames of a small transfer plus repair frames; a sample of a large one."""
    if p.k <= 6:
        return list(range(p.export_count))
    return [0, 1, p.k - 1, p.k, p.k + 1, p.export_count - 1]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_random_payloads_draw_and_decode_at_every_preset(preset: str) -> None:
    rng = random.Random(f"payloads-{preset}")
    for _ in range(8):
        size = rng.choice([1, 17, 200, 1500, rng.randint(1, 9000)])
        document = rng.randbytes(size)
        compression = rng.choice([Compression.NONE, Compression.ZLIB])
        p = plan(
            document, PRESETS[preset], content_type=ContentType.REQUEST, compression=compression
        )
        frames = _frames_to_check(p)
        _check_frames(p, frames[:3] + frames[-1:])


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_real_and_zero_heavy_documents_export_at_every_preset(preset: str) -> None:
    documents = [(doc, Compression.ZLIB) for doc in _real_documents()] + [
        (doc, Compression.NONE) for doc in _zero_heavy_documents() + _real_documents()
    ]
    for document, compression in documents:
        p = plan(
            document, PRESETS[preset], content_type=ContentType.REQUEST, compression=compression
        )
        _check_frames(p, _frames_to_check(p))


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_signatures_as_one_static_code_at_every_preset(preset: str) -> None:
    rng = random.Random(f"single-{preset}")
    for size in (10, 300, 1200, 2000):
        for document in (rng.randbytes(size), bytes(size)):
            p = plan(
                document,
                PRESETS[preset],
                content_type=ContentType.SIGNATURES,
                compression=Compression.NONE,
                single=True,
            )
            _check_frames(p, [0])


@pytest.mark.parametrize(
    ("version", "error"), [(v, e) for v in (1, 10, 20, 25, 30, 40) for e in "LMQH"]
)
def test_all_zero_data_blocks_at_full_capacity(version: int, error: str) -> None:
    """A code full of "0" (every data block all zero bits) is the case glog(0) broke."""
    text = "0" * alphanumeric_capacity(version, error)
    matrix = qr_matrix(text, version=version, error=error)
    assert len(matrix) == 17 + 4 * version
    image = frame_image(text, version=version, error=error, scale=3)
    assert decode_image(image, backend=Backend.ZXING) == [text]
