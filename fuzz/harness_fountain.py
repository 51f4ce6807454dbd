"""The fountain decoder: a scan of frames from one or two transfers, some damaged or forged.

A data provider drives the scan: the documents (or raw payloads, compressed or
not, within a small size cap so bombs are cheap), the block size, which frames are
shown in which order, and what happens to each (intact, bit flips with a bad CRC,
forged content or header with a good CRC, cut short, another app's code).

Properties: `Decoder.add` never raises; a completed decode returns exactly one of
the documents shown, never anything else; a scan with no damaged frame that shows
every source frame of a transfer completes; `decode_frames` returns or raises a
clean refusal.
"""

from __future__ import annotations

import zlib

import atheris
import base45

from ceremony.qr.frames import (
    CRC_SIZE,
    PREFIX,
    Compression,
    ContentType,
    Decoder,
    Encoder,
    decode_frames,
)
from fuzz.driver import REFUSED, Target, expect, refused

CAP = 4096  # the decoder's document cap here: a bomb's cost stays small


def _expected(payload: bytes, compression: Compression) -> bytes | None:
    """What a transfer of `payload` must decode to (None: it must be refused)."""
    if compression is Compression.NONE:
        return payload if len(payload) <= CAP else None
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(payload, CAP + 1)
    except zlib.error:
        return None
    if len(out) > CAP or inflater.unconsumed_tail or not inflater.eof or inflater.unused_data:
        return None
    return out


def _encoder(fdp: atheris.FuzzedDataProvider) -> tuple[Encoder, bytes | None]:
    compression = Compression(fdp.ConsumeIntInRange(0, 1))
    kind = ContentType(fdp.ConsumeIntInRange(0, 2))
    block = fdp.ConsumeIntInRange(1, 96)
    raw = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 1500))
    mode = fdp.ConsumeIntInRange(0, 3)
    if mode == 0:  # a raw payload: any bytes claimed to be zlib (or not)
        payload = raw
    elif mode == 1:  # a bomb: small, inflating past the cap
        payload = zlib.compress(raw * (CAP // max(1, len(raw)) + 2) or b"\0" * (CAP + 1), 9)
    else:
        payload = zlib.compress(raw, 9) if compression is Compression.ZLIB else raw
    encoder = Encoder.from_payload(
        payload, block_size=block, content_type=kind, compression=compression
    )
    return encoder, _expected(payload, compression)


def _damaged(fdp: atheris.FuzzedDataProvider, encoder: Encoder, seq: int) -> tuple[str, bool]:
    """A frame text and whether it was tampered with."""
    how = fdp.ConsumeIntInRange(0, 9)
    if how <= 4:
        return encoder.frame(seq), False
    raw = bytearray(encoder.frame_bytes(seq))
    if how == 5:  # a misread: bits flipped, CRC left as it was
        raw[fdp.ConsumeIntInRange(0, len(raw) - 1)] ^= 1 << fdp.ConsumeIntInRange(0, 7)
    elif how in (6, 7):  # a forgery: bytes changed and the CRC made right
        at = fdp.ConsumeIntInRange(0, len(raw) - CRC_SIZE - 1)
        raw[at] = fdp.ConsumeIntInRange(0, 255)
        body = bytes(raw[:-CRC_SIZE])
        raw[-CRC_SIZE:] = zlib.crc32(body).to_bytes(CRC_SIZE, "big")
    elif how == 8:  # cut short
        text = encoder.frame(seq)
        return text[: fdp.ConsumeIntInRange(0, len(text))], True
    else:  # another app's code
        return fdp.ConsumeUnicodeNoSurrogates(40), True
    return PREFIX + bytes(base45.b45encode(bytes(raw))).decode("ascii"), True


def check(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    transfers = [_encoder(fdp) for _ in range(fdp.ConsumeIntInRange(1, 2))]
    want = fdp.ConsumeIntInRange(0, 2)
    decoder = Decoder(content_type=None if want == 0 else ContentType(want), max_document_size=CAP)
    texts: list[str] = []
    tampered = False
    shown: list[set[int]] = [set() for _ in transfers]
    for _ in range(fdp.ConsumeIntInRange(0, 150)):
        index = fdp.ConsumeIntInRange(0, len(transfers) - 1)
        encoder = transfers[index][0]
        if fdp.ConsumeBool():
            seq = fdp.ConsumeIntInRange(0, encoder.k - 1)
        else:
            seq = fdp.ConsumeIntInRange(0, 0xFFFFFFFF)
        text, bad = _damaged(fdp, encoder, seq)
        tampered |= bad
        if not bad and seq < encoder.k:
            shown[index].add(seq)
        texts.append(text)
        decoder.add(text)  # never raises
    if not fdp.remaining_bytes() and not texts:
        return
    documents = [expected for _, expected in transfers]
    if decoder.complete:
        expect(decoder.result() in documents, "the decoder returned a document never shown")
    elif not tampered and len({e.transfer_id for e, _ in transfers}) == len(transfers):
        for (encoder, expected), seqs in zip(transfers, shown, strict=True):
            fits = want == 0 or encoder.content_type is ContentType(want)
            if expected is not None and fits and len(seqs) == encoder.k:
                expect(False, "every source frame was shown but the decode did not complete")
    if len(texts) > 40:
        return  # decode_frames is Decoder.add_all: a short scan is enough to check it
    result = refused(lambda: decode_frames(texts, max_document_size=CAP))
    if result is not REFUSED:
        expect(result in documents, "decode_frames returned a document never shown")


TARGET = Target(
    "fountain",
    check,
    "the fountain decoder over whole scans (ceremony.qr.frames.Decoder, decode_frames)",
    None,
    max_len=8192,
)
