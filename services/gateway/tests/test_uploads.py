"""Upload safety: only real JPEG/PNG/WebP, within limits, cleaned on the way in."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from services.common.errors import ImageTooLarge, InvalidImage, UnsupportedImageType
from services.common.testing import encode_image, make_test_image
from services.gateway.uploads import normalise_upload

LIMITS = {"max_bytes": 20 * 1024 * 1024, "max_pixels": 40_000_000}


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_accepts_the_three_formats_by_content(fmt: str) -> None:
    data = make_test_image(320, 240, fmt)
    result = normalise_upload(data, **LIMITS)
    assert (result.width, result.height) == (320, 240)
    assert result.source_format == fmt
    assert result.content_type == "image/jpeg"
    assert Image.open(io.BytesIO(result.data)).mode == "RGB"


BAD_FILES = {
    "zero_bytes": (b"", InvalidImage),
    "not_an_image": (b"hello, I am plain text" * 10, UnsupportedImageType),
    "html_named_jpg": (b"<!doctype html><html><body><img src=x></body></html>",
                       UnsupportedImageType),
    "truncated_jpeg": (make_test_image(640, 480, "JPEG")[:3000], InvalidImage),
    "gif": (encode_image(Image.new("RGB", (10, 10)), "GIF"), UnsupportedImageType),
    "bmp": (encode_image(Image.new("RGB", (10, 10)), "BMP"), UnsupportedImageType),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_rejects_bad_files_with_a_spanish_message(name: str) -> None:
    data, error = BAD_FILES[name]
    with pytest.raises(error) as caught:
        normalise_upload(data, **LIMITS)
    assert caught.value.message_es and caught.value.message_es != caught.value.message_en
    assert caught.value.status_code in (413, 415, 422)


def test_rejects_a_decompression_bomb_before_decoding() -> None:
    bomb = encode_image(Image.new("1", (12_000, 12_000)), "PNG")  # 144 MP, a few KB on disk
    assert len(bomb) < 100_000
    with pytest.raises(ImageTooLarge) as caught:
        normalise_upload(bomb, **LIMITS)
    assert "píxeles" in caught.value.message_es


def test_rejects_a_60_megabyte_file() -> None:
    with pytest.raises(ImageTooLarge) as caught:
        normalise_upload(b"\xff\xd8\xff" + b"\0" * (60 * 1024 * 1024), **LIMITS)
    assert "MB" in caught.value.message_es


def test_applies_exif_orientation_and_strips_metadata() -> None:
    image = Image.open(io.BytesIO(make_test_image(300, 200, "JPEG")))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise when displayed
    exif[0x010E] = "secret description"  # ImageDescription
    data = encode_image(image, "JPEG", exif=exif.tobytes(), comment=b"private note")
    result = normalise_upload(data, **LIMITS)
    assert (result.width, result.height) == (200, 300)
    cleaned = Image.open(io.BytesIO(result.data))
    assert not cleaned.getexif()
    assert b"secret description" not in result.data and b"private note" not in result.data


def test_flattens_transparency_on_white_and_converts_cmyk() -> None:
    rgba = Image.new("RGBA", (50, 40), (255, 0, 0, 0))
    flat = Image.open(io.BytesIO(normalise_upload(encode_image(rgba, "PNG"), **LIMITS).data))
    assert min(flat.convert("RGB").getpixel((25, 20))) > 240  # type: ignore[arg-type]
    cmyk = Image.new("CMYK", (50, 40), (0, 255, 255, 0))  # pure red in CMYK
    red = Image.open(io.BytesIO(normalise_upload(encode_image(cmyk, "JPEG"), **LIMITS).data))
    r, g, b = red.convert("RGB").getpixel((25, 20))  # type: ignore[misc]
    assert r > 200 and g < 60 and b < 60


def test_same_content_gives_the_same_hash() -> None:
    data = make_test_image(64, 64, "PNG")
    assert normalise_upload(data, **LIMITS).sha256 == normalise_upload(data, **LIMITS).sha256
