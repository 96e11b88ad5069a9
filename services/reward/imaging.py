"""Decoding uploads: which bytes count as an image, and how they become RGB pixels.

An upload is accepted when it is non-empty, at most ``max_bytes`` long, recognised by
Pillow, at most ``max_pixels`` in area (checked from the header, before the pixels
are decoded) and decodes completely (a truncated file is refused, never padded).
EXIF orientation is applied so features describe the image as the trainer saw it;
transparent images are flattened onto white; everything else is converted to RGB.
Animated images contribute their first frame.

Every refusal is an :class:`~services.reward.errors.InvalidImage` (422) or
:class:`~services.reward.errors.ImageTooLarge` (413) with a Spanish and an English
sentence.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from services.reward.errors import ImageTooLarge, InvalidImage

_MB = 1024 * 1024


@dataclass(frozen=True)
class DecodedImage:
    """Pixels of an accepted upload: ``rgb`` is ``H×W×3 uint8`` after EXIF rotation."""

    rgb: np.ndarray
    format: str
    width: int
    height: int


def sha256_hex(data: bytes) -> str:
    """Content hash that identifies an upload (and keys the feature cache)."""
    return hashlib.sha256(data).hexdigest()


def check_size(data: bytes, max_bytes: int) -> None:
    """Refuse empty uploads and uploads over ``max_bytes``.

    Raises:
        InvalidImage: ``data`` is empty.
        ImageTooLarge: ``data`` is longer than ``max_bytes``.
    """
    if not data:
        raise InvalidImage(
            "La imagen está vacía (0 bytes). Sube un archivo PNG, JPEG o WebP.",
            "The image is empty (0 bytes). Upload a PNG, JPEG or WebP file.",
        )
    if len(data) > max_bytes:
        raise ImageTooLarge(
            f"La imagen ocupa más de {max_bytes / _MB:.1f} MB, el máximo permitido. "
            "Redúcela o comprímela y vuelve a subirla.",
            f"The image is larger than the {max_bytes / _MB:.1f} MB limit. "
            "Shrink or compress it and upload it again.",
            max_bytes=max_bytes,
        )


def decode_image(data: bytes, *, max_bytes: int, max_pixels: int) -> DecodedImage:
    """Decode ``data`` into RGB pixels, enforcing the byte and pixel limits.

    Raises:
        InvalidImage: empty, not an image, truncated or corrupt.
        ImageTooLarge: over ``max_bytes`` or ``max_pixels``.
    """
    check_size(data, max_bytes)
    try:
        with warnings.catch_warnings():
            # Our own pixel limit is stricter; Pillow's bomb warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                _check_pixels(width, height, max_pixels)
                fmt = image.format or "unknown"
                image.load()
                rgb = _to_rgb(ImageOps.exif_transpose(image))
    except Image.DecompressionBombError as exc:
        raise _too_many_pixels(max_pixels) from exc
    except UnidentifiedImageError as exc:
        raise InvalidImage(
            "El archivo no es una imagen reconocible. Sube un archivo PNG, JPEG o WebP.",
            "The file is not a recognisable image. Upload a PNG, JPEG or WebP file.",
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidImage(
            f"La imagen está dañada o incompleta y no se pudo leer ({exc}). "
            "Vuelve a exportarla y súbela de nuevo.",
            f"The image is damaged or incomplete and could not be read ({exc}). "
            "Export it again and re-upload it.",
        ) from exc
    array = np.asarray(rgb, dtype=np.uint8)
    return DecodedImage(array, fmt, array.shape[1], array.shape[0])


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width < 1 or height < 1:
        raise InvalidImage(
            f"La imagen no tiene píxeles ({width}×{height}).",
            f"The image has no pixels ({width}x{height}).",
        )
    if width * height > max_pixels:
        raise _too_many_pixels(max_pixels, width, height)


def _too_many_pixels(max_pixels: int, width: int = 0, height: int = 0) -> ImageTooLarge:
    size = f" ({width}×{height})" if width else ""
    size_en = f" ({width}x{height})" if width else ""
    limit = max_pixels / 1e6
    return ImageTooLarge(
        f"La imagen tiene demasiados píxeles{size}; el máximo es {limit:g} megapíxeles. "
        "Redúcela y vuelve a subirla.",
        f"The image has too many pixels{size_en}; the limit is {limit:g} megapixels. "
        "Resize it and upload it again.",
        max_pixels=max_pixels,
    )


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: map 0..65535 to 0..255 instead of letting convert() clip.
        values = np.asarray(image, dtype=np.float64)
        if values.max() > 255:
            values = values / 257.0
        scaled = np.rint(values).clip(0, 255).astype(np.uint8)
        return Image.fromarray(scaled).convert("RGB")
    return image.convert("RGB")
