"""QR transport: documents as animated Base45 QR frames with a fountain code.

`frames` is the pure codec (spec: docs/qr-format.md), over `fountain` (which blocks a frame
carries; GF(2) elimination); `capacity` holds the QR capacity tables, the presets and the
plan for a document; `render` draws codes (PNG folder, GIF, HTML player, terminal); `scan`
reads images, videos and a webcam into a `Decoder`; `progress` draws a rich progress bar
from the scan callback; `transfer` is what both CLIs call.

Only the pure codec is imported here, so `import ceremony.qr` pulls in no imaging library;
import `ceremony.qr.render`, `ceremony.qr.scan` and `ceremony.qr.progress` where needed.
"""

from ceremony.qr.capacity import DEFAULT_PRESET, PRESETS, Preset, TransferPlan, plan, preset_named
from ceremony.qr.frames import (
    PREFIX,
    Compression,
    ContentType,
    CorruptFrame,
    Decoder,
    Encoder,
    Frame,
    FrameRejected,
    FrameResult,
    FrameStatus,
    NotAFrame,
    Progress,
    decode_frames,
    parse_frame,
)

__all__ = [
    "DEFAULT_PRESET",
    "PREFIX",
    "PRESETS",
    "Compression",
    "ContentType",
    "CorruptFrame",
    "Decoder",
    "Encoder",
    "Frame",
    "FrameRejected",
    "FrameResult",
    "FrameStatus",
    "NotAFrame",
    "Preset",
    "Progress",
    "TransferPlan",
    "decode_frames",
    "parse_frame",
    "plan",
    "preset_named",
]
