"""Which bytes count as an image, and how they become sRGB pixels (one decoder for all).

An upload is accepted when, in this order:

1. it is not empty and at most ``max_bytes`` long (checked before Pillow sees it);
2. Pillow recognises it from its content (never from a file name) as JPEG, PNG or
   WebP; anything else is refused with the format's name (GIF, BMP…) or, for bytes
   that are no image at all (HTML named ``.jpg``), as not an image;
3. its width × height, read from the header before any pixel is decoded, is at
   most ``max_pixels``; this is what makes decompression bombs (a few KB of PNG
   that would inflate to gigabytes) cheap to refuse. Pillow's own bomb check, at
   twice ``Image.MAX_IMAGE_PIXELS``, still refuses the rest without telling us
   the size (so ``max_pixels`` above about 178 MP has no effect);
4. it decodes completely: a truncated file is refused, never padded.

The pixels are then what the trainer saw: EXIF orientation applied, an embedded
ICC profile converted to sRGB (a broken profile is ignored: the pixels are taken as
sRGB), transparency flattened onto white, 16-bit greyscale scaled (not clipped) to 8
bits, everything else converted to RGB. Animated images give their first frame.

Every refusal is one of :class:`~services.common.errors.InvalidImage` (422),
:class:`~services.common.errors.ImageTooLarge` (413) or
:class:`~services.common.errors.UnsupportedImageType` (415), whose sentences are
defined on those classes.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageCms, ImageOps

from services.common.errors import ImageTooLarge, InvalidImage, UnsupportedImageType

ACCEPTED_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
"""Pillow format name → media type of every format :func:`decode_image` accepts."""

_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_DEEP_GREY_MODES = ("I;16", "I;16B", "I;16L", "I")


@dataclass(frozen=True)
class DecodedImage:
    """An accepted image: ``image`` is RGB (sRGB), as displayed (EXIF orientation applied)."""

    image: Image.Image
    format: str  # Pillow's name of the source format: JPEG, PNG or WEBP

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height

    def to_array(self) -> np.ndarray:
        """The pixels as an ``H×W×3`` ``uint8`` array."""
        return np.asarray(self.image, dtype=np.uint8)


def check_size(data: bytes, max_bytes: int) -> None:
    """Refuse empty data and data over ``max_bytes`` (cheap: no decoding).

    Raises:
        InvalidImage: ``data`` is empty.
        ImageTooLarge: ``data`` is longer than ``max_bytes``.
    """
    if not data:
        raise InvalidImage.empty()
    if len(data) > max_bytes:
        raise ImageTooLarge.too_many_bytes(len(data), max_bytes)


def decode_image(data: bytes, *, max_bytes: int, max_pixels: int) -> DecodedImage:
    """Check ``data`` against the limits and decode it (CPU-bound: call it in a thread).

    Raises:
        InvalidImage: empty, damaged or truncated.
        ImageTooLarge: over ``max_bytes`` or ``max_pixels``.
        UnsupportedImageType: not an image, or not JPEG, PNG or WebP.
    """
    check_size(data, max_bytes)
    try:
        with warnings.catch_warnings():
            # Our own pixel limit decides; Pillow's warning below its hard limit is noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge.too_many_pixels(max_pixels) from exc
    except Exception as exc:  # Pillow raises several types for garbage; all mean "not an image"
        raise UnsupportedImageType.unrecognised() from exc
    with image:
        fmt = image.format or ""
        if fmt not in ACCEPTED_FORMATS:
            raise UnsupportedImageType.not_accepted(fmt)
        width, height = image.size
        if width < 1 or height < 1:
            raise InvalidImage.no_pixels(width, height)
        if width * height > max_pixels:
            raise ImageTooLarge.too_many_pixels(max_pixels, width, height)
        try:
            image.load()
            rgb = _to_srgb_rgb(ImageOps.exif_transpose(image) or image)
        except Exception as exc:  # truncated data, corrupt chunks, broken EXIF…
            raise InvalidImage.damaged() from exc
    return DecodedImage(rgb, fmt)


def _to_srgb_rgb(image: Image.Image) -> Image.Image:
    image = _icc_to_srgb(image)
    if image.mode in _DEEP_GREY_MODES:
        # 16-bit greyscale: map 0..65535 to 0..255 instead of letting convert() clip.
        values = np.asarray(image, dtype=np.float64)
        if values.max() > 255:
            values = values / 257.0
        return Image.fromarray(np.rint(values).clip(0, 255).astype(np.uint8)).convert("RGB")
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def _icc_to_srgb(image: Image.Image) -> Image.Image:
    icc = image.info.get("icc_profile")
    if not icc:
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        mode = "RGBA" if image.mode in _ALPHA_MODES else "RGB"
        converted = ImageCms.profileToProfile(
            image, source, ImageCms.createProfile("sRGB"), outputMode=mode
        )
    except (ImageCms.PyCMSError, OSError, ValueError):
        return image  # a broken or unusable profile: take the pixels as sRGB
    return converted if converted is not None else image
