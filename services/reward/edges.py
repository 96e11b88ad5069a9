"""Canny edge maps: which pixels count as edges (used by features and structure checks).

Notation: ``Y`` is luma in ``[0, 1]`` (see :mod:`services.reward.features`).

1. Smooth: ``S = G_σ ∗ Y`` with a Gaussian of ``σ = CANNY_SIGMA`` px.
2. Gradient: central differences ``gx = (S[x+1] - S[x-1]) / 2`` (edge pixels
   replicated; the Gaussian already smooths, so Sobel's extra smoothing is not
   needed) and magnitude ``m = √(gx² + gy²)``.
3. Non-maximum suppression: a pixel survives when ``m`` is ≥ both neighbours along
   the gradient direction, quantised to 0°, 45°, 90° or 135°.
4. Hysteresis: survivors with ``m > CANNY_HIGH`` are edges, and so is every survivor
   with ``m > CANNY_LOW`` that is 8-connected to one of them.

The thresholds are absolute (luma step per pixel after smoothing), not relative to
the image: a flat, blurry image has few edges and a detailed one many, which is
what the density feature should measure. Everything is numpy/scipy; the function is
pure and thread-safe.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from services.reward.filters import gaussian_blur

CANNY_SIGMA = 1.4
CANNY_LOW = 0.02
CANNY_HIGH = 0.05
_TAN_22_5 = 0.41421356
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def canny(luma: np.ndarray, low: float = CANNY_LOW, high: float = CANNY_HIGH) -> np.ndarray:
    """Boolean edge map of ``luma`` (``H×W`` float in ``[0, 1]``), same shape.

    Raises:
        ValueError: ``luma`` is not two-dimensional or ``low > high``.
    """
    if luma.ndim != 2:
        raise ValueError(f"expected a 2-D luma array, got shape {luma.shape}")
    if low > high:
        raise ValueError("low threshold above high threshold")
    smooth = gaussian_blur(luma.astype(np.float32, copy=False), CANNY_SIGMA)
    padded_s = np.pad(smooth, 1, mode="edge")
    # gx = (S[x+1] - S[x-1]) · 0.5, gy alike, mag = sqrt(gx² + gy²), written in place.
    half = np.float32(0.5)
    gx = np.subtract(padded_s[1:-1, 2:], padded_s[1:-1, :-2], out=smooth)
    gx *= half
    gy = np.subtract(padded_s[2:, 1:-1], padded_s[:-2, 1:-1])
    gy *= half
    h, w = gx.shape
    # ``mag`` lives inside a zero border, which non-maximum suppression reads below.
    padded = np.zeros((h + 2, w + 2), dtype=np.float32)
    mag = np.multiply(gx, gx, out=padded[1:-1, 1:-1])
    mag += np.multiply(gy, gy, out=padded_s[1:-1, 1:-1])
    np.sqrt(mag, out=mag)
    candidates = mag > low
    if not candidates.any():
        return candidates
    # Non-maximum suppression on the candidates only (usually a minority of pixels):
    # each one is compared with its two neighbours along the quantised gradient
    # direction, read from the zero-bordered ``mag`` by flat index.
    stride = w + 2
    flat = padded.ravel()
    where = np.flatnonzero(candidates)
    cgx, cgy = gx.ravel()[where], gy.ravel()[where]
    ax, ay = np.abs(cgx), np.abs(cgy)
    horizontal = ay <= _TAN_22_5 * ax  # gradient along x: compare left/right
    vertical = ax <= _TAN_22_5 * ay  # gradient along y: compare up/down
    same_sign = (cgx * cgy) > 0  # gradient points down-right (y grows downwards)
    step = np.where(
        horizontal,
        1,
        np.where(vertical, stride, np.where(same_sign, stride + 1, stride - 1)),
    )
    centre = where + (where // w) * 2 + stride + 1  # the pixel's index in ``padded``
    value = flat[centre]
    is_peak = (value >= flat[centre - step]) & (value >= flat[centre + step])
    strong = where[is_peak & (value > high)]
    if strong.size == 0:
        return np.zeros_like(candidates)
    weak = np.zeros(h * w, dtype=bool)
    weak[where[is_peak]] = True
    labels, count = ndimage.label(weak.reshape(h, w), structure=_EIGHT_CONNECTED)
    keep = np.zeros(count + 1, dtype=bool)
    keep[labels.ravel()[strong]] = True
    keep[0] = False
    result: np.ndarray = keep[labels]
    return result


def edge_f1(candidate: np.ndarray, reference: np.ndarray, tolerance: int = 1) -> float:
    """F1 score of two equal-shape edge maps, matching edges within ``tolerance`` px.

    Precision is the share of ``candidate`` edges within ``tolerance`` (Chebyshev
    distance) of a ``reference`` edge; recall the other way round. Two empty maps
    agree perfectly (1.0); one empty map and one non-empty map give 0.0.
    """
    if candidate.shape != reference.shape:
        raise ValueError(f"edge maps differ in shape: {candidate.shape} vs {reference.shape}")
    n_cand, n_ref = int(candidate.sum()), int(reference.sum())
    if n_cand == 0 and n_ref == 0:
        return 1.0
    if n_cand == 0 or n_ref == 0:
        return 0.0
    size = 2 * tolerance + 1
    near_ref = ndimage.maximum_filter(reference, size=size, mode="constant")
    near_cand = ndimage.maximum_filter(candidate, size=size, mode="constant")
    precision = float((candidate & near_ref).sum()) / n_cand
    recall = float((reference & near_cand).sum()) / n_ref
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)
