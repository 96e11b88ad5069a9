"""Structure preservation: how much of the original render survives in a candidate.

The client forbids changing layout, shapes, materials and colours, so a candidate is
compared with the render it was made from. Both images are brought to the same
canvas: the original at long side ``size`` (default 512), the candidate resized to
exactly the original's working shape (a candidate with another aspect ratio is
stretched, which the measures then penalise). With luma ``Y`` as in
:mod:`services.reward.features`:

======  ===================  =========  ====================================================
index   name                 range      meaning
======  ===================  =========  ====================================================
0       ``has_original``     {0, 1}     1 when an original was given; without one every
                                        other value is 0 and the model learns the
                                        offset from this indicator
1       ``ssim``             [-1, 1]    mean SSIM of the two lumas (Wang et al. 2004:
                                        Gaussian window σ = 1.5, K1 = 0.01, K2 = 0.03,
                                        dynamic range 1)
2       ``edge_f1``          [0, 1]     F1 of the two Canny edge maps with a 1-px tolerance
                                        (:func:`services.reward.edges.edge_f1`), with
                                        thresholds 0.01 / 0.025, half the feature ones, so
                                        a softened candidate keeps its outlines: layout
                                        and shapes kept
3       ``chroma_shift``     [0, ~0.7]  mean over a 16×16 grid of cells of the distance
                                        between the cells' mean opponent colours
                                        ``(R-G, (R+G)/2-B) / 255``: colours changed
4       ``luma_shift``       [0, 1]     mean over the same cells of ``|ΔY|`` (relighting,
                                        which is allowed, but the model may weigh it)
======  ===================  =========  ====================================================

Pure numpy/scipy/Pillow, deterministic and thread-safe.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from services.reward.edges import canny, edge_f1
from services.reward.features import DEFAULT_SIZE, resize_long_side

STRUCTURE_VERSION = "structure-v1"
STRUCTURE_NAMES: tuple[str, ...] = (
    "has_original",
    "ssim",
    "edge_f1",
    "chroma_shift",
    "luma_shift",
)
STRUCTURE_DIMS = len(STRUCTURE_NAMES)
NO_ORIGINAL: tuple[float, ...] = (0.0,) * STRUCTURE_DIMS
"""The block for an image that came without an original."""

SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
GRID = 16
EDGE_LOW, EDGE_HIGH = 0.01, 0.025
_LUMA_WEIGHTS = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32) / 255.0


@dataclass(frozen=True)
class Reference:
    """An original render prepared once, to compare several candidates against it."""

    rgb: np.ndarray
    luma: np.ndarray
    edges: np.ndarray
    cells: np.ndarray  # GRID×GRID×3: mean luma, rg, yb per cell


def prepare_reference(original_rgb: np.ndarray, size: int = DEFAULT_SIZE) -> Reference:
    """Resize, take luma, edges and cell means of the original (reused per candidate).

    Raises:
        ValueError: ``original_rgb`` is not a non-empty ``H×W×3 uint8`` array.
    """
    _check_rgb(original_rgb)
    rgb = resize_long_side(original_rgb, size)
    luma = rgb.astype(np.float32) @ _LUMA_WEIGHTS
    return Reference(rgb, luma, canny(luma, EDGE_LOW, EDGE_HIGH), _cells(rgb, luma))


def structure_features(candidate_rgb: np.ndarray, reference: Reference) -> tuple[float, ...]:
    """The structure block (``STRUCTURE_NAMES`` order) of a candidate vs an original.

    Raises:
        ValueError: ``candidate_rgb`` is not a non-empty ``H×W×3 uint8`` array.
    """
    _check_rgb(candidate_rgb)
    height, width = reference.luma.shape
    rgb = candidate_rgb
    if rgb.shape[:2] != (height, width):
        rgb = np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.BILINEAR))
    luma = rgb.astype(np.float32) @ _LUMA_WEIGHTS
    cells = _cells(rgb, luma)
    diff = cells - reference.cells
    chroma = float(np.mean(np.hypot(diff[..., 1], diff[..., 2])))
    return (
        1.0,
        ssim(luma, reference.luma),
        edge_f1(canny(luma, EDGE_LOW, EDGE_HIGH), reference.edges),
        chroma,
        float(np.mean(np.abs(diff[..., 0]))),
    )


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean structural similarity of two equal-shape lumas in ``[0, 1]``."""
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    x = a.astype(np.float32, copy=False)
    y = b.astype(np.float32, copy=False)

    def blur(z: np.ndarray) -> np.ndarray:
        result: np.ndarray = ndimage.gaussian_filter(z, SSIM_SIGMA, truncate=3.5)
        return result

    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx * mx
    vy = blur(y * y) - my * my
    cov = blur(x * y) - mx * my
    num = (2 * mx * my + c1) * (2 * cov + c2)
    den = (mx * mx + my * my + c1) * (vx + vy + c2)
    return float(np.mean(num / den, dtype=np.float64))


def _cells(rgb: np.ndarray, luma: np.ndarray) -> np.ndarray:
    channels = rgb.astype(np.float32) / 255.0
    red, green, blue = channels[..., 0], channels[..., 1], channels[..., 2]
    planes = np.stack([luma, red - green, 0.5 * (red + green) - blue], axis=-1)
    height, width = luma.shape
    rows = np.minimum((np.arange(height) * GRID) // height, GRID - 1)
    cols = np.minimum((np.arange(width) * GRID) // width, GRID - 1)
    index = (rows[:, None] * GRID + cols[None, :]).ravel()
    counts = np.bincount(index, minlength=GRID * GRID).astype(np.float64)
    counts[counts == 0] = 1.0  # images smaller than the grid leave some cells empty
    out = np.stack(
        [
            np.bincount(index, weights=planes[..., k].ravel(), minlength=GRID * GRID) / counts
            for k in range(3)
        ],
        axis=-1,
    )
    return out.reshape(GRID, GRID, 3)


def _check_rgb(rgb: np.ndarray) -> None:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.size == 0:
        raise ValueError(f"expected a non-empty HxWx3 uint8 array, got {rgb.dtype} {rgb.shape}")
