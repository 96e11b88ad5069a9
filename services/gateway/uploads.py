"""What the gateway keeps of an upload: a clean sRGB JPEG, whatever was sent.

Decoding and the byte and pixel limits are :func:`services.common.images.decode_image`
(JPEG, PNG and WebP by content; decompression bombs refused from the header). Here the
accepted pixels are re-encoded as a fresh JPEG, which strips every piece of metadata
(EXIF with its GPS position, ICC, comments, XMP), and hashed.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import Protocol

from PIL import Image

from services.common.images import decode_image


class _Readable(Protocol):
    async def read(self, size: int = -1) -> bytes: ...


async def read_limited(upload: _Readable, max_bytes: int) -> bytes:
    """Read at most one byte over ``max_bytes``, so huge uploads are refused cheaply."""
    return await upload.read(max_bytes + 1)


@dataclass(frozen=True)
class NormalisedImage:
    data: bytes  # JPEG, sRGB, no metadata
    content_type: str
    width: int
    height: int
    sha256: str
    source_format: str


def normalise_upload(data: bytes, *, max_bytes: int, max_pixels: int) -> NormalisedImage:
    """Check an upload and return it as a clean sRGB JPEG.

    Raises:
        InvalidImage: empty, damaged or truncated.
        UnsupportedImageType: not JPEG, PNG or WebP (e.g. HTML named .jpg).
        ImageTooLarge: over the byte or pixel limit.
    """
    decoded = decode_image(data, max_bytes=max_bytes, max_pixels=max_pixels)
    clean = Image.new("RGB", decoded.image.size)  # a fresh image carries no metadata at all
    clean.paste(decoded.image)
    out = io.BytesIO()
    clean.save(out, format="JPEG", quality=95, optimize=True)
    encoded = out.getvalue()
    return NormalisedImage(
        data=encoded,
        content_type="image/jpeg",
        width=clean.width,
        height=clean.height,
        sha256=hashlib.sha256(encoded).hexdigest(),
        source_format=decoded.format,
    )
