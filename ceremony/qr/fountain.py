"""The fountain code's mathematics: which blocks a frame carries, and GF(2) elimination.

Pure integers and bytes (spec: docs/qr-format.md, sections 3.4 and 5). A frame's
coefficients are a bit set over the K source blocks: a source frame has the single bit
`seq`, a repair frame the bits a SHA-256 stream selects. `Solver` reduces each row
against the pivots it keeps (at most K XORs per row) and, at rank K, back-substitutes
the blocks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

_SHA256_SIZE = 32


def repair_coefficients(transfer_id: bytes, seq: int, k: int) -> int:
    """Which blocks repair frame `seq` XORs, as an int whose bit i selects block i.

    The bit stream is SHA-256(tid || seq || ctr) for ctr = 0, 1, ... (seq and ctr as
    4-byte big-endian), concatenated; block i is bit (i mod 8), least significant first,
    of stream byte i // 8. If no bit is set, block (seq mod K) is used alone.
    """
    byte_count = (k + 7) // 8
    prefix = transfer_id + seq.to_bytes(4, "big")
    chunks = [
        hashlib.sha256(prefix + counter.to_bytes(4, "big")).digest()
        for counter in range(-(-byte_count // _SHA256_SIZE))
    ]
    coefficients = int.from_bytes(b"".join(chunks)[:byte_count], "little") & ((1 << k) - 1)
    return coefficients or 1 << (seq % k)


def frame_coefficients(transfer_id: bytes, seq: int, k: int) -> int:
    """Blocks carried by frame `seq`: block seq itself for a source frame, else a repair mix."""
    return 1 << seq if seq < k else repair_coefficients(transfer_id, seq, k)


def set_bits(value: int) -> Iterable[int]:
    while value:
        lowest = value & -value
        yield lowest.bit_length() - 1
        value ^= lowest


# --- Encoder -----------------------------------------------------------------------------


class Solver:
    """Incremental GF(2) elimination over K blocks held as integers."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.pivots: dict[int, tuple[int, int]] = {}
        """Rows (coefficients, data) keyed by their highest set coefficient bit."""

    @property
    def rank(self) -> int:
        return len(self.pivots)

    def insert(self, coefficients: int, data: int) -> bool:
        """Reduce a row against the pivots (at most K XORs); keep it if anything is left."""
        while coefficients:
            lead = coefficients.bit_length() - 1
            pivot = self.pivots.get(lead)
            if pivot is None:
                self.pivots[lead] = (coefficients, data)
                return True
            coefficients ^= pivot[0]
            data ^= pivot[1]
        return False

    def solve(self, block_size: int, message_length: int) -> bytes:
        """Back-substitute (rank K) in ascending pivot order and join the blocks."""
        solved: list[int] = []
        for lead in range(self.k):
            coefficients, data = self.pivots[lead]
            for index in set_bits(coefficients ^ (1 << lead)):
                data ^= solved[index]
            solved.append(data)
        joined = b"".join(block.to_bytes(block_size, "big") for block in solved)
        return joined[:message_length]
