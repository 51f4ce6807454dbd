"""Frame codec for QR transfers (pure: bytes and text in and out); the fountain code's
mathematics is `ceremony.qr.fountain`, capacities and presets `ceremony.qr.capacity`.

A document travels as QR text frames (`docs/qr-format.md` is the normative spec):

    payload = zlib.compress(document, 9)
    message = SHA-256(payload) || payload            split into K blocks of B bytes
    frame   = header(16) || data(B) || CRC-32         text = "NC1" + Base45(frame)

Frames 0..K-1 carry the blocks in order; frames K, K+1, ... are repair frames, the XOR
of a pseudo-random subset of blocks derived from SHA-256, so any K independent frames
rebuild the message whatever was lost (a dense random-linear fountain over GF(2)).

This module does no I/O and imports no imaging library: rendering lives in
`ceremony.qr.render`, camera and file input in `ceremony.qr.scan`. It also does not
know what a document means; the caller checks what it receives.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import Final

import base45

from ceremony.core.errors import MalformedInput, UsageError
from ceremony.qr.fountain import Solver, frame_coefficients, set_bits

PREFIX: Final = "NC1"
"""Text prefix of every frame: "NC" (Notary Ceremony) and the format generation "1"."""

FORMAT_VERSION: Final = 1
HEADER: Final = struct.Struct(">BBIHII")
"""ver, flags, transfer id, K, seq, msglen; big-endian, 16 bytes."""
CRC_SIZE: Final = 4
FRAME_OVERHEAD: Final = HEADER.size + CRC_SIZE
DIGEST_SIZE: Final = 32

MAX_K: Final = 4096
"""Most blocks a transfer may have; bounds decoder work (K^2/2 XORs) and memory."""
MAX_SEQ: Final = 0xFFFFFFFF
MAX_FRAME_CHARS: Final = 4296
"""The alphanumeric capacity of the largest QR code (v40-L); longer text is not a frame."""
MAX_MESSAGE_LENGTH: Final = 16 * 1024 * 1024
DEFAULT_MAX_DOCUMENT: Final = 16 * 1024 * 1024
DEFAULT_MAX_TRANSFERS: Final = 4
EXPORT_MIN_EXTRA: Final = 12

_COMPRESSION_MASK: Final = 0b0000_0011
_CONTENT_SHIFT: Final = 2
_CONTENT_MASK: Final = 0b0001_1100
_RESERVED_MASK: Final = 0b1110_0000


class Compression(IntEnum):
    """How the payload was made from the document (flags bits 0-1)."""

    NONE = 0
    ZLIB = 1


class ContentType(IntEnum):
    """What the document is (flags bits 2-4), so a scanner can refuse the wrong kind early."""

    OTHER = 0
    REQUEST = 1
    SIGNATURES = 2

    @property
    def label(self) -> str:
        """The phrase used in operator sentences."""
        return _CONTENT_LABELS[self]


_CONTENT_LABELS: Final = {
    ContentType.OTHER: "a generic document",
    ContentType.REQUEST: "a signing request",
    ContentType.SIGNATURES: "a signatures document",
}


def _flags(compression: Compression, content_type: ContentType) -> int:
    return int(compression) | int(content_type) << _CONTENT_SHIFT


def make_payload(document: bytes, compression: Compression) -> bytes:
    """The bytes a transfer protects: the document, zlib-compressed at level 9 by default."""
    if compression is Compression.ZLIB:
        return zlib.compress(document, 9)
    return document


class Encoder:
    """Turns one payload into an endless, deterministic sequence of frame texts."""

    payload: bytes
    message: bytes
    transfer_id: bytes
    block_size: int
    k: int
    content_type: ContentType
    compression: Compression

    def __init__(
        self,
        document: bytes,
        *,
        block_size: int,
        content_type: ContentType = ContentType.OTHER,
        compression: Compression = Compression.ZLIB,
    ) -> None:
        """Compress `document` and cut the message into blocks of `block_size` bytes."""
        self._init(
            make_payload(document, compression),
            block_size=block_size,
            content_type=content_type,
            compression=compression,
        )

    @classmethod
    def from_payload(
        cls,
        payload: bytes,
        *,
        block_size: int,
        content_type: ContentType = ContentType.OTHER,
        compression: Compression = Compression.ZLIB,
    ) -> Encoder:
        """Build frames for an already-made payload (saves compressing twice; used by tests)."""
        encoder = cls.__new__(cls)
        encoder._init(
            payload, block_size=block_size, content_type=content_type, compression=compression
        )
        return encoder

    def _init(
        self,
        payload: bytes,
        *,
        block_size: int,
        content_type: ContentType,
        compression: Compression,
    ) -> None:
        if block_size < 1:
            raise UsageError(f"A QR block size must be at least 1 byte, not {block_size}.")
        digest = hashlib.sha256(payload).digest()
        message = digest + payload
        k = -(-len(message) // block_size)
        if len(message) > MAX_MESSAGE_LENGTH or k > MAX_K:
            raise UsageError(
                f"The document needs {k} QR frames of {block_size} bytes, more than the "
                f"{MAX_K} a transfer may have; use a faster preset or a file transfer."
            )
        padded = message.ljust(k * block_size, b"\0")
        self.payload = payload
        self.message = message
        self.transfer_id = digest[:4]
        self.block_size = block_size
        self.k = k
        self.content_type = content_type
        self.compression = compression
        self._flags = _flags(compression, content_type)
        self._blocks = tuple(
            int.from_bytes(padded[i * block_size : (i + 1) * block_size], "big") for i in range(k)
        )

    def frame_bytes(self, seq: int) -> bytes:
        """The binary frame `seq` (header, data, CRC-32) before Base45."""
        if not 0 <= seq <= MAX_SEQ:
            raise UsageError(f"Frame number {seq} is outside 0..{MAX_SEQ}.")
        data = 0
        for index in set_bits(frame_coefficients(self.transfer_id, seq, self.k)):
            data ^= self._blocks[index]
        tid = int.from_bytes(self.transfer_id, "big")
        header = HEADER.pack(FORMAT_VERSION, self._flags, tid, self.k, seq, len(self.message))
        body = header + data.to_bytes(self.block_size, "big")
        return body + zlib.crc32(body).to_bytes(CRC_SIZE, "big")

    def frame(self, seq: int) -> str:
        """The QR text of frame `seq`: prefix plus Base45."""
        encoded: bytes = base45.b45encode(self.frame_bytes(seq))
        return PREFIX + encoded.decode("ascii")

    def frames(self, count: int) -> list[str]:
        """Frames 0..count-1: the K source frames first, then repair frames."""
        return [self.frame(seq) for seq in range(count)]


class NotAFrame(MalformedInput):
    """A QR code that is not a frame of this format (another app's code, another generation)."""


class CorruptFrame(MalformedInput):
    """Text that claims to be a frame but was misread or damaged (Base45, length, CRC)."""


class FrameRejected(MalformedInput):
    """An intact frame we refuse: unsupported version, absurd sizes, inconsistent with its peers."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Frame:
    """One parsed, CRC-checked frame."""

    version: int
    compression: Compression
    content_type: ContentType
    transfer_id: bytes
    k: int
    seq: int
    message_length: int
    data: bytes

    @property
    def block_size(self) -> int:
        """B, implied by the frame's length."""
        return len(self.data)


def parse_frame(text: str) -> Frame:
    """Check and unpack one frame text; raises NotAFrame, CorruptFrame or FrameRejected."""
    if not text.startswith(PREFIX):
        if text[:2] == PREFIX[:2] and text[2:3].isdigit():
            raise NotAFrame(
                f"This QR code uses ceremony frame format {text[:3]!r}, this tool reads "
                f"{PREFIX!r}; use the same toolkit version on both machines."
            )
        raise NotAFrame(
            "This QR code is not a ceremony transfer frame; show only the ceremony's codes."
        )
    if len(text) > MAX_FRAME_CHARS:
        raise CorruptFrame(
            f"A frame of {len(text)} characters is longer than any QR code holds; it is ignored."
        )
    try:
        raw: bytes = base45.b45decode(text[len(PREFIX) :])
    except ValueError:
        raise CorruptFrame(
            "A frame is not valid Base45, so it was misread or cut short; it is ignored."
        ) from None
    if len(raw) < FRAME_OVERHEAD + 1:
        raise CorruptFrame(
            f"A frame is truncated ({len(raw)} bytes, at least {FRAME_OVERHEAD + 1} expected); "
            "it is ignored."
        )
    body, crc = raw[:-CRC_SIZE], raw[-CRC_SIZE:]
    if zlib.crc32(body).to_bytes(CRC_SIZE, "big") != crc:
        raise CorruptFrame("A frame failed its CRC-32 check (misread or damaged); it is ignored.")
    version, flags, tid, k, seq, message_length = HEADER.unpack_from(body)
    data = body[HEADER.size :]
    _check_header(version, flags, k, message_length, len(data))
    return Frame(
        version=version,
        compression=Compression(flags & _COMPRESSION_MASK),
        content_type=ContentType((flags & _CONTENT_MASK) >> _CONTENT_SHIFT),
        transfer_id=tid.to_bytes(4, "big"),
        k=k,
        seq=seq,
        message_length=message_length,
        data=data,
    )


_COMPRESSION_VALUES: Final = frozenset(int(method) for method in Compression)
_CONTENT_VALUES: Final = frozenset(int(kind) for kind in ContentType)


def _check_header(version: int, flags: int, k: int, message_length: int, block: int) -> None:
    if version != FORMAT_VERSION:
        raise FrameRejected(
            f"A frame uses format version {version}, this tool reads version {FORMAT_VERSION}; "
            "use the same toolkit version on both machines."
        )
    if flags & _RESERVED_MASK:
        raise FrameRejected(
            f"A frame sets reserved flag bits (flags {flags:#04x}); it was made by an "
            "incompatible tool and is ignored."
        )
    if flags & _COMPRESSION_MASK not in _COMPRESSION_VALUES:
        raise FrameRejected(
            f"A frame uses compression method {flags & _COMPRESSION_MASK}, which this tool "
            "does not support; it is ignored."
        )
    if (flags & _CONTENT_MASK) >> _CONTENT_SHIFT not in _CONTENT_VALUES:
        raise FrameRejected(
            f"A frame declares unknown content type {(flags & _CONTENT_MASK) >> _CONTENT_SHIFT};"
            " it is ignored."
        )
    if not 1 <= k <= MAX_K:
        raise FrameRejected(
            f"A frame claims {k} blocks, outside the 1..{MAX_K} this tool accepts; it is ignored."
        )
    if message_length > MAX_MESSAGE_LENGTH or message_length < DIGEST_SIZE:
        raise FrameRejected(
            f"A frame claims a {message_length}-byte message, outside the "
            f"{DIGEST_SIZE}..{MAX_MESSAGE_LENGTH} this tool accepts; it is ignored."
        )
    if not (k - 1) * block < message_length <= k * block:
        raise FrameRejected(
            f"A frame's length {message_length} does not match {k} blocks of {block} bytes; "
            "it is ignored."
        )


# --- Decoder -----------------------------------------------------------------------------


class FrameStatus(Enum):
    """What one frame did to the decoder."""

    ACCEPTED = "accepted"
    """New information: the rank of its transfer grew."""
    DUPLICATE = "duplicate"
    """Intact and consistent, but nothing new (seen before, or a combination of known rows)."""
    FOREIGN = "foreign"
    """Not for us: another app's QR code, or the wrong kind of document."""
    CORRUPT = "corrupt"
    """Misread or damaged: bad Base45, truncated, or failed CRC."""
    REJECTED = "rejected"
    """Intact but refused: bounds, inconsistency with its transfer, or a failed transfer."""
    COMPLETE = "complete"
    """This frame completed a transfer; `Decoder.result()` now returns the document."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameResult:
    """The outcome of `Decoder.add`, with the operator sentence when the frame was not used."""

    status: FrameStatus
    reason: str = ""
    transfer_id: bytes | None = None
    seq: int | None = None
    rank: int = 0
    k: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Progress:
    """Decoder counters for a progress display: rank/K of the most recently active transfer."""

    rank: int
    k: int
    frames: int
    accepted: int
    duplicate: int
    foreign: int
    corrupt: int
    rejected: int
    transfers: int
    complete: bool

    @property
    def fraction(self) -> float:
        """rank/K, or 0 before any frame arrived."""
        return self.rank / self.k if self.k else 0.0


class _Transfer:
    """Elimination state of one transfer id."""

    def __init__(self, frame: Frame, counter: int) -> None:
        self.transfer_id = frame.transfer_id
        self.k = frame.k
        self.block_size = frame.block_size
        self.message_length = frame.message_length
        self.compression = frame.compression
        self.content_type = frame.content_type
        self.solver = Solver(frame.k)
        self.seen: set[int] = set()
        self.last_active = counter
        self.failure = ""

    @property
    def rank(self) -> int:
        return self.solver.rank

    def mismatch(self, frame: Frame) -> str:
        """A sentence if `frame` disagrees with this transfer's K, B, length or flags."""
        consistent = (
            frame.k == self.k
            and frame.block_size == self.block_size
            and frame.message_length == self.message_length
            and frame.compression is self.compression
            and frame.content_type is self.content_type
        )
        if consistent:
            return ""
        theirs = _flags(frame.compression, frame.content_type)
        mine = _flags(self.compression, self.content_type)
        return (
            f"A frame of transfer {self.transfer_id.hex()} (K={frame.k}, B={frame.block_size}, "
            f"length {frame.message_length}, flags {theirs:#04x}) disagrees with its earlier "
            f"frames (K={self.k}, B={self.block_size}, length {self.message_length}, flags "
            f"{mine:#04x}); it is ignored."
        )


class Decoder:
    """Incremental GF(2) decoder: feed frame texts in any order, get the document back.

    State is kept per transfer id (at most `max_transfers`, least recently active evicted),
    so frames of an old transfer still on screen never reset the one being read. Bad frames
    are counted and ignored; they never raise. The first transfer to complete wins.
    """

    def __init__(
        self,
        *,
        content_type: ContentType | None = None,
        max_document_size: int = DEFAULT_MAX_DOCUMENT,
        max_transfers: int = DEFAULT_MAX_TRANSFERS,
    ) -> None:
        """Accept only `content_type` when given; inflate at most `max_document_size` bytes."""
        if max_transfers < 1 or max_document_size < 0:
            raise UsageError("A QR decoder needs max_transfers >= 1 and a non-negative size cap.")
        self.content_type = content_type
        self.max_document_size: Final = max_document_size
        self.max_transfers: Final = max_transfers
        self._transfers: dict[bytes, _Transfer] = {}
        self._active: _Transfer | None = None
        self._counts = dict.fromkeys(FrameStatus, 0)
        self._frames = 0
        self._document: bytes | None = None
        self._done: _Transfer | None = None
        self._last_reason = ""
        self._failure = ""

    @property
    def complete(self) -> bool:
        """True once a document has been rebuilt and checked."""
        return self._document is not None

    @property
    def transfer_id(self) -> bytes | None:
        """Id of the completed transfer, else of the most recently active one."""
        transfer = self._done or self._active
        return transfer.transfer_id if transfer else None

    @property
    def result_content_type(self) -> ContentType | None:
        """Content type declared by the completed transfer."""
        return self._done.content_type if self._done else None

    @property
    def progress(self) -> Progress:
        """Counters and rank/K of the completed or most recently active transfer."""
        transfer = self._done or self._active
        counts = self._counts
        return Progress(
            rank=transfer.rank if transfer else 0,
            k=transfer.k if transfer else 0,
            frames=self._frames,
            accepted=counts[FrameStatus.ACCEPTED] + counts[FrameStatus.COMPLETE],
            duplicate=counts[FrameStatus.DUPLICATE],
            foreign=counts[FrameStatus.FOREIGN],
            corrupt=counts[FrameStatus.CORRUPT],
            rejected=counts[FrameStatus.REJECTED],
            transfers=len(self._transfers),
            complete=self.complete,
        )

    @property
    def failure(self) -> str:
        """The sentence of the last transfer that reached rank K and was refused, if any."""
        return self._failure

    def add(self, text: str) -> FrameResult:
        """Feed one frame text; never raises for bad input."""
        self._frames += 1
        result = self._add(text)
        self._counts[result.status] += 1
        if result.reason:
            self._last_reason = result.reason
        return result

    def add_all(self, texts: Iterable[str]) -> bool:
        """Feed many frames, stopping at completion; returns `complete`."""
        for text in texts:
            if self.add(text).status is FrameStatus.COMPLETE:
                break
        return self.complete

    def result(self) -> bytes:
        """The document, once complete; otherwise MalformedInput saying what is missing."""
        if self._document is None:
            raise MalformedInput(self.incomplete_reason())
        return self._document

    def incomplete_reason(self) -> str:
        """One sentence on why there is no document yet."""
        if self._failure:
            return self._failure
        active = self._active
        if active is not None:
            return (
                f"Only {active.rank} of {active.k} blocks were recovered from {self._frames} "
                "QR frames; scan more frames (show the animation longer or add more images)."
            )
        if self._last_reason:
            return self._last_reason
        return (
            "No ceremony QR frame was read; check that the codes are sharp, fully visible "
            "and well lit."
        )

    def _add(self, text: str) -> FrameResult:
        try:
            frame = parse_frame(text)
        except NotAFrame as error:
            return FrameResult(status=FrameStatus.FOREIGN, reason=error.message)
        except CorruptFrame as error:
            return FrameResult(status=FrameStatus.CORRUPT, reason=error.message)
        except FrameRejected as error:
            return FrameResult(status=FrameStatus.REJECTED, reason=error.message)
        if self.content_type is not None and frame.content_type is not self.content_type:
            return FrameResult(
                status=FrameStatus.FOREIGN,
                reason=(
                    f"These QR codes carry {frame.content_type.label}, but "
                    f"{self.content_type.label} is expected; show the right codes."
                ),
                transfer_id=frame.transfer_id,
                seq=frame.seq,
            )
        transfer = self._transfer_for(frame)
        return self._feed(transfer, frame)

    def _transfer_for(self, frame: Frame) -> _Transfer:
        transfer = self._transfers.get(frame.transfer_id)
        if transfer is None:
            if len(self._transfers) >= self.max_transfers:
                stalest = min(self._transfers.values(), key=lambda t: t.last_active)
                del self._transfers[stalest.transfer_id]
                if stalest is self._active:
                    self._active = None
            transfer = _Transfer(frame, self._frames)
            self._transfers[frame.transfer_id] = transfer
        return transfer

    def _feed(self, transfer: _Transfer, frame: Frame) -> FrameResult:
        mismatch = transfer.mismatch(frame)
        if mismatch:
            return _result(FrameStatus.REJECTED, transfer, frame, mismatch)
        if transfer.failure:
            return _result(FrameStatus.REJECTED, transfer, frame, transfer.failure)
        if frame.seq in transfer.seen or transfer.rank == transfer.k:
            return _result(FrameStatus.DUPLICATE, transfer, frame)
        if len(transfer.seen) < 4 * transfer.k + 1024:
            transfer.seen.add(frame.seq)
        coefficients = frame_coefficients(transfer.transfer_id, frame.seq, transfer.k)
        if not transfer.solver.insert(coefficients, int.from_bytes(frame.data, "big")):
            return _result(FrameStatus.DUPLICATE, transfer, frame)
        transfer.last_active = self._frames
        self._active = transfer
        if transfer.rank < transfer.k:
            return _result(FrameStatus.ACCEPTED, transfer, frame)
        try:
            document = self._rebuild(transfer)
        except MalformedInput as error:
            transfer.failure = error.message
            self._failure = error.message
            return _result(FrameStatus.REJECTED, transfer, frame, error.message)
        if self._document is None:
            self._document = document
            self._done = transfer
        return _result(FrameStatus.COMPLETE, transfer, frame)

    def _rebuild(self, transfer: _Transfer) -> bytes:
        message = transfer.solver.solve(transfer.block_size, transfer.message_length)
        digest, payload = message[:DIGEST_SIZE], message[DIGEST_SIZE:]
        if hashlib.sha256(payload).digest() != digest or digest[:4] != transfer.transfer_id:
            raise MalformedInput(
                f"Transfer {transfer.transfer_id.hex()} reassembled to data that fails its "
                "SHA-256 check; the frames were tampered with or mixed up, scan again."
            )
        if transfer.compression is Compression.NONE:
            if len(payload) > self.max_document_size:
                raise MalformedInput(self._too_large())
            return payload
        return inflate(payload, self.max_document_size)

    def _too_large(self) -> str:
        return (
            f"The transferred document is larger than the {self.max_document_size}-byte limit, "
            "so it was refused without being expanded."
        )


def _result(
    status: FrameStatus, transfer: _Transfer, frame: Frame, reason: str = ""
) -> FrameResult:
    return FrameResult(
        status=status,
        reason=reason,
        transfer_id=transfer.transfer_id,
        seq=frame.seq,
        rank=transfer.rank,
        k=transfer.k,
    )


def inflate(payload: bytes, max_size: int) -> bytes:
    """Decompress a zlib stream, refusing (MalformedInput) anything over `max_size` bytes.

    Output is capped by `max_length`, so a zlib bomb costs at most `max_size` + 1 bytes.
    """
    inflater = zlib.decompressobj()
    try:
        document = inflater.decompress(payload, max_size + 1)
    except zlib.error:
        raise MalformedInput(
            "The transferred payload is not valid zlib data; it was refused."
        ) from None
    if len(document) > max_size or inflater.unconsumed_tail:
        raise MalformedInput(
            f"The transferred document expands beyond the {max_size}-byte limit (a "
            "decompression bomb?), so it was refused without being expanded."
        )
    if not inflater.eof or inflater.unused_data:
        raise MalformedInput(
            "The transferred payload is not exactly one complete zlib stream; it was refused."
        )
    return document


def decode_frames(
    texts: Iterable[str],
    *,
    content_type: ContentType | None = None,
    max_document_size: int = DEFAULT_MAX_DOCUMENT,
) -> bytes:
    """Decode a finite collection of frame texts, or raise MalformedInput with one sentence."""
    decoder = Decoder(content_type=content_type, max_document_size=max_document_size)
    decoder.add_all(texts)
    return decoder.result()
