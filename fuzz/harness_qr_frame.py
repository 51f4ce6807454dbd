"""One QR frame text (ceremony.qr.frames.parse_frame) and the decoder's handling of it.

The input's bytes are the text zbar returned (Latin-1, so every byte is a
character). Properties of a frame accepted: its fields re-pack to exactly the
bytes decoded (header, data, CRC-32); the decoder never raises for any text.
"""

from __future__ import annotations

import zlib

import base45

from ceremony.qr.frames import (
    CRC_SIZE,
    FORMAT_VERSION,
    HEADER,
    PREFIX,
    Decoder,
    _flags,
    parse_frame,
)
from fuzz.driver import REFUSED, Target, expect, mutate_bytes, refused


def check(data: bytes) -> None:
    text = data.decode("latin-1")
    frame = refused(lambda: parse_frame(text))
    Decoder(max_document_size=4096).add(text)  # never raises
    if frame is REFUSED:
        return
    header = HEADER.pack(
        FORMAT_VERSION,
        _flags(frame.compression, frame.content_type),
        int.from_bytes(frame.transfer_id, "big"),
        frame.k,
        frame.seq,
        frame.message_length,
    )
    body = header + frame.data
    packed = body + zlib.crc32(body).to_bytes(CRC_SIZE, "big")
    expect(base45.b45decode(text[len(PREFIX) :]) == packed, "a frame does not re-pack to its bytes")


def mutator(data: bytes, max_size: int, seed: int) -> bytes:
    """Mutate the frame's binary content; every other time the CRC is made right again,
    so mutations reach the header checks behind it."""
    text = data.decode("latin-1")
    if seed % 4 == 0 or not text.startswith(PREFIX):
        return mutate_bytes(data, max(0, max_size - len(data)))[:max_size]
    try:
        raw = bytes(base45.b45decode(text[len(PREFIX) :]))
    except ValueError:
        return mutate_bytes(data)[:max_size]
    raw = mutate_bytes(raw)
    if seed % 2 and len(raw) > CRC_SIZE:
        body = raw[:-CRC_SIZE]
        raw = body + zlib.crc32(body).to_bytes(CRC_SIZE, "big")
    out: bytes = PREFIX.encode() + base45.b45encode(raw)
    return out[:max_size]


TARGET = Target(
    "qr_frame",
    check,
    "QR frame texts (ceremony.qr.frames.parse_frame, Decoder.add)",
    mutator,
    max_len=4400,
)
