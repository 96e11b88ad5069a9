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

:func:`separable` runs an ``ndimage`` 1-D filter down the columns and then along the
rows, giving exactly (bit for bit) what the matching 2-D ``ndimage`` filter gives,
in about half the time: ``ndimage`` gathers a column through a strided copy that
misses the cache on every element, so the column pass runs along the rows of a
transposed copy instead.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

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
        term = np.empty_like(out)
        for offset, weight in enumerate(weights):
            window = slice(offset, offset + size)
            view = padded[window] if axis == 0 else padded[:, window]
            # acc += weight * view, without allocating a temporary per tap.
            np.multiply(view, out.dtype.type(weight), out=term)
            acc += term
        out = acc
    return out


def separable(
    image: np.ndarray,
    filter1d: Callable[..., np.ndarray],
    transposed: np.ndarray | None = None,
) -> np.ndarray:
    """``filter1d(x, axis=0)`` then ``filter1d(·, axis=1)`` on 2-D ``image``, same dtype.

    ``filter1d`` is an ``ndimage`` 1-D filter with its parameters bound (for example
    ``functools.partial(ndimage.uniform_filter1d, size=7)``). The result equals
    ``filter1d(filter1d(image, axis=0), axis=1)`` exactly, as ``ndimage``'s 2-D
    filters compute it; only the memory layout of the first pass differs.
    ``transposed``, when given, must be ``np.ascontiguousarray(image.T)`` (callers that
    filter one image several times make that copy once).
    """
    _check_2d(image)
    if transposed is None:
        transposed = np.ascontiguousarray(image.T)
    columns = filter1d(transposed, axis=1)
    result: np.ndarray = filter1d(np.ascontiguousarray(columns.T), axis=1)
    return result


def sobel_magnitude(image: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude (edge-replicated border), divided by 8."""
    _check_2d(image)
    padded = np.pad(image, 1, mode="edge")
    across = padded[:, 2:] - padded[:, :-2]  # [-1 0 1] along x, then [1 2 1] along y
    down = padded[2:] - padded[:-2]
    # gx = across[:-2] + 2 across[1:-1] + across[2:] (and gy alike), then
    # sqrt(gx² + gy²) / 8, in place: the same operations in the same order.
    gx = across[1:-1] * 2
    np.add(across[:-2], gx, out=gx)
    gx += across[2:]
    gy = down[:, 1:-1] * 2
    np.add(down[:, :-2], gy, out=gy)
    gy += down[:, 2:]
    gx *= gx
    gy *= gy
    gx += gy
    np.sqrt(gx, out=gx)
    gx /= gx.dtype.type(8.0)
    return gx


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
