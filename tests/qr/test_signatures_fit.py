"""A signatures document always goes back as ONE QR code, even the largest realistic one.

The largest is a root rotation with several keys: the new root signed by every new
and every old root key, plus targets re-signed by several targets keys (all P-256,
the only key type Notary and this toolkit generate).
"""

from __future__ import annotations

import hashlib
import secrets

import pytest

from ceremony.core.documents import RoleSignatures, SignaturesDocument
from ceremony.qr.capacity import plan, preset_named
from ceremony.qr.frames import ContentType, Decoder
from ceremony.qr.render import frame_image
from ceremony.qr.scan import Backend, decode_image
from ceremony.signing.private import PrivateKey, sign


def rotation_signatures(old_root: int, new_root: int, targets: int) -> bytes:
    root_bytes, targets_bytes = secrets.token_bytes(900), secrets.token_bytes(400)
    root_sigs = []
    for _ in range(old_root + new_root):
        key = PrivateKey.generate_ecdsa()
        root_sigs.append(sign(key, key.public_key(), root_bytes))
    targets_sigs = []
    for _ in range(targets):
        key = PrivateKey.generate_ecdsa()
        targets_sigs.append(sign(key, key.public_key(), targets_bytes))
    doc = SignaturesDocument(
        secrets.token_hex(16),
        secrets.token_hex(32),
        "registry.example.com/platform/base-images",
        (
            RoleSignatures("root", hashlib.sha256(root_bytes).hexdigest(), tuple(root_sigs)),
            RoleSignatures(
                "targets", hashlib.sha256(targets_bytes).hexdigest(), tuple(targets_sigs)
            ),
        ),
    )
    return doc.to_bytes()


@pytest.mark.parametrize("preset", ["robust", "default", "fast", "fast40"])
def test_root_rotation_with_several_keys_is_one_code(preset: str) -> None:
    document = rotation_signatures(old_root=4, new_root=4, targets=4)
    transfer = plan(
        document, preset_named(preset), content_type=ContentType.SIGNATURES, single=True
    )
    assert transfer.is_static and transfer.version <= 40
    image = frame_image(transfer.encoder.frame(0), version=transfer.version, error=transfer.error)
    decoder = Decoder(content_type=ContentType.SIGNATURES)
    for text in decode_image(image, backend=Backend.PYZBAR):
        decoder.add(text)
    assert decoder.complete and decoder.result() == document


def test_a_typical_signatures_document_is_a_small_code() -> None:
    document = rotation_signatures(old_root=1, new_root=0, targets=1)
    transfer = plan(
        document, preset_named("default"), content_type=ContentType.SIGNATURES, single=True
    )
    assert transfer.is_static and transfer.version <= 20


def test_more_signatures_than_level_m_holds_fall_back_to_level_l() -> None:
    document = rotation_signatures(old_root=7, new_root=7, targets=7)  # 21 signatures
    transfer = plan(
        document, preset_named("default"), content_type=ContentType.SIGNATURES, single=True
    )
    assert transfer.is_static and transfer.error == "L"
    image = frame_image(transfer.encoder.frame(0), version=transfer.version, error=transfer.error)
    assert decode_image(image, backend=Backend.ZXING) == [transfer.encoder.frame(0)]
