"""How much a QR code holds, the presets, and the plan for sending one document.

QR alphanumeric capacities per version and error-correction level (ISO/IEC 18004,
one segment; checked against segno in the tests), Base45 sizing, the presets of
docs/qr-format.md section 7, and `plan`, which picks the block size and QR version
for a document.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from ceremony.core.errors import UsageError
from ceremony.qr.frames import (
    DIGEST_SIZE,
    EXPORT_MIN_EXTRA,
    FRAME_OVERHEAD,
    PREFIX,
    Compression,
    ContentType,
    Encoder,
    make_payload,
)

# --- QR capacity -------------------------------------------------------------------------

# Characters of QR alphanumeric mode per version 1..40 (ISO/IEC 18004 Table 7), one
# segment. Cross-checked against segno by tests/qr/test_capacity.py.
_ALPHANUMERIC_CAPACITY: Final[Mapping[str, tuple[int, ...]]] = MappingProxyType(
    {
        "L": (
            25, 47, 77, 114, 154, 195, 224, 279, 335, 395,
            468, 535, 619, 667, 758, 854, 938, 1046, 1153, 1249,
            1352, 1460, 1588, 1704, 1853, 1990, 2132, 2223, 2369, 2520,
            2677, 2840, 3009, 3183, 3351, 3537, 3729, 3927, 4087, 4296,
        ),
        "M": (
            20, 38, 61, 90, 122, 154, 178, 221, 262, 311,
            366, 419, 483, 528, 600, 656, 734, 816, 909, 970,
            1035, 1134, 1248, 1326, 1451, 1542, 1637, 1732, 1839, 1994,
            2113, 2238, 2369, 2506, 2632, 2780, 2894, 3054, 3220, 3391,
        ),
        "Q": (
            16, 29, 47, 67, 87, 108, 125, 157, 189, 221,
            259, 296, 352, 376, 426, 470, 531, 574, 644, 702,
            742, 823, 890, 963, 1041, 1094, 1172, 1263, 1322, 1429,
            1499, 1618, 1700, 1787, 1867, 1966, 2071, 2181, 2298, 2420,
        ),
        "H": (
            10, 20, 35, 50, 64, 84, 93, 122, 143, 174,
            200, 227, 259, 283, 321, 365, 408, 452, 493, 557,
            587, 640, 672, 744, 779, 864, 910, 958, 1016, 1080,
            1150, 1226, 1307, 1394, 1431, 1530, 1591, 1658, 1774, 1852,
        ),
    }
)  # fmt: skip


def alphanumeric_capacity(version: int, error: str) -> int:
    """Alphanumeric characters a QR code of `version` (1-40) and EC level holds."""
    table = _ALPHANUMERIC_CAPACITY.get(error.upper())
    if table is None or not 1 <= version <= 40:
        raise UsageError(f"QR version {version} with error level {error!r} does not exist.")
    return table[version - 1]


def base45_length(byte_count: int) -> int:
    """Characters Base45 (RFC 9285) needs for `byte_count` bytes: 3 per pair, 2 for an odd one."""
    return 3 * (byte_count // 2) + 2 * (byte_count % 2)


def base45_max_bytes(char_count: int) -> int:
    """Most bytes whose Base45 text fits in `char_count` characters."""
    return 2 * (char_count // 3) + (1 if char_count % 3 == 2 else 0)


def frame_text_length(block_size: int) -> int:
    """Characters of a frame's text for block size B (prefix included)."""
    return len(PREFIX) + base45_length(FRAME_OVERHEAD + block_size)


def max_block_size(capacity_chars: int) -> int:
    """Largest B whose frame text fits a QR code of `capacity_chars` alphanumeric characters."""
    return base45_max_bytes(capacity_chars - len(PREFIX)) - FRAME_OVERHEAD


def smallest_version(text_length: int, error: str) -> int:
    """Smallest QR version at EC level `error` holding `text_length` alphanumeric characters."""
    for version in range(1, 41):
        if alphanumeric_capacity(version, error) >= text_length:
            return version
    raise UsageError(
        f"{text_length} characters do not fit any QR code at error level {error}; "
        "use a larger preset or a file transfer."
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Preset:
    """A QR version and EC level used for every frame of an animated transfer."""

    name: str
    version: int
    error: str
    note: str
    fps: int = 5  # frames per second the GIF, HTML player and terminal play at

    @property
    def capacity(self) -> int:
        """Alphanumeric characters per code."""
        return alphanumeric_capacity(self.version, self.error)

    @property
    def block_size(self) -> int:
        """Message bytes per frame after prefix, Base45, header and CRC."""
        return max_block_size(self.capacity)


PRESETS: Final[Mapping[str, Preset]] = MappingProxyType(
    {
        "robust": Preset(name="robust", version=20, error="M", note="small codes for weak cameras"),
        "default": Preset(
            name="default", version=25, error="M", note="3 camera px/module at 375 px"
        ),
        "fast": Preset(name="fast", version=30, error="L", note="steady 1080p capture", fps=10),
        "fast40": Preset(
            name="fast40", version=40, error="L", note="largest code; tripod and 1080p+", fps=10
        ),
    }
)
DEFAULT_PRESET: Final = PRESETS["default"]


def preset_named(name: str) -> Preset:
    """Look a preset up by name, with a usage sentence for a typo."""
    preset = PRESETS.get(name)
    if preset is None:
        names = ", ".join(PRESETS)
        raise UsageError(f"Unknown QR preset {name!r}; choose one of {names}.")
    return preset


# --- Fountain coefficients ---------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferPlan:
    """How one document is shown: its encoder, the QR version and level, how many frames."""

    encoder: Encoder
    version: int
    error: str
    preset: Preset

    @property
    def k(self) -> int:
        """Source blocks; frames needed with no loss."""
        return self.encoder.k

    @property
    def is_static(self) -> bool:
        """True when one code carries the whole document."""
        return self.encoder.k == 1

    @property
    def export_count(self) -> int:
        """Frames for a folder, GIF or HTML loop: K + max(ceil(K/2), 12), or 1 if static.

        Enough for 20 % loss: ceil(K/2) extra frames leave 0.2K spare rows for large K,
        and the floor of 12 keeps about 8 spare rows (failure odds ~2^-8) for small K.
        """
        return 1 if self.is_static else self.k + max(-(-self.k // 2), EXPORT_MIN_EXTRA)

    def texts(self, count: int | None = None) -> list[str]:
        """Frame texts 0..count-1 (default: `export_count`)."""
        return self.encoder.frames(self.export_count if count is None else count)


def plan(
    document: bytes,
    preset: Preset = DEFAULT_PRESET,
    *,
    content_type: ContentType = ContentType.OTHER,
    compression: Compression = Compression.ZLIB,
    single: bool = False,
) -> TransferPlan:
    """Choose block size and QR version for `document` under `preset`.

    A message that fits one frame becomes a single code at the smallest version holding it
    (at the preset's EC level). Otherwise every frame uses the preset's version, and B is
    spread evenly, ceil(len/K), so the last block carries little padding.

    With `single` the document must travel as ONE static code (a signatures document
    going back over the air gap): the code grows up to version 40 at the preset's EC
    level, and a document too large even for that is refused with one sentence.
    """
    payload = make_payload(document, compression)
    message_length = DIGEST_SIZE + len(payload)
    if single:
        version, error = _single_code(frame_text_length(message_length), preset.error)
        encoder = Encoder.from_payload(
            payload, block_size=message_length, content_type=content_type, compression=compression
        )
        return TransferPlan(encoder=encoder, version=version, error=error, preset=preset)
    k = -(-message_length // preset.block_size)
    block_size = -(-message_length // k)
    if k == 1:
        version = smallest_version(frame_text_length(block_size), preset.error)
    else:
        version = preset.version
    encoder = Encoder.from_payload(
        payload, block_size=block_size, content_type=content_type, compression=compression
    )
    return TransferPlan(encoder=encoder, version=version, error=preset.error, preset=preset)


def _single_code(text_length: int, error: str) -> tuple[int, str]:
    """Smallest version at `error`, else at the next lower EC levels (a static code is filmed at leisure)."""
    levels = "HQML"
    for level in levels[levels.index(error) :]:
        for version in range(1, 41):
            if alphanumeric_capacity(version, level) >= text_length:
                return version, level
    raise UsageError(
        f"The document needs {text_length} QR characters, more than one QR code holds; "
        "carry it as a file instead."
    )


# --- Parsing -----------------------------------------------------------------------------
