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


_STRIP_ROWS = 128
"""Rows per strip in :func:`gaussian_blur`: a strip's arrays stay in the CPU cache."""


def gaussian_blur(image: np.ndarray, sigma: float, truncate: float = 3.0) -> np.ndarray:
    """``image`` (2-D float) smoothed by a Gaussian of ``sigma`` pixels, same dtype."""
    _check_2d(image)
    weights = _kernel(float(sigma), float(truncate))
    radius = len(weights) // 2
    height, width = image.shape
    scalar = image.dtype.type
    term = np.empty((min(height, _STRIP_ROWS), width), dtype=image.dtype)
    out = image
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="symmetric")
        out = np.empty_like(image)
        # Strip by strip, acc = Σ weight · shifted view, with the taps in order: the
        # same sums as whole-image passes, but each strip is read while still cached.
        for top in range(0, height, _STRIP_ROWS):
            bottom = min(height, top + _STRIP_ROWS)
            acc = out[top:bottom]
            acc[...] = 0
            product = term[: bottom - top]
            for offset, weight in enumerate(weights):
                if axis == 0:
                    view = padded[top + offset : bottom + offset]
                else:
                    view = padded[top:bottom, offset : offset + width]
                np.multiply(view, scalar(weight), out=product)
                acc += product
    return out


def separable(
    image: np.ndarray,
    filter1d: Callable[..., np.ndarray],
    transposed: np.ndarray | None = None,
    *,
    out: np.ndarray | None = None,
    scratch: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """``filter1d(x, axis=0)`` then ``filter1d(·, axis=1)`` on 2-D ``image``, same dtype.

    ``filter1d`` is an ``ndimage`` 1-D filter with its parameters bound (for example
    ``functools.partial(ndimage.uniform_filter1d, size=7)``). The result equals
    ``filter1d(filter1d(image, axis=0), axis=1)`` exactly, as ``ndimage``'s 2-D
    filters compute it; only the memory layout of the first pass differs.

    Args:
        transposed: ``transpose(image)``, when the caller already has it (callers
            that filter one image several times make that copy once).
        out: where to write the result (``image``'s shape and dtype).
        scratch: two work arrays of ``image``'s dtype, shaped like ``image.T`` and
            like ``image``; callers that filter many images of one size pass the same
            pair each time instead of allocating (and page-faulting) fresh ones.
    """
    _check_2d(image)
    if transposed is None:
        transposed = transpose(image)
    if scratch is None:
        scratch = (np.empty_like(transposed), np.empty_like(image))
    columns = filter1d(transposed, axis=1, output=scratch[0])
    result: np.ndarray = filter1d(transpose(columns, out=scratch[1]), axis=1, output=out)
    return result


_TRANSPOSE_ROWS = 16


def transpose(image: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``np.ascontiguousarray(image.T)`` for a 2-D array, copied 16 rows at a time.

    numpy's own copy walks the source column by column and misses the cache on every
    element; a band of 16 source rows fills 16 contiguous floats of each output row.
    ``out``, when given, receives the copy (C-contiguous, shape ``image.T.shape``).
    """
    _check_2d(image)
    height, width = image.shape
    if out is None:
        out = np.empty((width, height), dtype=image.dtype)
    for top in range(0, height, _TRANSPOSE_ROWS):
        out[:, top : top + _TRANSPOSE_ROWS] = image[top : top + _TRANSPOSE_ROWS].T
    return out


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
