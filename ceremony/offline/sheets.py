"""Share sheets: one printable page per SLIP-39 share, as plain text and as PDF.

A sheet holds the share's words (numbered) and the share as a QR code, and
everything public a restore needs to give the key back its identity: the key id
and fingerprint, the role, the GUN(s) it serves with each root certificate, the
set, "share k of N, M needed" and the date. The text form is also what `ceremony key
restore --share-file` reads back, so it is written to be parsed as well as read.

The PDF is drawn with Pillow, a raster page per A4 sheet at 300 dpi, encoded with
CCITT G4 (lossless). Not fpdf2: it imports `http.client`, `ssl` and `urllib.request`
when loaded, and the offline half never loads a networking module (tests/test_airgap.py;
the same reason QR codes are drawn with qrcode rather than segno).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from PIL import Image, ImageDraw, ImageFont

from ceremony.core.errors import MalformedInput
from ceremony.core.gun import check_gun
from ceremony.core.keys import canonical_key_id
from ceremony.core.metadata import Key, b64encode
from ceremony.qr.render import matrix_image

SHEET_FORMAT: Final = "notary-ceremony-share-sheet 1"
_LABEL_WIDTH: Final = 13
_HEX64 = re.compile(r"[0-9a-f]{64}")
_WORD = re.compile(r"(\d+)\s+([a-z]+)")
_CERT_HEADING = re.compile(r"root certificate for (\S+), key id ([0-9a-f]{64}):")


@dataclass(frozen=True, slots=True)
class KeyFacts:
    """Everything public about a backed-up key: the same on every sheet of a set."""

    canonical_id: str
    fingerprint: str
    role: str
    algorithm: str  # "ecdsa" (P-256) or "ed25519"
    guns: Mapping[str, Key | None] = field(default_factory=dict)  # GUN -> root certificate


@dataclass(frozen=True, slots=True)
class ShareSheet:
    """One share of a key, with what is printed around it."""

    key: KeyFacts
    words: tuple[str, ...]
    index: int  # 1-based
    count: int
    threshold: int
    set_id: int
    protected: bool  # the shares need the share passphrase too
    date: str  # YYYY-MM-DD, from the command's clock

    @property
    def mnemonic(self) -> str:
        return " ".join(self.words)

    @property
    def title(self) -> str:
        return (
            f"SECRET: notary-ceremony key backup, share {self.index} of {self.count} "
            f"({self.threshold} needed)"
        )

    def file_stem(self) -> str:
        return f"key-{self.key.canonical_id[:12]}-share-{self.index}-of-{self.count}"


def _row(label: str, value: str) -> str:
    return f"{label:<{_LABEL_WIDTH}}{value}"


def _header_rows(sheet: ShareSheet) -> list[str]:
    facts = sheet.key
    rows = [
        _row("format", SHEET_FORMAT),
        _row("share", f"{sheet.index} of {sheet.count}, {sheet.threshold} needed"),
        _row("set", str(sheet.set_id)),
        _row("key id", facts.canonical_id),
        _row("fingerprint", facts.fingerprint),
        _row("role", facts.role),
        _row("algorithm", facts.algorithm),
        _row(
            "passphrase",
            "yes (the shares also need the share passphrase)" if sheet.protected else "no",
        ),
        _row("date", sheet.date),
    ]
    rows += [_row("gun", gun) for gun in sorted(facts.guns)]
    return rows


def _warning(sheet: ShareSheet) -> list[str]:
    return [
        f"This sheet is one share of a private key: any {sheet.threshold} of the "
        f"{sheet.count} sheets rebuild it.",
        "Keep it where only its keyholder can reach it; never type it on a connected machine.",
    ]


def _word_columns(words: Sequence[str], columns: int = 3) -> list[list[tuple[int, str]]]:
    rows = -(-len(words) // columns)
    numbered = list(enumerate(words, 1))
    return [numbered[c * rows : (c + 1) * rows] for c in range(columns)]


def _certificates(facts: KeyFacts) -> Iterator[tuple[str, Key]]:
    for gun in sorted(facts.guns):
        certificate = facts.guns[gun]
        if certificate is not None:
            yield gun, certificate


def _restore_hint(sheet: ShareSheet) -> str:
    return (
        "Restore on the offline machine: ceremony key restore --share-file THIS-FILE.txt "
        f"... (or type the words), with {sheet.threshold} sheets of this set."
    )


def sheet_text(sheet: ShareSheet) -> str:
    """The plain-text sheet: readable, printable, and read back by `key restore`."""
    lines = [sheet.title, "", *_warning(sheet), "", *_header_rows(sheet), ""]
    lines.append(f"share words ({len(sheet.words)}, read down each column)")
    columns = _word_columns(sheet.words)
    for r in range(len(columns[0])):
        cells = [f"{n:>4} {w:<10}" for col in columns if r < len(col) for n, w in [col[r]]]
        lines.append("  ".join(cells).rstrip())
    for gun, certificate in _certificates(sheet.key):
        lines += ["", f"root certificate for {gun}, key id {certificate.key_id}:"]
        lines += certificate.public_bytes.decode("ascii").rstrip("\n").split("\n")
    lines += ["", _restore_hint(sheet), ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# reading a text sheet back


def parse_sheet(text: str, where: str) -> ShareSheet:
    """A text sheet read back; MalformedInput naming `where` if it is not one, or damaged."""
    lines = text.replace("\r\n", "\n").split("\n")
    fields: dict[str, list[str]] = {}
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("format "))
    except StopIteration:
        raise MalformedInput(f"{where} is not a share sheet (it has no format line).") from None
    i = start
    while i < len(lines) and lines[i].strip():
        label, value = lines[i][:_LABEL_WIDTH].strip(), lines[i][_LABEL_WIDTH:].strip()
        fields.setdefault(label, []).append(value)
        i += 1

    def one(label: str) -> str:
        values = fields.get(label, [])
        if len(values) != 1:
            raise MalformedInput(f"{where} is damaged: its {label!r} line is missing or repeated.")
        return values[0]

    if one("format") != SHEET_FORMAT:
        raise MalformedInput(
            f"{where} is a share sheet of a format this version of the tool does not know."
        )
    share = re.fullmatch(r"(\d+) of (\d+), (\d+) needed", one("share"))
    cid, fingerprint = one("key id"), one("fingerprint")
    if share is None or not one("set").isdigit():
        raise MalformedInput(f"{where} is damaged: its share or set line cannot be read.")
    if not _HEX64.fullmatch(cid) or not _HEX64.fullmatch(fingerprint):
        raise MalformedInput(f"{where} is damaged: its key id or fingerprint is not 64 hex digits.")

    words_at = next((j for j in range(i, len(lines)) if lines[j].startswith("share words")), None)
    if words_at is None:
        raise MalformedInput(f"{where} is damaged: it has no share words.")
    numbered: dict[int, str] = {}
    j = words_at + 1
    while j < len(lines) and lines[j].strip():
        for number, word in _WORD.findall(lines[j]):
            numbered[int(number)] = word
        j += 1
    if sorted(numbered) != list(range(1, len(numbered) + 1)):
        raise MalformedInput(f"{where} is damaged: its share words are not numbered 1 to N.")

    guns: dict[str, Key | None] = dict.fromkeys(fields.get("gun", []))
    while j < len(lines):
        heading = _CERT_HEADING.fullmatch(lines[j].strip())
        j += 1
        if heading is None:
            continue
        gun, cert_id = heading.groups()
        pem: list[str] = []
        while j < len(lines) and lines[j].strip():
            pem.append(lines[j].strip())
            j += 1
        certificate = _certificate(gun, cert_id, pem, cid, where)
        if gun not in guns:
            raise MalformedInput(
                f"{where} is damaged: it has a certificate for a GUN it does not list."
            )
        guns[gun] = certificate

    if one("algorithm") not in ("ecdsa", "ed25519"):
        raise MalformedInput(f"{where} names an algorithm shares cannot hold.")
    for gun in guns:
        check_gun(gun, where)
    facts = KeyFacts(cid, fingerprint, one("role"), one("algorithm"), guns)
    return ShareSheet(
        facts,
        tuple(numbered[n] for n in sorted(numbered)),
        int(share.group(1)),
        int(share.group(2)),
        int(share.group(3)),
        int(one("set")),
        one("passphrase").startswith("yes"),
        one("date"),
    )


def _certificate(gun: str, cert_id: str, pem: list[str], cid: str, where: str) -> Key:
    """The root certificate as it was listed in metadata: the exact PEM bytes (its key id
    covers them), checked against the key id printed with it and the key's own id."""
    data = ("\n".join(pem) + "\n").encode("ascii", "replace")
    for keytype in ("ecdsa-x509", "rsa-x509"):
        key = Key(keytype, b64encode(data))
        if key.key_id == cert_id:
            try:
                same_key = canonical_key_id(key) == cid
            except MalformedInput:
                same_key = False
            if not same_key:
                raise MalformedInput(
                    f"{where} is damaged: its certificate for {gun} is not for the key it names."
                )
            return key
    raise MalformedInput(
        f"{where} is damaged: its certificate for {gun} does not match the key id printed "
        "above it (was the PEM text changed?)."
    )


# ---------------------------------------------------------------------------
# PDF

_DPI: Final = 300
_PAGE: Final = (2480, 3508)  # A4 at 300 dpi
_MARGIN: Final = 180
_QR_SCALE: Final = 9


def share_qr(sheet: ShareSheet) -> Image.Image:
    """The share's words as one QR code (byte mode, error correction M, quiet zone 4)."""
    import qrcode
    import qrcode.constants

    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=0)
    code.add_data(sheet.mnemonic.encode("ascii"))
    code.make(fit=True)
    matrix = [bytes(1 if cell else 0 for cell in row) for row in code.get_matrix()]
    return matrix_image(matrix, scale=_QR_SCALE)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


class _Pages:
    """A cursor over A4 pages: text lines flow on to a new page when one is full."""

    def __init__(self, footer: str) -> None:
        self.footer = footer
        self.pages: list[Image.Image] = []
        self.y = 0
        self._new_page()

    def _new_page(self) -> None:
        self.pages.append(Image.new("1", _PAGE, 1))
        self.draw = ImageDraw.Draw(self.pages[-1])
        self.y = _MARGIN

    def need(self, height: int) -> None:
        if self.y + height > _PAGE[1] - _MARGIN - 80:
            self._new_page()

    def text(self, line: str, size: int, *, gap: int = 12, x: int = _MARGIN) -> None:
        self.need(size + gap)
        self.draw.text((x, self.y), line, font=_font(size), fill=0)
        self.y += size + gap

    def finish(self) -> list[Image.Image]:
        small = _font(30)
        for number, page in enumerate(self.pages, 1):
            text = f"{self.footer}  (page {number} of {len(self.pages)})"
            ImageDraw.Draw(page).text((_MARGIN, _PAGE[1] - _MARGIN), text, font=small, fill=0)
        return self.pages


def sheet_pages(sheet: ShareSheet) -> list[Image.Image]:
    """The sheet drawn as A4 pages (1-bit, 300 dpi): words and QR code first, then the rest."""
    pages = _Pages(
        f"{sheet.title.removeprefix('SECRET: ')}, key {sheet.key.canonical_id[:12]}, set "
        f"{sheet.set_id}"
    )
    pages.text(sheet.title, 64, gap=30)
    for line in _warning(sheet):
        pages.text(line, 40)
    pages.y += 30
    for row in _header_rows(sheet):
        label, value = row[:_LABEL_WIDTH].strip(), row[_LABEL_WIDTH:]
        pages.draw.text((_MARGIN, pages.y), label, font=_font(38), fill=0)
        pages.text(value, 38, x=_MARGIN + 330)
    pages.y += 40
    pages.text(f"share words ({len(sheet.words)}, read down each column)", 44, gap=24)

    qr = share_qr(sheet)
    columns = _word_columns(sheet.words)
    word_size, pitch = 52, 74
    words_height = len(columns[0]) * pitch
    pages.need(max(words_height, qr.height + 60))
    top = pages.y
    for c, column in enumerate(columns):
        for r, (number, word) in enumerate(column):
            x, y = _MARGIN + c * 480, top + r * pitch
            pages.draw.text((x, y), f"{number:>2}", font=_font(word_size - 12), fill=0)
            pages.draw.text((x + 80, y - 6), word, font=_font(word_size), fill=0)
    qr_x = _PAGE[0] - _MARGIN - qr.width
    pages.pages[-1].paste(qr, (qr_x, top))
    pages.draw.text(
        (qr_x, top + qr.height + 10), "the same share, as a QR code", font=_font(30), fill=0
    )
    pages.y = top + max(words_height, qr.height + 60) + 40

    for gun, certificate in _certificates(sheet.key):
        pages.y += 20
        pages.text(f"root certificate for {gun}, key id {certificate.key_id}:", 32)
        for pem_line in certificate.public_bytes.decode("ascii").rstrip("\n").split("\n"):
            pages.text(pem_line, 30, gap=6)
    pages.y += 30
    pages.text(_restore_hint(sheet), 32)
    return pages.finish()


def sheet_pdf(sheet: ShareSheet) -> bytes:
    """The sheet as a PDF (lossless 1-bit pages)."""
    first, *rest = sheet_pages(sheet)
    out = io.BytesIO()
    first.save(
        out,
        "PDF",
        resolution=_DPI,
        save_all=True,
        append_images=rest,
        title=sheet.title,
        author="notary-ceremony",
    )
    return out.getvalue()
