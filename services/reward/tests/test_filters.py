"""The hand-written stencils agree with scipy.ndimage's filters up to float rounding."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from scipy import ndimage

from services.reward.filters import (
    gaussian_blur,
    laplacian,
    second_difference,
    separable,
    sobel_magnitude,
    transpose,
)


@pytest.mark.parametrize("shape", [(64, 48), (7, 3), (1, 1), (2, 9)])
@pytest.mark.parametrize("sigma", [1.4, 7 / 6])
def test_gaussian_blur_matches_ndimage(shape: tuple[int, int], sigma: float) -> None:
    image = np.random.default_rng(1).random(shape).astype(np.float32)
    blurred = gaussian_blur(image, sigma)
    assert blurred.dtype == np.float32 and blurred.shape == image.shape
    expected = ndimage.gaussian_filter(image, sigma, truncate=3)
    np.testing.assert_allclose(blurred, expected, atol=1e-6)


@pytest.mark.parametrize("shape", [(64, 48), (3, 2), (1, 1)])
def test_slice_stencils_match_ndimage(shape: tuple[int, int]) -> None:
    luma = np.random.default_rng(2).random(shape).astype(np.float32)
    gx = ndimage.sobel(luma, axis=1, mode="nearest")
    gy = ndimage.sobel(luma, axis=0, mode="nearest")
    np.testing.assert_allclose(sobel_magnitude(luma), np.hypot(gx, gy) / 8, atol=1e-6)
    np.testing.assert_allclose(laplacian(luma), ndimage.laplace(luma), atol=1e-6)
    kernel = np.array([1.0, -2.0, 1.0], dtype=np.float32)
    for axis in (0, 1):
        np.testing.assert_allclose(
            second_difference(luma, axis), ndimage.correlate1d(luma, kernel, axis=axis), atol=1e-6
        )


def test_gaussian_blur_refuses_a_colour_image() -> None:
    with pytest.raises(ValueError, match="2-D"):
        gaussian_blur(np.zeros((4, 4, 3), np.float32), 1.0)


@pytest.mark.parametrize("shape", [(300, 50), (129, 7), (1, 1), (2, 9)])
def test_strip_gaussian_blur_matches_ndimage_across_strips(shape: tuple[int, int]) -> None:
    # Taller than one strip of rows, so strip boundaries are crossed.
    image = np.random.default_rng(3).random(shape).astype(np.float32)
    expected = ndimage.gaussian_filter(image, 1.4, truncate=3)
    np.testing.assert_allclose(gaussian_blur(image, 1.4), expected, atol=1e-6)


@pytest.mark.parametrize("shape", [(64, 48), (37, 5), (1, 1), (1, 9), (17, 1)])
def test_separable_gives_ndimage_2d_filters_bit_for_bit(shape: tuple[int, int]) -> None:
    image = np.random.default_rng(4).random(shape).astype(np.float32)
    box = functools.partial(ndimage.uniform_filter1d, size=7, mode="reflect")
    gauss = functools.partial(ndimage.gaussian_filter1d, sigma=7 / 6, truncate=3)
    assert np.array_equal(separable(image, box), ndimage.uniform_filter(image, 7))
    expected = ndimage.gaussian_filter(image, 7 / 6, truncate=3)
    assert np.array_equal(separable(image, gauss), expected)
    # With the caller's transposed copy, output and work arrays.
    out = np.empty_like(image)
    scratch = (np.empty_like(image.T, order="C"), np.empty_like(image))
    result = separable(image, gauss, transpose(image), out=out, scratch=scratch)
    assert result is out and np.array_equal(out, expected)


@pytest.mark.parametrize("shape", [(512, 341), (33, 16), (16, 33), (1, 5), (5, 1)])
def test_transpose_is_a_contiguous_copy_of_the_transpose(shape: tuple[int, int]) -> None:
    image = np.arange(shape[0] * shape[1], dtype=np.float32).reshape(shape)
    copy = transpose(image)
    assert copy.flags.c_contiguous and np.array_equal(copy, image.T)
    out = np.empty(shape[::-1], dtype=np.float32)
    assert transpose(image, out=out) is out and np.array_equal(out, image.T)
