"""Which bytes are accepted as images, which error each refusal is, and the pixels."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageCms

from services.common.errors import ImageTooLarge, InvalidImage, UnsupportedImageType
from services.common.images import check_size, decode_image
from services.common.testing import encode_image, make_test_image

LIMITS = {"max_bytes": 10 * 1024 * 1024, "max_pixels": 4_000_000}


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_decodes_the_three_formats_to_rgb(fmt: str) -> None:
    data = encode_image(Image.open(io.BytesIO(make_test_image(320, 240))), fmt)
    decoded = decode_image(data, **LIMITS)
    assert decoded.image.mode == "RGB"
    assert (decoded.width, decoded.height, decoded.format) == (320, 240, fmt)
    array = decoded.to_array()
    assert array.shape == (240, 320, 3) and array.dtype == np.uint8


# name: (bytes, error class, status, a fragment of the Spanish, of the English sentence)
REFUSED = {
    "empty": (b"", InvalidImage, 422, "vacía", "empty"),
    "plain_text": (
        b"hello, I am plain text" * 10,
        UnsupportedImageType,
        415,
        "no es una imagen válida",
        "not a valid image",
    ),
    "html_named_jpg": (
        b"<!doctype html><html><body><img src=x></body></html>",
        UnsupportedImageType,
        415,
        "no es una imagen válida",
        "not a valid image",
    ),
    "pdf": (
        b"%PDF-1.4 definitely not pixels",
        UnsupportedImageType,
        415,
        "no es una imagen válida",
        "not a valid image",
    ),
    "truncated_jpeg": (
        make_test_image(640, 480, "JPEG")[:3000],
        InvalidImage,
        422,
        "dañada o incompleta",
        "damaged or incomplete",
    ),
    "truncated_png": (
        make_test_image(320, 240, "PNG")[:5000],
        InvalidImage,
        422,
        "dañada o incompleta",
        "damaged or incomplete",
    ),
    "gif": (
        encode_image(Image.new("RGB", (10, 10)), "GIF"),
        UnsupportedImageType,
        415,
        "Formato GIF no admitido",
        "Format GIF is not accepted",
    ),
    "bmp": (
        encode_image(Image.new("RGB", (10, 10)), "BMP"),
        UnsupportedImageType,
        415,
        "Formato BMP no admitido",
        "Format BMP is not accepted",
    ),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refusals_are_the_right_error_with_a_sentence_in_each_language(name: str) -> None:
    data, kind, status, spanish, english = REFUSED[name]
    with pytest.raises(InvalidImage) as caught:
        decode_image(data, **LIMITS)
    error = caught.value
    assert type(error) is kind and error.status_code == status
    assert spanish in error.message_es and english in error.message_en


def test_too_many_bytes_is_checked_before_decoding() -> None:
    data = make_test_image()
    with pytest.raises(ImageTooLarge) as caught:
        decode_image(data, max_bytes=len(data) - 1, max_pixels=LIMITS["max_pixels"])
    assert caught.value.status_code == 413 and caught.value.code == "image_too_large"
    decode_image(data, max_bytes=len(data), max_pixels=LIMITS["max_pixels"])
    with pytest.raises(ImageTooLarge) as huge:  # not an image at all: refused by size alone
        check_size(b"\xff\xd8\xff" + b"\0" * (60 * 1024 * 1024), 20 * 1024 * 1024)
    assert "La imagen pesa 60 MB; el máximo es 20 MB" in huge.value.message_es
    assert "The image is 60 MB; the maximum is 20 MB" in huge.value.message_en


def test_too_many_pixels_is_checked_from_the_header() -> None:
    data = make_test_image(200, 100)
    with pytest.raises(ImageTooLarge) as caught:
        decode_image(data, max_bytes=LIMITS["max_bytes"], max_pixels=200 * 100 - 1)
    assert "200×100" in caught.value.message_es and "megapíxeles" in caught.value.message_es
    assert "200×100" in caught.value.message_en
    decode_image(data, max_bytes=LIMITS["max_bytes"], max_pixels=200 * 100)


@pytest.mark.parametrize("side", [12_000, 14_000])  # 144 MP: our limit; 196 MP: Pillow's
def test_a_decompression_bomb_is_refused_without_decoding_it(side: int) -> None:
    bomb = encode_image(Image.new("1", (side, side)), "PNG")  # a few KB on disk
    assert len(bomb) < 200_000
    with pytest.raises(ImageTooLarge) as caught:
        decode_image(bomb, max_bytes=LIMITS["max_bytes"], max_pixels=40_000_000)
    assert "píxeles" in caught.value.message_es and "40 megapíxeles" in caught.value.message_es


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    decoded = decode_image(
        encode_image(Image.new("RGB", (40, 20), (200, 10, 10)), "JPEG", exif=exif), **LIMITS
    )
    assert (decoded.width, decoded.height) == (20, 40)


def test_transparency_is_flattened_onto_white() -> None:
    clear = decode_image(encode_image(Image.new("RGBA", (8, 8), (0, 0, 0, 0)), "PNG"), **LIMITS)
    assert np.all(clear.to_array() == 255)
    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([10, 20, 30] * 256)
    keyed = decode_image(encode_image(palette, "PNG", transparency=0), **LIMITS)
    assert np.all(keyed.to_array() == 255)


def test_greyscale_sixteen_bit_and_cmyk_become_rgb() -> None:
    grey = decode_image(encode_image(Image.new("L", (8, 8), 77), "PNG"), **LIMITS)
    assert np.all(grey.to_array() == 77)
    deep = Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16))
    assert np.all(decode_image(encode_image(deep, "PNG"), **LIMITS).to_array() == 255)
    cmyk = Image.new("CMYK", (50, 40), (0, 255, 255, 0))  # pure red in CMYK
    r, g, b = decode_image(encode_image(cmyk, "JPEG"), **LIMITS).to_array()[20, 25]
    assert r > 200 and g < 60 and b < 60


def test_an_icc_profile_is_honoured_and_a_broken_one_ignored() -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    image = Image.new("RGB", (16, 16), (120, 60, 30))
    tagged = decode_image(encode_image(image, "PNG", icc_profile=srgb), **LIMITS).to_array()
    assert np.abs(tagged.astype(int) - [120, 60, 30]).max() <= 2  # sRGB → sRGB: unchanged
    broken = decode_image(encode_image(image, "PNG", icc_profile=b"not a profile"), **LIMITS)
    assert np.all(broken.to_array() == [120, 60, 30])
