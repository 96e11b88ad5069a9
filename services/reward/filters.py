"""Small image stencils written as array slices: Gaussian, Sobel, second differences.

Each equals its ``scipy.ndimage`` counterpart, with the same border mode, up to
float rounding ("reflect" = numpy's "symmetric" padding, "nearest" = "edge"):

* :func:`gaussian_blur` — ``gaussian_filter(image, σ, truncate=3)``;
* :func:`sobel_magnitude` — ``hypot(sobel(x, 1), sobel(x, 0)) / 8`` ("nearest");
* :func:`second_difference` — ``correlate1d(x, [1, -2, 1], axis)`` ("reflect");
* :func:`laplacian` — ``laplace(x)`` ("reflect").

Written as a few multiply-adds of shifted views they are two to several times
faster than ``ndimage`` on a 512×512 float32 image, because the stencils are short
(the Gaussian has 9 taps for σ ≤ 1.5). ``services/reward/tests/test_filters.py``
pins each one to ``ndimage``.
"""

from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=8)
def _kernel(sigma: float, truncate: float) -> tuple[float, ...]:
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-0.5 * (x / sigma) ** 2)
    return tuple((weights / weights.sum()).tolist())


def _check_2d(image: np.ndarray) -> None:
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D array, got shape {image.shape}")


def gaussian_blur(image: np.ndarray, sigma: float, truncate: float = 3.0) -> np.ndarray:
    """``image`` (2-D float) smoothed by a Gaussian of ``sigma`` pixels, same dtype."""
    _check_2d(image)
    weights = _kernel(float(sigma), float(truncate))
    radius = len(weights) // 2
    out = image
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="symmetric")
        size = out.shape[axis]
        acc = np.zeros_like(out)
        for offset, weight in enumerate(weights):
            window = slice(offset, offset + size)
            view = padded[window] if axis == 0 else padded[:, window]
            acc += out.dtype.type(weight) * view
        out = acc
    return out


def sobel_magnitude(image: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude (edge-replicated border), divided by 8."""
    _check_2d(image)
    padded = np.pad(image, 1, mode="edge")
    across = padded[:, 2:] - padded[:, :-2]  # [-1 0 1] along x, then [1 2 1] along y
    gx = across[:-2] + 2 * across[1:-1] + across[2:]
    down = padded[2:] - padded[:-2]
    gy = down[:, :-2] + 2 * down[:, 1:-1] + down[:, 2:]
    result: np.ndarray = np.sqrt(gx * gx + gy * gy) / 8.0
    return result


def second_difference(image: np.ndarray, axis: int) -> np.ndarray:
    """``[1 -2 1]`` along ``axis`` (0: down the columns, 1: along the rows), mirrored."""
    _check_2d(image)
    pad = [(0, 0), (0, 0)]
    pad[axis] = (1, 1)
    padded = np.pad(image, pad, mode="symmetric")
    before, after = (padded[:-2], padded[2:]) if axis == 0 else (padded[:, :-2], padded[:, 2:])
    result: np.ndarray = before - 2 * image + after
    return result


def laplacian(image: np.ndarray) -> np.ndarray:
    """4-neighbour Laplacian, mirrored border."""
    return second_difference(image, 0) + second_difference(image, 1)
