"""The pure frame codec: round trips, fountain behaviour, and every refusal path."""

from __future__ import annotations

import random
import struct
import zlib

import base45
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ceremony.core.errors import MalformedInput, UsageError
from ceremony.qr.capacity import (
    PRESETS,
    alphanumeric_capacity,
    frame_text_length,
    plan,
    preset_named,
)
from ceremony.qr.fountain import repair_coefficients
from ceremony.qr.frames import (
    DEFAULT_MAX_DOCUMENT,
    MAX_K,
    Compression,
    ContentType,
    CorruptFrame,
    Decoder,
    Encoder,
    FrameRejected,
    FrameStatus,
    NotAFrame,
    decode_frames,
    inflate,
    parse_frame,
)

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def forge(
    text: str,
    *,
    flags: int | None = None,
    k: int | None = None,
    message_length: int | None = None,
    version: int | None = None,
    data: bytes | None = None,
) -> str:
    """Rewrite header fields of a frame and recompute its CRC, as a hostile sender could."""
    raw = base45.b45decode(text[3:])[:-4]
    fields = list(struct.unpack(">BBIHII", raw[:16]))
    for index, value in ((0, version), (1, flags), (3, k), (5, message_length)):
        if value is not None:
            fields[index] = value
    body = struct.pack(">BBIHII", *fields) + (raw[16:] if data is None else data)
    return "NC1" + str(base45.b45encode(body + struct.pack(">I", zlib.crc32(body))).decode())


def status_and_reason(text: str, decoder: Decoder | None = None) -> tuple[FrameStatus, str]:
    result = (decoder or Decoder()).add(text)
    return result.status, result.reason


def assert_one_sentence(reason: str) -> None:
    assert reason.endswith(".")
    assert reason[0].isupper()
    assert "\n" not in reason
    assert reason.count(". ") == 0, reason


# --- Round trips ---------------------------------------------------------------------------


@SETTINGS
@given(
    document=st.binary(max_size=1500),
    block_size=st.integers(min_value=8, max_value=300),
    extra=st.integers(min_value=0, max_value=8),
    data=st.data(),
)
def test_round_trip_any_order_with_duplicates_corruption_and_foreign_frames(
    document: bytes, block_size: int, extra: int, data: st.DataObject
) -> None:
    encoder = Encoder(document, block_size=block_size, content_type=ContentType.REQUEST)
    texts = encoder.frames(encoder.k + extra)
    shuffled = data.draw(st.permutations(texts))
    duplicates = data.draw(st.lists(st.sampled_from(texts), max_size=5))
    other = Encoder(document + b"x", block_size=block_size, content_type=ContentType.REQUEST)
    stream = list(shuffled) + duplicates + other.frames(other.k - 1)  # never completes
    data.draw(st.randoms()).shuffle(stream)
    victim = data.draw(st.integers(min_value=0, max_value=len(stream) - 1))
    stream.insert(victim, corrupt(stream[victim]))
    decoder = Decoder(content_type=ContentType.REQUEST)
    for text in stream:
        decoder.add(text)
    assert decoder.result() == document
    assert decoder.transfer_id == encoder.transfer_id
    assert decoder.progress.corrupt == 1


def corrupt(text: str) -> str:
    raw = bytearray(base45.b45decode(text[3:]))
    raw[len(raw) // 2] ^= 0x40
    return "NC1" + str(base45.b45encode(bytes(raw)).decode())


@SETTINGS
@given(document=st.binary(max_size=3000), seed=st.integers(0, 2**32 - 1))
def test_any_k_independent_frames_after_loss_rebuild_the_document(
    document: bytes, seed: int
) -> None:
    encoder = Encoder(document, block_size=64)
    rng = random.Random(seed)
    kept = [text for text in encoder.frames(3 * encoder.k + 40) if rng.random() > 0.3]
    decoder = Decoder()
    decoder.add_all(kept)
    assert decoder.complete
    assert decoder.result() == document
    assert decoder.progress.rank == encoder.k


@pytest.mark.parametrize("compression", list(Compression))
@pytest.mark.parametrize("size", [0, 1, 31, 32, 33, 945, 5000])
def test_round_trip_sizes_and_compressions(size: int, compression: Compression) -> None:
    document = random.Random(size).randbytes(size)
    encoder = Encoder(document, block_size=100, compression=compression)
    assert decode_frames(encoder.frames(encoder.k)) == document


def test_late_join_needs_only_about_k_frames() -> None:
    encoder = Encoder(random.Random(1).randbytes(20_000), block_size=200)
    decoder = Decoder()
    start = encoder.k + 500  # the receiver never saw a source frame
    used = 0
    while not decoder.complete and used < encoder.k + 30:
        decoder.add(encoder.frame(start + used))
        used += 1
    assert decoder.complete
    assert used <= encoder.k + 20


def test_frames_of_another_transfer_never_reset_progress() -> None:
    ours_document = random.Random(7).randbytes(1200)
    ours = Encoder(ours_document, block_size=40)
    old = Encoder(random.Random(8).randbytes(1200), block_size=40)
    decoder = Decoder()
    for seq in range(ours.k // 2):
        decoder.add(ours.frame(seq))
    rank = decoder.progress.rank
    for seq in range(old.k - 1):
        assert decoder.add(old.frame(seq)).status is FrameStatus.ACCEPTED
    assert decoder.progress.transfers == 2
    for seq in range(ours.k // 2, ours.k):
        result = decoder.add(ours.frame(seq))
        assert result.rank > rank
    assert decoder.result() == ours_document


def test_transfer_states_are_bounded_and_the_stalest_is_evicted() -> None:
    decoder = Decoder(max_transfers=2)
    documents = [random.Random(n).randbytes(500) for n in range(5)]
    encoders = [Encoder(document, block_size=30) for document in documents]
    for encoder in encoders:
        decoder.add(encoder.frame(0))
        assert decoder.progress.transfers <= 2
    last = encoders[-1]
    decoder.add_all(last.frames(last.k))
    assert decoder.result() == documents[4]


def test_duplicates_are_harmless_and_counted() -> None:
    encoder = Encoder(random.Random(4).randbytes(600), block_size=50)
    decoder = Decoder()
    assert decoder.add(encoder.frame(0)).status is FrameStatus.ACCEPTED
    assert decoder.add(encoder.frame(0)).status is FrameStatus.DUPLICATE
    assert decoder.progress.duplicate == 1
    assert decoder.progress.rank == 1


def test_progress_reports_rank_over_k() -> None:
    encoder = Encoder(random.Random(3).randbytes(1000), block_size=100)
    decoder = Decoder()
    assert decoder.progress.k == 0
    assert decoder.progress.fraction == 0.0
    decoder.add(encoder.frame(2))
    progress = decoder.progress
    assert (progress.rank, progress.k, progress.frames) == (1, encoder.k, 1)
    assert progress.fraction == pytest.approx(1 / encoder.k)
    decoder.add_all(encoder.frames(encoder.k))
    assert decoder.progress.complete
    assert decoder.result_content_type is ContentType.OTHER


def test_repair_coefficients_are_never_empty_and_stay_within_k() -> None:
    tid = bytes.fromhex("01020304")
    for k in (1, 2, 3, 7, 8, 9, 255, 256, 257, 4096):
        for seq in range(k, k + 50):
            coefficients = repair_coefficients(tid, seq, k)
            assert 0 < coefficients < 1 << k
    # K=1: every repair frame is block 0, half of them through the all-zero rule.
    assert {repair_coefficients(tid, seq, 1) for seq in range(1, 40)} == {1}


def test_repair_frames_are_dense() -> None:
    tid = b"\xaa\xbb\xcc\xdd"
    bits = sum(bin(repair_coefficients(tid, seq, 400)).count("1") for seq in range(400, 500))
    assert 180 * 100 < bits < 220 * 100


# --- Refusals: each is one sentence, never a traceback --------------------------------------


def test_text_that_is_not_a_frame_is_foreign() -> None:
    status, reason = status_and_reason("https://example.com/")
    assert status is FrameStatus.FOREIGN
    assert "not a ceremony transfer frame" in reason
    with pytest.raises(NotAFrame):
        parse_frame("NC2ABC")


@pytest.mark.parametrize("cut", [3, 4, 5, 10, 30, -1, -2, -3])
def test_truncated_frames_are_corrupt(cut: int) -> None:
    text = Encoder(b"hello" * 50, block_size=40).frame(0)
    status, reason = status_and_reason(text[:cut])
    assert status is FrameStatus.CORRUPT
    assert_one_sentence(reason)


def test_bad_crc_is_corrupt() -> None:
    text = Encoder(b"hello" * 50, block_size=40).frame(1)
    status, reason = status_and_reason(corrupt(text))
    assert status is FrameStatus.CORRUPT
    assert "CRC-32" in reason
    with pytest.raises(CorruptFrame):
        parse_frame(corrupt(text))


def test_invalid_base45_and_overlong_text_are_corrupt() -> None:
    assert status_and_reason("NC1abc")[0] is FrameStatus.CORRUPT
    assert status_and_reason("NC1" + "0" * 5000)[0] is FrameStatus.CORRUPT


@pytest.mark.parametrize(
    ("fields", "phrase"),
    [
        ({"k": 0}, "claims 0 blocks"),
        ({"k": MAX_K + 1}, f"claims {MAX_K + 1} blocks"),
        ({"k": 60000}, "claims 60000 blocks"),
        ({"message_length": 2**31}, "-byte message"),
        ({"message_length": 5}, "-byte message"),
        ({"message_length": 1000}, "does not match"),
        ({"version": 2}, "format version 2"),
        ({"flags": 0b1000_0001}, "reserved flag bits"),
        ({"flags": 0b0000_0011}, "compression method 3"),
        ({"flags": 0b0001_1101}, "unknown content type 7"),
    ],
)
def test_absurd_or_unsupported_headers_are_rejected(fields: dict[str, int], phrase: str) -> None:
    text = forge(Encoder(b"x" * 300, block_size=40).frame(0), **fields)  # type: ignore[arg-type]
    status, reason = status_and_reason(text)
    assert status is FrameStatus.REJECTED
    assert phrase in reason
    assert_one_sentence(reason)
    with pytest.raises(FrameRejected):
        parse_frame(text)


def test_mismatched_k_within_a_transfer_is_rejected_not_a_reset() -> None:
    document = b"same payload, other block size" * 20
    first = Encoder(document, block_size=40)
    second = Encoder(document, block_size=50)
    assert first.transfer_id == second.transfer_id
    decoder = Decoder()
    decoder.add(first.frame(0))
    status, reason = status_and_reason(second.frame(1), decoder)
    assert status is FrameStatus.REJECTED
    assert f"K={second.k}" in reason
    assert_one_sentence(reason)
    decoder.add_all(first.frames(first.k))
    assert decoder.result() == document


def test_wrong_content_type_is_refused_with_one_sentence() -> None:
    signatures = Encoder(b"{}", block_size=100, content_type=ContentType.SIGNATURES)
    decoder = Decoder(content_type=ContentType.REQUEST)
    status, reason = status_and_reason(signatures.frame(0), decoder)
    assert status is FrameStatus.FOREIGN
    assert reason == (
        "These QR codes carry a signatures document, but a signing request is expected; "
        "show the right codes."
    )
    with pytest.raises(MalformedInput, match="signatures document"):
        decoder.result()


def test_tampered_block_with_valid_crc_fails_the_sha256_check() -> None:
    encoder = Encoder(random.Random(5).randbytes(500), block_size=60)
    texts = encoder.frames(encoder.k)
    original = base45.b45decode(texts[1][3:])[16:-4]
    texts[1] = forge(texts[1], data=bytes([original[0] ^ 1]) + original[1:])
    decoder = Decoder()
    results = [decoder.add(text) for text in texts]
    assert results[-1].status is FrameStatus.REJECTED
    assert "SHA-256" in results[-1].reason
    assert decoder.failure == results[-1].reason
    with pytest.raises(MalformedInput, match="SHA-256"):
        decoder.result()
    assert decoder.add(encoder.frame(encoder.k + 1)).status is FrameStatus.REJECTED


def gigabyte_of_zeros_compressed() -> bytes:
    """A valid 1 GiB zlib stream of zeros in ~1 MB, built in milliseconds.

    After a full flush the compressor's window is empty, so compressing the same MiB again
    gives the same bytes: the stream is header + 1024 copies + an empty final block + Adler-32.
    """
    mebibyte = bytes(1 << 20)
    compressor = zlib.compressobj(9)
    first = compressor.compress(mebibyte) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeat = compressor.compress(mebibyte) + compressor.flush(zlib.Z_FULL_FLUSH)
    adler = ((1024 * (1 << 20)) % 65521) << 16 | 1
    return first + repeat * 1023 + b"\x03\x00" + struct.pack(">I", adler)


def test_zlib_bomb_is_refused_without_inflating_it() -> None:
    bomb = gigabyte_of_zeros_compressed()
    encoder = Encoder.from_payload(bomb, block_size=PRESETS["fast40"].block_size)
    decoder = Decoder()
    for seq in range(encoder.k):
        result = decoder.add(encoder.frame(seq))
    assert result.status is FrameStatus.REJECTED
    assert result.reason == (
        f"The transferred document expands beyond the {DEFAULT_MAX_DOCUMENT}-byte limit (a "
        "decompression bomb?), so it was refused without being expanded."
    )
    with pytest.raises(MalformedInput, match="decompression bomb"):
        decoder.result()


def test_inflate_bounds_and_stream_checks() -> None:
    payload = zlib.compress(b"a" * 1000)
    assert inflate(payload, 1000) == b"a" * 1000
    with pytest.raises(MalformedInput, match="limit"):
        inflate(payload, 999)
    with pytest.raises(MalformedInput, match="one complete zlib stream"):
        inflate(payload[:-3], 2000)
    with pytest.raises(MalformedInput, match="one complete zlib stream"):
        inflate(payload + b"junk", 2000)
    with pytest.raises(MalformedInput, match="not valid zlib"):
        inflate(b"not zlib at all", 2000)


def test_uncompressed_documents_respect_the_size_cap() -> None:
    encoder = Encoder(b"z" * 500, block_size=100, compression=Compression.NONE)
    decoder = Decoder(max_document_size=499)
    decoder.add_all(encoder.frames(encoder.k))
    with pytest.raises(MalformedInput, match="499-byte limit"):
        decoder.result()


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.text(max_size=200),
        st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:", max_size=200).map(
            lambda t: "NC1" + t
        ),
    )
)
def test_decoder_never_raises_on_arbitrary_text(text: str) -> None:
    result = Decoder().add(text)
    assert result.status in (FrameStatus.FOREIGN, FrameStatus.CORRUPT, FrameStatus.REJECTED)
    assert result.reason


def test_incomplete_reason_says_how_far_it_got() -> None:
    encoder = Encoder(random.Random(2).randbytes(800), block_size=100)
    decoder = Decoder()
    with pytest.raises(MalformedInput, match="No ceremony QR frame was read"):
        decoder.result()
    decoder.add(encoder.frame(0))
    with pytest.raises(MalformedInput, match=f"Only 1 of {encoder.k} blocks"):
        decoder.result()


def test_encoder_refuses_too_many_blocks_and_bad_arguments() -> None:
    with pytest.raises(UsageError, match="more than the 4096"):
        Encoder(random.Random(0).randbytes(5000), block_size=1)
    with pytest.raises(UsageError):
        Encoder(b"x", block_size=0)
    with pytest.raises(UsageError):
        Encoder(b"x", block_size=10).frame(-1)


# --- Presets and plans -----------------------------------------------------------------------


def test_presets_match_the_measured_capacities() -> None:
    expected = {
        "robust": (20, "M", 970, 624),
        "default": (25, "M", 1451, 945),
        "fast": (30, "L", 2520, 1658),
        "fast40": (40, "L", 4296, 2842),
    }
    for name, (version, error, capacity, block) in expected.items():
        preset = preset_named(name)
        assert (preset.version, preset.error, preset.capacity, preset.block_size) == (
            version,
            error,
            capacity,
            block,
        )
        assert frame_text_length(block) <= capacity < frame_text_length(block + 1)
    with pytest.raises(UsageError, match="Unknown QR preset"):
        preset_named("turbo")


def test_capacity_table_agrees_with_segno() -> None:
    import segno

    for error in "LMQH":
        for version in (1, 9, 10, 20, 25, 26, 30, 40):
            capacity = alphanumeric_capacity(version, error)
            code = segno.make("A" * capacity, error=error, mode="alphanumeric", boost_error=False)
            assert (code.version, code.error) == (version, error)
            if version < 40:
                bigger = segno.make(
                    "A" * (capacity + 1), error=error, mode="alphanumeric", boost_error=False
                )
                assert bigger.version == version + 1


def test_small_documents_become_one_code_at_the_smallest_version() -> None:
    document = b'{"signatures": []}'
    transfer = plan(document, PRESETS["default"], content_type=ContentType.SIGNATURES)
    assert transfer.is_static
    assert transfer.export_count == 1
    length = len(transfer.texts()[0])
    assert alphanumeric_capacity(transfer.version, "M") >= length
    assert alphanumeric_capacity(transfer.version - 1, "M") < length
    assert decode_frames(transfer.texts(), content_type=ContentType.SIGNATURES) == document


def test_large_documents_use_the_preset_version_with_balanced_blocks() -> None:
    document = random.Random(9).randbytes(10_000)
    transfer = plan(document, PRESETS["robust"])
    assert (transfer.version, transfer.error) == (20, "M")
    assert transfer.k == -(-(32 + len(zlib.compress(document, 9))) // 624)
    assert transfer.encoder.block_size <= PRESETS["robust"].block_size
    assert max(len(t) for t in transfer.texts()) <= 970
    assert transfer.export_count == transfer.k + max(-(-transfer.k // 2), 12)
    assert decode_frames(transfer.texts()) == document


def test_a_single_slot_decoder_survives_alternating_transfers() -> None:
    first = Encoder(random.Random(11).randbytes(400), block_size=50)
    second = Encoder(random.Random(12).randbytes(400), block_size=50)
    decoder = Decoder(max_transfers=1)
    for seq in range(3):
        decoder.add(first.frame(seq))
        decoder.add(second.frame(seq))
        assert decoder.progress.transfers == 1
        assert decoder.progress.rank == 1
    decoder.add_all(second.frames(second.k))
    assert decoder.transfer_id == second.transfer_id
