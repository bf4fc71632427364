"""An image's width and height from the first bytes of its file (PNG, GIF, WebP, JPEG), without an imaging
library and without decoding the whole payload: a client's base64 image may be several MB, and the size is in
its header (a JPEG's may follow its EXIF block, hence a prefix of `PREFIX_BYTES`). Used by the token counter
(shared/token_count.py), whose image cost depends on the size; None when the header is not one of these."""

import base64
import binascii
import struct

__all__ = ["PREFIX_BYTES", "image_size", "image_size_of_base64"]

PREFIX_BYTES = 96 * 1024
JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})


def image_size_of_base64(data: str) -> tuple[int, int] | None:
    """(width, height) of a base64 image, reading only its first PREFIX_BYTES."""
    head = data[: PREFIX_BYTES * 4 // 3].strip()
    head = head[: len(head) - len(head) % 4]
    try:
        raw = base64.b64decode(head)
    except (binascii.Error, ValueError):
        return None
    return image_size(raw)


def image_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) from the file's first bytes, or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR" and len(head) >= 24:
        return _positive(struct.unpack(">II", head[16:24]))
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        return _positive(struct.unpack("<HH", head[6:10]))
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _webp_size(head)
    if head[:2] == b"\xff\xd8":
        return _jpeg_size(head)
    return None


def _webp_size(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8X" and len(head) >= 30:
        return _positive((1 + int.from_bytes(head[24:27], "little"), 1 + int.from_bytes(head[27:30], "little")))
    if chunk == b"VP8L" and len(head) >= 25:
        bits = int.from_bytes(head[21:25], "little")
        return _positive((1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)))
    if chunk == b"VP8 " and len(head) >= 30:
        width, height = struct.unpack("<HH", head[26:30])
        return _positive((width & 0x3FFF, height & 0x3FFF))
    return None


def _jpeg_size(head: bytes) -> tuple[int, int] | None:
    """Walk the segments to the first start-of-frame marker, which holds height then width."""
    offset = 2
    while offset + 4 <= len(head):
        if head[offset] != 0xFF:
            return None
        marker = head[offset + 1]
        if marker == 0xFF:  # fill byte before a marker
            offset += 1
            continue
        if marker in JPEG_STANDALONE:
            offset += 2
            continue
        length = int.from_bytes(head[offset + 2:offset + 4], "big")
        if marker in JPEG_SOF and offset + 9 <= len(head):
            height, width = struct.unpack(">HH", head[offset + 5:offset + 9])
            return _positive((width, height))
        offset += 2 + length
    return None


def _positive(size: tuple[int, int]) -> tuple[int, int] | None:
    return size if size[0] > 0 and size[1] > 0 else None
