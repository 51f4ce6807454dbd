"""QR transport: documents as animated Base45 QR frames with a fountain code.

`frames` is the pure codec (spec: docs/qr-format.md); `render` draws codes (PNG folder,
GIF, HTML player, terminal); `scan` reads images, videos and a webcam into a `Decoder`;
`progress` draws a rich progress bar from the scan callback.

Only the pure codec is imported here, so `import ceremony.qr` pulls in no imaging library;
import `ceremony.qr.render`, `ceremony.qr.scan` and `ceremony.qr.progress` where needed.
"""

from ceremony.qr.frames import (
    DEFAULT_PRESET,
    PREFIX,
    PRESETS,
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
    Preset,
    Progress,
    TransferPlan,
    decode_frames,
    parse_frame,
    plan,
    preset_named,
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
