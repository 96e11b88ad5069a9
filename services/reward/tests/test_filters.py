"""The hand-written stencils agree with scipy.ndimage's filters up to float rounding."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from services.reward.filters import gaussian_blur, laplacian, second_difference, sobel_magnitude


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
        np.testing.assert_allclose(second_difference(luma, axis),
                                   ndimage.correlate1d(luma, kernel, axis=axis), atol=1e-6)


def test_gaussian_blur_refuses_a_colour_image() -> None:
    with pytest.raises(ValueError, match="2-D"):
        gaussian_blur(np.zeros((4, 4, 3), np.float32), 1.0)
