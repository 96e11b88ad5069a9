"""Validation and normalisation of uploaded renders.

Accepts JPEG, PNG and WebP identified by their content (never by file name), with
limits on bytes and pixels (decompression bombs). The accepted image is decoded
completely (truncated files are rejected), EXIF orientation is applied, it is
converted to sRGB RGB and re-encoded, which also strips every piece of metadata.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from typing import Protocol

from PIL import Image, ImageCms, ImageOps

from services.gateway.errors import ImageTooLarge, InvalidImage, UnsupportedImageType


class _Readable(Protocol):
    async def read(self, size: int = -1) -> bytes: ...


async def read_limited(upload: _Readable, max_bytes: int) -> bytes:
    """Read at most one byte over ``max_bytes``, so huge uploads are refused cheaply."""
    return await upload.read(max_bytes + 1)


ACCEPTED_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


@dataclass(frozen=True)
class NormalisedImage:
    data: bytes  # JPEG, sRGB, no metadata
    content_type: str
    width: int
    height: int
    sha256: str
    source_format: str


def _to_srgb(image: Image.Image) -> Image.Image:
    icc = image.info.get("icc_profile")
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            target = ImageCms.createProfile("sRGB")
            mode = "RGBA" if image.mode in ("RGBA", "LA", "PA") else "RGB"
            converted = ImageCms.profileToProfile(image, source, target, outputMode=mode)
            if converted is not None:
                image = converted
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile: keep the pixels as they are (assume sRGB)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def normalise_upload(data: bytes, *, max_bytes: int, max_pixels: int) -> NormalisedImage:
    """Check an upload and return it as a clean sRGB JPEG.

    Raises:
        InvalidImage: empty, unreadable or truncated.
        UnsupportedImageType: readable but not JPEG/PNG/WebP (e.g. HTML named .jpg).
        ImageTooLarge: over the byte or pixel limit.
    """
    if not data:
        raise InvalidImage("El archivo está vacío. Elige una imagen JPEG, PNG o WebP.",
                           "The file is empty. Choose a JPEG, PNG or WebP image.")
    if len(data) > max_bytes:
        mb = max_bytes / (1024 * 1024)
        raise ImageTooLarge(
            f"La imagen pesa {len(data) / 1048576:.1f} MB; el máximo es {mb:.0f} MB.",
            f"The image is {len(data) / 1048576:.1f} MB; the maximum is {mb:.0f} MB.",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            probe = Image.open(io.BytesIO(data))
            fmt = probe.format or ""
            width, height = probe.size
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageTooLarge("La imagen tiene demasiados píxeles.",
                            "The image has too many pixels.") from exc
    except Exception as exc:  # Pillow raises several types for garbage input
        raise UnsupportedImageType(
            "El archivo no es una imagen válida. Sube un render en JPEG, PNG o WebP.",
            "The file is not a valid image. Upload a JPEG, PNG or WebP render.",
        ) from exc
    if fmt not in ACCEPTED_FORMATS:
        raise UnsupportedImageType(
            f"Formato {fmt or 'desconocido'} no admitido. Usa JPEG, PNG o WebP.",
            f"Format {fmt or 'unknown'} is not accepted. Use JPEG, PNG or WebP.",
        )
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"La imagen mide {width}×{height} píxeles; el máximo son "
            f"{max_pixels / 1e6:.0f} megapíxeles.",
            f"The image is {width}×{height} pixels; the maximum is {max_pixels / 1e6:.0f} MP.",
        )
    try:
        decoded = Image.open(io.BytesIO(data))
        decoded.load()
        rgb = _to_srgb(ImageOps.exif_transpose(decoded) or decoded)
    except Exception as exc:
        raise InvalidImage(
            "La imagen está dañada o incompleta. Vuelve a exportarla y súbela de nuevo.",
            "The image is damaged or incomplete. Export it again and re-upload it.",
        ) from exc
    clean = Image.new("RGB", rgb.size)  # a fresh image carries no EXIF, ICC, comments or XMP
    clean.paste(rgb)
    out = io.BytesIO()
    clean.save(out, format="JPEG", quality=95, optimize=True)
    encoded = out.getvalue()
    return NormalisedImage(
        data=encoded,
        content_type="image/jpeg",
        width=clean.width,
        height=clean.height,
        sha256=hashlib.sha256(encoded).hexdigest(),
        source_format=fmt,
    )
