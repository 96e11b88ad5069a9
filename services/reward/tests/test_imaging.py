"""Which uploads are accepted as images, and how they are decoded."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from services.common.testing import make_test_image
from services.reward.errors import ImageTooLarge, InvalidImage
from services.reward.imaging import decode_image

LIMITS = {"max_bytes": 10 * 1024 * 1024, "max_pixels": 4_000_000}


def encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **kwargs)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_decodes_common_formats_to_rgb(fmt: str) -> None:
    data = encode(Image.open(io.BytesIO(make_test_image(320, 240))), fmt)
    decoded = decode_image(data, **LIMITS)
    assert decoded.rgb.shape == (240, 320, 3)
    assert decoded.rgb.dtype == np.uint8
    assert (decoded.width, decoded.height, decoded.format) == (320, 240, fmt)


def test_empty_is_invalid_not_too_large() -> None:
    with pytest.raises(InvalidImage) as info:
        decode_image(b"", **LIMITS)
    assert not isinstance(info.value, ImageTooLarge)
    assert "vacía" in info.value.message_es


def test_not_an_image() -> None:
    with pytest.raises(InvalidImage) as info:
        decode_image(b"%PDF-1.4 definitely not pixels", **LIMITS)
    assert "no es una imagen" in info.value.message_es
    assert "not a recognisable image" in info.value.message_en


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_file_is_refused_not_padded(fmt: str) -> None:
    data = make_test_image(320, 240, fmt=fmt)
    with pytest.raises(InvalidImage) as info:
        decode_image(data[: len(data) // 2], **LIMITS)
    assert not isinstance(info.value, ImageTooLarge)


def test_too_many_bytes() -> None:
    data = make_test_image()
    with pytest.raises(ImageTooLarge) as info:
        decode_image(data, max_bytes=len(data) - 1, max_pixels=LIMITS["max_pixels"])
    assert info.value.status_code == 413
    decode_image(data, max_bytes=len(data), max_pixels=LIMITS["max_pixels"])


def test_too_many_pixels_is_checked_from_the_header() -> None:
    data = make_test_image(200, 100)
    with pytest.raises(ImageTooLarge) as info:
        decode_image(data, max_bytes=LIMITS["max_bytes"], max_pixels=200 * 100 - 1)
    assert "200×100" in info.value.message_es
    decode_image(data, max_bytes=LIMITS["max_bytes"], max_pixels=200 * 100)


def test_exif_orientation_is_applied() -> None:
    image = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    decoded = decode_image(encode(image, "JPEG", exif=exif), **LIMITS)
    assert (decoded.width, decoded.height) == (20, 40)


def test_transparency_is_flattened_onto_white() -> None:
    image = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    decoded = decode_image(encode(image, "PNG"), **LIMITS)
    assert np.all(decoded.rgb == 255)


def test_greyscale_and_sixteen_bit_become_rgb() -> None:
    grey = decode_image(encode(Image.new("L", (8, 8), 77), "PNG"), **LIMITS)
    assert np.all(grey.rgb == 77)
    deep = Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16))
    decoded = decode_image(encode(deep, "PNG"), **LIMITS)
    assert np.all(decoded.rgb == 255)
