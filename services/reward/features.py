"""Classical image features: which numbers describe an image, in which order.

The reward model learns ``features → rating``. This module decides the *classical*
part of that vector (CLIP embeddings are a separate extractor, :mod:`services.reward.clip`;
structure preservation against the original render is :mod:`services.reward.structure`).
It is pure numpy/scipy/Pillow: no HTTP, no database, no global state.

Notation and preprocessing
--------------------------
The RGB image (``uint8``, ``H×W×3``) is resized with Pillow's bilinear filter so its
long side is ``size`` pixels (default 512; small images are enlarged, so every
measure is per pixel of a comparable canvas). Then

* ``R, G, B`` are the resized channels in ``[0, 255]``;
* ``Y = (0.2126 R + 0.7152 G + 0.0722 B) / 255`` is the luma, in ``[0, 1]``
  (Rec. 709 weights on the gamma-encoded values, as displayed);
* ``Y8 = round(255 Y)`` is the luma quantised to 256 levels.

Dimensions (``FEATURE_NAMES`` order; ``FEATURE_DIMS`` = 148)
------------------------------------------------------------
Indices 0–100 are the ``classical-v1`` vector unchanged; ``classical-v2`` appends
101–147 (second table).

======  =============================  ==========  ==============================================
index   name                           range       meaning
======  =============================  ==========  ==============================================
0–63    ``color_hist_r{i}g{j}b{k}``    [0, 1]      joint RGB histogram, 4 levels per channel
                                                   (level = value // 64): fraction of pixels in
                                                   bin (i, j, k); the 64 values sum to 1
64      ``edge_density``               [0, 1]      fraction of pixels whose Sobel gradient
                                                   magnitude of ``Y`` exceeds 0.05 per pixel (a
                                                   luma step of about 0.1 counts as an edge)
65      ``gradient_mean``              [0, 0.71]   mean Sobel gradient magnitude of ``Y``
                                                   (Sobel / 8 = central difference per pixel)
66      ``local_std_mean``             [0, 0.5]    mean standard deviation of ``Y`` in 7×7
                                                   windows (fine-scale texture, busyness)
67–70   ``gabor_fine_{0,45,90,135}``   [0, 0.25]   mean squared response of a complex Gabor
                                                   filter on ``Y - mean(Y)`` at 0.25 cycles/px
                                                   (4-px wavelength); the angle is the direction
                                                   along which intensity oscillates (0: it
                                                   varies left-right, i.e. vertical stripes)
71–74   ``gabor_coarse_{0,..,135}``    [0, 0.25]   the same at 0.0625 cycles/px (16-px
                                                   wavelength)
75–90   ``luma_hist_{00..15}``         [0, 1]      16-bin histogram of ``Y8`` (16 levels per
                                                   bin), fraction of pixels; sums to 1
91      ``luma_mean``                  [0, 1]      mean of ``Y`` (overall brightness)
92–94   ``luma_p05/_p50/_p95``         [0, 1]      5th, 50th, 95th percentiles of ``Y8 / 255``
95      ``clipped_dark``               [0, 1]      fraction of pixels with ``Y8 ≤ 2`` (crushed)
96      ``clipped_bright``             [0, 1]      fraction of pixels with ``Y8 ≥ 253`` (blown)
97      ``laplacian_var``              [0, 16]     variance of the 4-neighbour Laplacian of
                                                   ``Y`` (sharpness: blur lowers it)
98      ``noise_sigma``                [0, ~0.5]   robust noise std of ``Y``:
                                                   ``1.4826 · median|Y ∗ M| / 6`` with
                                                   ``M = [1 -2 1]ᵀ[1 -2 1]`` (Immerkær's mask,
                                                   which cancels linear ramps; ``6 = ‖M‖₂``)
99      ``colorfulness``               [0, ~180]   Hasler–Süsstrunk: with ``rg = R - G`` and
                                                   ``yb = (R+G)/2 - B``, ``σ_rgyb + 0.3 μ_rgyb``
                                                   (0 for grey; ≈33 moderately, ≈59 quite
                                                   colourful)
100     ``rms_contrast``               [0, 0.5]    standard deviation of ``Y`` (RMS contrast)
======  =============================  ==========  ==============================================

``classical-v2`` additions (MSCN: mean-subtracted contrast-normalised coefficients,
``M = (Y - μ) / (σ + 1/255)`` with ``μ, σ`` the local mean and standard deviation
under a Gaussian window of σ = 7/6 px, as in BRISQUE, Mittal et al. 2012):

======  =============================  ==========  ==============================================
index   name                           range       meaning
======  =============================  ==========  ==============================================
101     ``canny_edge_density``         [0, 1]      fraction of pixels on a Canny edge
                                                   (:mod:`services.reward.edges`: σ 1.4, hysteresis
                                                   0.02 / 0.05 luma per pixel)
102–119 ``mscn_s1_*``                  see below   BRISQUE natural-scene statistics at the working
                                                   size: ``ggd_shape``, ``ggd_var`` of ``M`` (a
                                                   generalised Gaussian fitted by moment
                                                   matching; shape 2 = Gaussian, lower = peakier),
                                                   then for the products of neighbours ``M·M'``
                                                   along ``h``, ``v``, ``d1``, ``d2``: asymmetric
                                                   GGD ``shape``, ``mean``, ``lvar``, ``rvar``
120–137 ``mscn_s2_*``                  see below   the same on ``Y`` downsampled 2× (area mean)
138     ``laplacian_var_half``         [0, 16]     ``laplacian_var`` of the 2×-downsampled luma
                                                   (sharpness at a coarser scale; the ratio of the
                                                   two separates blur from missing detail)
139     ``spectral_slope``             [-6, 0]     slope of log radial power vs log frequency
                                                   over 0.02–0.35 cycles/px (≈ -2 for natural
                                                   photographs; steeper = blurrier)
140     ``hf_energy_ratio``            [0, 1]      share of the (mean-removed) power above 0.25
                                                   cycles/px (fine detail and noise)
141     ``jpeg_blockiness``            [0, ~4]     mean |horizontal+vertical luma step| across
                                                   8-px block boundaries divided by the mean step
                                                   elsewhere (1 = no block grid)
142     ``saturation_mean``            [0, 1]      mean HSV saturation ``(max-min)/max``,
                                                   quantised to 256 levels
143     ``saturation_std``             [0, 0.5]    its standard deviation
144     ``saturation_p95``             [0, 1]      its 95th percentile (nearest rank)
145     ``luma_local_contrast_coarse`` [0, 0.5]    mean std of the 2×-downsampled ``Y`` in 31×31
                                                   windows (large-scale lighting variation)
146     ``dark_channel_mean``          [0, 1]      mean over 16×16 windows (4×4 min-pool, then a
                                                   4×4 minimum) of min(R,G,B)/255 (haze and
                                                   veiling glare raise it)
147     ``highlight_detail``           [0, 0.71]   mean gradient magnitude where ``Y > 0.8``
                                                   (0 if no such pixel; flat highlights = blown)
======  =============================  ==========  ==============================================

The luma standard deviation is not repeated in the lighting block (75–96) because
it *is* ``rms_contrast``.

Gabor energies are computed exactly in the frequency domain: by Parseval, the mean
squared response of a filter with transfer function ``G`` is ``Σ_k P_k |G_k|²`` where
``P = |FFT(Y - mean Y)|² / N²``. Each filter is a Gaussian bump in frequency centred at
``f0 (cos θ, sin θ)`` with standard deviation ``0.35 f0`` (about one octave), which is
separable, so each energy costs one small matrix-vector product after one FFT.

Every value is finite for any image, including 1×1, black, white and flat ones
(flat images give 0 for every gradient, texture, sharpness, noise and contrast
measure). Features are deterministic: the same pixels give the same vector.

Speed
-----
About 26 ms per 512² photo on one core (``bench/reward_speed.py``). What keeps it
there, without changing a value: arrays several families use (luma, its square and
their transposed copies, the Sobel magnitude, the half-plane power spectrum, the
2× luma, the channel minimum) are computed once; ``ndimage`` column passes run
along the rows of a transposed copy (:func:`~services.reward.filters.separable`,
same bits); local statistics reuse a few work arrays, and the blocks are computed
in an order that frees each large array early, because fresh 1 MB arrays cost
their page faults. ``tests/test_feature_reference.py`` pins the vector to values
saved before these changes.

Groups
------
``GROUPS`` partitions the names into the blocks the API reports separately
(``color_histogram``, ``edge_density``, ``texture``, ``lighting``, ``sharpness``,
``noise``, ``colorfulness``, ``contrast``); concatenating them in order gives
``FEATURE_NAMES``. Changing any name, order, constant or the preprocessing
requires a new ``FEATURE_VERSION``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from PIL import Image
from scipy import fft as sfft
from scipy import ndimage, special

from services.reward.edges import canny
from services.reward.filters import second_difference, separable, sobel_magnitude, transpose

FEATURE_VERSION = "classical-v2"
"""Identifies names, order, constants and preprocessing of the classical vector."""

DEFAULT_SIZE = 512

EDGE_THRESHOLD = 0.05
LOCAL_WINDOW = 7
GABOR_SCALES: tuple[tuple[str, float], ...] = (("fine", 0.25), ("coarse", 0.0625))
GABOR_ANGLES_DEG: tuple[int, ...] = (0, 45, 90, 135)
GABOR_RELATIVE_BANDWIDTH = 0.35
LUMA_BINS = 16
DARK_LEVEL = 2
BRIGHT_LEVEL = 253
_MSCN_STATS: tuple[str, ...] = (
    "ggd_shape",
    "ggd_var",
    *(f"{d}_{p}" for d in ("h", "v", "d1", "d2") for p in ("shape", "mean", "lvar", "rvar")),
)
MSCN_SIGMA = 7.0 / 6.0
SPECTRUM_BAND = (0.02, 0.35)
HF_CUTOFF = 0.25
BLOCK = 8
COARSE_WINDOW = 31
DARK_WINDOW = 16
DARK_POOL = 4
HIGHLIGHT_LEVEL = 0.8
_LUMA_WEIGHTS = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)

GROUPS: Mapping[str, tuple[str, ...]] = {
    "color_histogram": tuple(
        f"color_hist_r{r}g{g}b{b}" for r in range(4) for g in range(4) for b in range(4)
    ),
    "edge_density": ("edge_density",),
    "texture": (
        "gradient_mean",
        "local_std_mean",
        *(f"gabor_{scale}_{angle}" for scale, _ in GABOR_SCALES for angle in GABOR_ANGLES_DEG),
    ),
    "lighting": (
        *(f"luma_hist_{i:02d}" for i in range(LUMA_BINS)),
        "luma_mean",
        "luma_p05",
        "luma_p50",
        "luma_p95",
        "clipped_dark",
        "clipped_bright",
    ),
    "sharpness": ("laplacian_var",),
    "noise": ("noise_sigma",),
    "colorfulness": ("colorfulness",),
    "contrast": ("rms_contrast",),
    "canny_edge_density": ("canny_edge_density",),
    "naturalness": tuple(f"mscn_s{scale}_{stat}" for scale in (1, 2) for stat in _MSCN_STATS),
    "multiscale": (
        "laplacian_var_half",
        "spectral_slope",
        "hf_energy_ratio",
        "jpeg_blockiness",
    ),
    "saturation": ("saturation_mean", "saturation_std", "saturation_p95"),
    "regional": (
        "luma_local_contrast_coarse",
        "dark_channel_mean",
        "highlight_detail",
    ),
}
"""Blocks of the vector, in order; one-name blocks are reported as scalars."""

FEATURE_NAMES: tuple[str, ...] = tuple(name for names in GROUPS.values() for name in names)
FEATURE_DIMS = len(FEATURE_NAMES)


@dataclass(frozen=True)
class FeatureVector:
    """One image's features: ``values[i]`` is the feature called ``names[i]``."""

    version: str
    names: tuple[str, ...]
    values: tuple[float, ...]
    layout: Mapping[str, tuple[str, ...]]

    def groups(self) -> dict[str, float | list[float]]:
        """The values split by block; single-feature blocks become plain floats."""
        out: dict[str, float | list[float]] = {}
        start = 0
        for group, names in self.layout.items():
            block = list(self.values[start : start + len(names)])
            out[group] = block[0] if len(names) == 1 else block
            start += len(names)
        return out


class FeatureExtractor(Protocol):
    """Turns an RGB image into a fixed-length, named feature vector.

    Contract:
        * ``version`` names the vector space (names, order, preprocessing): vectors
          with equal versions are comparable, and caches are keyed by it.
        * ``extract`` is pure, deterministic and thread-safe (it is called from
          worker threads, possibly concurrently) and returns finite values.
        * ``extract`` raises ``ValueError`` for an array that is not ``H×W×3 uint8``.
        * ``layout`` splits ``names`` into named blocks, in order.
    """

    version: str
    names: tuple[str, ...]
    layout: Mapping[str, tuple[str, ...]]

    def extract(self, rgb: np.ndarray) -> FeatureVector: ...


class ClassicalExtractor:
    """The classical features of this module, computed at long side ``size``."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        if size < 1:
            raise ValueError("size must be positive")
        self.size = size
        # The working size changes every value, so it is part of the version.
        self.version = f"{FEATURE_VERSION}@{size}"
        self.names = FEATURE_NAMES
        self.layout = GROUPS

    def extract(self, rgb: np.ndarray) -> FeatureVector:
        values = compute_features(rgb, self.size)
        return FeatureVector(self.version, self.names, tuple(values.tolist()), self.layout)


def compute_features(rgb: np.ndarray, size: int = DEFAULT_SIZE) -> np.ndarray:
    """The classical feature vector of ``rgb`` (``H×W×3 uint8``), ``FEATURE_NAMES`` order.

    Raises:
        ValueError: ``rgb`` is not a non-empty ``H×W×3`` ``uint8`` array.
    """
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.size == 0:
        raise ValueError(f"expected a non-empty HxWx3 uint8 array, got {rgb.dtype} {rgb.shape}")
    small = resize_long_side(rgb, size)
    # Blocks are computed in the order that lets each large intermediate array go as
    # soon as its last family is done (fewer fresh pages per image), then assembled
    # in GROUPS order. Arrays several families share are computed once.
    blocks: dict[str, list[float] | np.ndarray] = {}
    channels = small.astype(np.float32)
    luma = channels @ (_LUMA_WEIGHTS / 255.0)
    blocks["colorfulness"] = [_colorfulness(channels)]
    del channels
    blocks["color_histogram"] = _color_histogram(small)
    low = _channel_min(small)
    blocks["saturation"] = _saturation(small, low)
    dark_channel = _dark_channel(low)
    del low

    luma8 = np.rint(luma * 255.0).clip(0, 255).astype(np.uint8)
    blocks["lighting"] = _lighting(luma, luma8)
    del luma8
    blocks["contrast"] = [float(np.std(luma, dtype=np.float64))]

    gradient = sobel_magnitude(luma)
    blocks["edge_density"] = [float(np.mean(gradient > EDGE_THRESHOLD))]
    gradient_mean = float(np.mean(gradient))
    highlight = _highlight_detail(luma, gradient)
    del gradient

    down = second_difference(luma, 0)  # [1 -2 1] down the columns
    laplacian = down + second_difference(luma, 1)
    blocks["sharpness"] = [float(np.var(laplacian, dtype=np.float64))]
    del laplacian
    blocks["noise"] = [_noise_sigma(down)]
    del down

    power = _power_spectrum(luma)
    gabor = _gabor_energies(power)
    spectral = _spectral_shape(power)
    del power

    planes = Planes.of(luma)
    blocks["texture"] = [gradient_mean, _local_std_mean(planes), *gabor]
    mscn_full = _mscn_statistics(planes)
    del planes
    blocks["canny_edge_density"] = [float(np.mean(canny(luma)))]
    blockiness = _blockiness(luma)

    half = Planes.of(_downsample2(luma))
    blocks["naturalness"] = [*mscn_full, *_mscn_statistics(half)]
    blocks["multiscale"] = [
        float(np.var(_laplacian(half.luma), dtype=np.float64)),
        *spectral,
        blockiness,
    ]
    blocks["regional"] = [_coarse_contrast(half), dark_channel, highlight]

    vector = np.concatenate([np.asarray(blocks[group], dtype=np.float64) for group in GROUPS])
    assert vector.shape == (FEATURE_DIMS,)
    return vector


def resize_long_side(rgb: np.ndarray, size: int) -> np.ndarray:
    """Resize (bilinear, antialiased when shrinking) so the long side is ``size``."""
    height, width = rgb.shape[:2]
    scale = size / max(height, width)
    new_w = max(1, round(width * scale))
    new_h = max(1, round(height * scale))
    if (new_w, new_h) == (width, height):
        return rgb
    resized = Image.fromarray(rgb).resize((new_w, new_h), Image.Resampling.BILINEAR)
    return np.asarray(resized)


def _color_histogram(rgb: np.ndarray) -> np.ndarray:
    # Bin index 16 i + 4 j + k < 64 fits in a byte: build it in uint8, count it once.
    index = (rgb[..., 0] >> 6) << 4
    index |= (rgb[..., 1] >> 6) << 2
    index |= rgb[..., 2] >> 6
    counts = np.bincount(index.ravel(), minlength=64)
    return counts / counts.sum()


@dataclass(frozen=True)
class Planes:
    """A luma plane and its square, each also as a transposed contiguous copy.

    The local-variance measures filter both down the columns first, which
    :func:`~services.reward.filters.separable` does on the transposed copies.
    """

    luma: np.ndarray
    square: np.ndarray
    luma_t: np.ndarray
    square_t: np.ndarray

    @classmethod
    def of(cls, luma: np.ndarray) -> Planes:
        luma = luma.astype(np.float32, copy=False)
        luma_t = transpose(luma)
        # Squaring commutes with transposition bit for bit, so square the copy.
        return cls(luma, luma * luma, luma_t, luma_t * luma_t)

    def work(self) -> tuple[np.ndarray, np.ndarray]:
        """Two fresh work arrays, shaped like ``luma_t`` and like ``luma``."""
        return np.empty_like(self.luma_t), np.empty_like(self.luma)


# The local statistics below reuse a few work arrays (``out=``) instead of letting
# every step allocate a fresh 1 MB array: at 512² the page faults of those fresh
# arrays cost as much as the arithmetic. The operations and their order are the
# same as the plain expressions in the comments, so the values are too.


def _local_std(planes: Planes, window: int) -> float:
    """Mean of ``sqrt(max(box(y²) - box(y)², 0))`` with ``box`` a ``window``-px mean."""
    box = functools.partial(ndimage.uniform_filter1d, size=window, mode="reflect")
    work = planes.work()
    mean = separable(planes.luma, box, planes.luma_t, scratch=work)
    mean_sq = separable(planes.square, box, planes.square_t, scratch=work)
    # Rounding can make E[x²] - E[x]² slightly negative on flat regions.
    mean_sq -= np.multiply(mean, mean, out=work[1])
    np.maximum(mean_sq, 0.0, out=mean_sq)
    return float(np.mean(np.sqrt(mean_sq, out=mean_sq)))


def _local_std_mean(planes: Planes) -> float:
    return _local_std(planes, LOCAL_WINDOW)


@dataclass(frozen=True)
class HalfSpectrum:
    """``P = |FFT(Y - mean Y)|² / N²`` on ``rfft2``'s half plane (``H × (W//2 + 1)``).

    The full grid is never built: by Hermitian symmetry ``P(-fy, -fx) = P(fy, fx)``,
    so the full-grid column ``W - j`` is half-plane column ``j`` (``1 ≤ j ≤ mirrored``)
    with its rows mirrored. Sums over the full grid are sums over this plane with
    those columns counted twice.
    """

    power: np.ndarray  # float64
    width: int

    @property
    def mirrored(self) -> int:
        """How many half-plane columns (1, 2, …) also stand for a mirrored column."""
        return self.width - self.power.shape[1]

    def multiplicity(self) -> np.ndarray:
        """How many full-grid cells each half-plane column stands for (1 or 2)."""
        counts = np.ones(self.power.shape[1])
        counts[1 : self.mirrored + 1] = 2.0
        return counts


def _power_spectrum(luma: np.ndarray) -> HalfSpectrum:
    """``|FFT(Y - mean Y)|² / N²``: the power per frequency, summing to ``var(Y)``."""
    height, width = luma.shape
    centred = luma - np.float32(luma.mean())
    spectrum = sfft.rfft2(centred, workers=1)
    power = (spectrum.real**2 + spectrum.imag**2) / float(height * width) ** 2
    return HalfSpectrum(power.astype(np.float64), width)


def _gabor_energies(spectrum: HalfSpectrum) -> list[float]:
    power = spectrum.power
    height, half = power.shape
    fy = sfft.fftfreq(height)
    fx = sfft.fftfreq(spectrum.width)
    # For the mirrored copies: the row and the full-grid column each one lands in.
    mirror_rows = (-np.arange(height)) % height
    mirror_cols = spectrum.width - np.arange(1, spectrum.mirrored + 1)
    mirrored = power[:, 1 : spectrum.mirrored + 1]
    energies = []
    for _, f0 in GABOR_SCALES:
        sigma = GABOR_RELATIVE_BANDWIDTH * f0
        for angle in GABOR_ANGLES_DEG:
            theta = np.deg2rad(angle)
            gx = np.exp(-((fx - f0 * np.cos(theta)) ** 2) / (2 * sigma**2)) ** 2
            gy = np.exp(-((fy - f0 * np.sin(theta)) ** 2) / (2 * sigma**2)) ** 2
            # |G|² = gy² ⊗ gx²: separable, so Σ P |G|² is a pair of dot products.
            energy = gy @ power @ gx[:half]
            if spectrum.mirrored:
                energy += gy[mirror_rows] @ mirrored @ gx[mirror_cols]
            energies.append(float(energy))
    return energies


def _lighting(luma: np.ndarray, luma8: np.ndarray) -> np.ndarray:
    counts = np.bincount(luma8.ravel(), minlength=256).astype(np.float64)
    fractions = counts / counts.sum()
    histogram = fractions.reshape(LUMA_BINS, 256 // LUMA_BINS).sum(axis=1)
    cdf = np.cumsum(fractions)
    # Nearest-rank percentiles on the 256-level histogram: exact at 1/255 resolution.
    percentiles = [np.searchsorted(cdf, q - 1e-12) / 255.0 for q in (0.05, 0.50, 0.95)]
    return np.concatenate(
        [
            histogram,
            [float(np.mean(luma, dtype=np.float64))],
            percentiles,
            [fractions[: DARK_LEVEL + 1].sum(), fractions[BRIGHT_LEVEL:].sum()],
        ]
    )


def _laplacian(image: np.ndarray) -> np.ndarray:
    return second_difference(image, 0) + second_difference(image, 1)


def _noise_sigma(down: np.ndarray) -> float:
    """Noise std from ``down``, the luma's second difference down the columns."""
    residual = second_difference(down, 1)  # Immerkær's mask M
    return float(1.4826 * _median_abs(residual) / 6.0)


def _median_abs(values: np.ndarray) -> np.float32:
    """``np.median(np.abs(values))`` for float32 ``values``, equal to it bit for bit.

    A radix selection: the bit patterns of non-negative float32 numbers sort like the
    numbers, so one histogram of their top 16 bits finds the bucket that holds each
    middle order statistic, and only that bucket (a few hundred values) is
    partitioned. Costs about a third of a full partition of the image.
    """
    magnitude = np.abs(values.ravel())
    n = magnitude.size
    bits = magnitude.view(np.uint32)
    top = bits >> 16
    cdf = np.cumsum(np.bincount(top, minlength=1 << 15))
    ranks = (n // 2,) if n % 2 else (n // 2 - 1, n // 2)
    middle = []
    for rank in ranks:
        bucket = int(np.searchsorted(cdf, rank, side="right"))
        before = int(cdf[bucket - 1]) if bucket else 0
        members = magnitude[top == bucket]
        middle.append(np.partition(members, rank - before)[rank - before])
    # np.median averages the two middle values in float32, like this.
    return np.mean(np.array(middle, dtype=np.float32))


def _colorfulness(channels: np.ndarray) -> float:
    red, green, blue = channels[..., 0], channels[..., 1], channels[..., 2]
    rg = red - green
    yb = 0.5 * (red + green) - blue
    spread = np.hypot(np.std(rg, dtype=np.float64), np.std(yb, dtype=np.float64))
    centre = np.hypot(np.mean(rg, dtype=np.float64), np.mean(yb, dtype=np.float64))
    return float(spread + 0.3 * centre)


def _downsample2(luma: np.ndarray) -> np.ndarray:
    """2× area-mean downsampling (odd last row/column dropped; 1-px images kept)."""
    height, width = luma.shape
    h2, w2 = height // 2, width // 2
    if h2 == 0 or w2 == 0:
        return luma
    trimmed = luma[: 2 * h2, : 2 * w2]
    if w2 < 2:
        return trimmed.reshape(h2, 2, w2, 2).mean(axis=(1, 3))
    # Strided sums in the order numpy's mean over the 2×2 blocks adds them (the same
    # float32 result), without its slow reduction over two small axes.
    top = trimmed[0::2, 0::2] + trimmed[0::2, 1::2]
    top += trimmed[1::2, 0::2] + trimmed[1::2, 1::2]
    top *= np.float32(0.25)
    return top


def _ratio_table(lo: float = 0.2, hi: float = 10.0, step: float = 0.001) -> tuple[np.ndarray, ...]:
    shapes = np.arange(lo, hi, step)
    g1, g2, g3 = special.gamma(1 / shapes), special.gamma(2 / shapes), special.gamma(3 / shapes)
    # ρ(α) = Γ(2/α)² / (Γ(1/α) Γ(3/α)) = E|x|² / E[x²] for a GGD of shape α (increasing).
    return shapes, g2 * g2 / (g1 * g3), g1, g2, g3


_SHAPES, _RHO, _G1, _G2, _G3 = _ratio_table()


def _shape_from_ratio(rho: float) -> int:
    index = int(np.searchsorted(_RHO, rho))
    return min(max(index, 0), len(_SHAPES) - 1)


def _mscn_statistics(planes: Planes) -> list[float]:
    """BRISQUE's 18 statistics of the MSCN coefficients of ``planes.luma`` (see the table)."""
    y = planes.luma
    # scipy's filter on purpose (run by ``separable``, which gives the same bits as
    # ``ndimage.gaussian_filter``): in float32, E[y²] - E[y]² cancels on flat regions,
    # and these statistics amplify even a rounding-level change there.
    blur = functools.partial(ndimage.gaussian_filter1d, sigma=MSCN_SIGMA, truncate=3)
    work = planes.work()
    mu = separable(y, blur, planes.luma_t, scratch=work)
    var = separable(planes.square, blur, planes.square_t, scratch=work)
    # m = (y - mu) / (sqrt(max(var - mu², 0)) + 1/255)
    var -= np.multiply(mu, mu, out=work[1])
    np.maximum(var, 0.0, out=var)
    np.sqrt(var, out=var)
    var += np.float32(1 / 255)
    m = np.subtract(y, mu, out=mu)
    m /= var
    out = list(_ggd(m))
    if m.shape[0] < 2 or m.shape[1] < 2:
        return out + [2.0, 0.0, 0.0, 0.0] * 4
    products, negatives = var.ravel(), work[1].ravel()  # free again: reuse them
    for a, b in (
        (m[:, :-1], m[:, 1:]),
        (m[:-1, :], m[1:, :]),
        (m[:-1, :-1], m[1:, 1:]),
        (m[:-1, 1:], m[1:, :-1]),
    ):
        product = np.multiply(a, b, out=products[: a.size].reshape(a.shape))
        out.extend(_aggd(product.ravel(), negatives[: a.size]))
    return out


def _ggd(x: np.ndarray) -> tuple[float, float]:
    """Shape and variance of a zero-mean generalised Gaussian fitted by moments."""
    flat = x.ravel()
    second = float(np.dot(flat, flat)) / flat.size
    if second <= 1e-12:
        return 2.0, 0.0
    first = float(np.abs(flat).sum(dtype=np.float64)) / flat.size
    return float(_SHAPES[_shape_from_ratio(first * first / second)]), second


def _aggd(x: np.ndarray, work: np.ndarray | None = None) -> list[float]:
    """Shape, mean, left and right variance of an asymmetric GGD fitted by moments.

    ``work``, if given, is a scratch array of ``x.size`` elements of ``x``'s dtype.
    """
    flat = x.ravel()
    negative = np.minimum(flat, 0, out=work)
    n_left = int(np.count_nonzero(flat < 0))
    n_right = flat.size - n_left
    total_sq = float(np.dot(flat, flat))
    left_sq = float(np.dot(negative, negative))
    left_var = left_sq / n_left if n_left else 0.0
    right_var = (total_sq - left_sq) / n_right if n_right else 0.0
    second = total_sq / flat.size
    if second <= 1e-12 or left_var <= 0 or right_var <= 0:
        return [2.0, 0.0, left_var, right_var]
    gamma = np.sqrt(left_var / right_var)
    first = float(np.abs(flat).sum(dtype=np.float64)) / flat.size
    rho = first * first / second
    rho_norm = rho * (gamma**3 + 1) * (gamma + 1) / (gamma**2 + 1) ** 2
    i = _shape_from_ratio(rho_norm)
    scale = _G2[i] / _G1[i] * np.sqrt(_G1[i] / _G3[i])
    mean = (np.sqrt(right_var) - np.sqrt(left_var)) * scale
    return [float(_SHAPES[i]), float(mean), left_var, right_var]


_SPECTRUM_BINS = 12


@functools.lru_cache(maxsize=8)
def _radial_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For one half-plane spectrum shape: multiplicity per column, high-frequency mask,
    band-bin index (the overflow bin outside the band) and full-grid counts per bin."""
    half = width // 2 + 1
    multiplicity = HalfSpectrum(np.zeros((0, half)), width).multiplicity()
    fy = sfft.fftfreq(height)[:, None]
    fx = sfft.fftfreq(width)[None, :half]
    radius = np.sqrt(fy * fy + fx * fx)
    edges = np.linspace(np.log(SPECTRUM_BAND[0]), np.log(SPECTRUM_BAND[1]), _SPECTRUM_BINS + 1)
    with np.errstate(divide="ignore"):
        which = np.digitize(np.log(radius), edges) - 1
    which[(which < 0) | (which >= _SPECTRUM_BINS)] = _SPECTRUM_BINS  # overflow bin
    weights = np.broadcast_to(multiplicity, which.shape).ravel()
    counts = np.bincount(which.ravel(), weights=weights, minlength=_SPECTRUM_BINS + 1)
    counts = counts[:_SPECTRUM_BINS]
    high = radius > HF_CUTOFF
    for array in (multiplicity, high, which, counts):
        array.setflags(write=False)
    return multiplicity, high, which.ravel(), counts


def _spectral_shape(spectrum: HalfSpectrum) -> tuple[float, float]:
    """Log-log slope of the radial power spectrum, and the high-frequency share."""
    height, width = spectrum.power.shape[0], spectrum.width
    multiplicity, high, which, counts = _radial_grid(height, width)
    weighted = spectrum.power * multiplicity  # each full-grid cell once
    total = float(weighted.sum())
    if total <= 1e-15 or min(height, width) < 8:
        return 0.0, 0.0
    hf = float(weighted[high].sum()) / total
    sums = np.bincount(which, weights=weighted.ravel(), minlength=_SPECTRUM_BINS + 1)
    sums = sums[:_SPECTRUM_BINS]
    ok = (counts > 0) & (sums > 0)
    if ok.sum() < 3:
        return 0.0, hf
    bins = np.linspace(np.log(SPECTRUM_BAND[0]), np.log(SPECTRUM_BAND[1]), _SPECTRUM_BINS + 1)
    centres = 0.5 * (bins[:-1] + bins[1:])
    slope = float(np.polyfit(centres[ok], np.log(sums[ok] / counts[ok]), 1)[0])
    return slope, hf


def _blockiness(luma: np.ndarray) -> float:
    """Mean luma step across 8-px block boundaries over the mean step elsewhere."""
    dx = np.abs(np.diff(luma, axis=1))
    dy = np.abs(np.diff(luma, axis=0))
    if dx.shape[1] < 2 * BLOCK or dy.shape[0] < 2 * BLOCK:
        return 1.0
    on_x = np.zeros(dx.shape[1], dtype=bool)
    on_x[BLOCK - 1 :: BLOCK] = True
    on_y = np.zeros(dy.shape[0], dtype=bool)
    on_y[BLOCK - 1 :: BLOCK] = True
    col_means = dx.mean(axis=0)
    row_means = dy.mean(axis=1)
    boundary = col_means[on_x].mean() + row_means[on_y].mean()
    inside = col_means[~on_x].mean() + row_means[~on_y].mean()
    if inside <= 1e-9:
        return 1.0
    return float(boundary / inside)


def _saturation(rgb: np.ndarray, low: np.ndarray) -> list[float]:
    """Saturation statistics of ``rgb``, whose per-pixel channel minimum is ``low``."""
    # Quantised to 256 levels so the statistics come from one bincount.
    high = _channel_max(rgb)
    spread = (high - low).astype(np.uint16) * 255
    sat8 = spread // np.maximum(high, 1)
    counts = np.bincount(sat8.ravel(), minlength=256).astype(np.float64)
    fractions = counts / counts.sum()
    levels = np.arange(256) / 255.0
    mean = float(fractions @ levels)
    std = float(np.sqrt(max(float(fractions @ (levels - mean) ** 2), 0.0)))
    p95 = float(np.searchsorted(np.cumsum(fractions), 0.95 - 1e-12) / 255.0)
    return [mean, std, p95]


def _coarse_contrast(half: Planes) -> float:
    # On the 2×-downsampled luma: a 31-px window there spans about 62 working pixels.
    return _local_std(half, COARSE_WINDOW)


def _dark_channel(dark: np.ndarray) -> float:
    """Dark-channel mean from ``dark``, the per-pixel minimum of R, G and B."""
    height, width = dark.shape
    if height >= 2 * DARK_POOL and width >= 2 * DARK_POOL:
        # Min-pool 4×4, then a 4×4 minimum: a 16-px window at a sixteenth of the cost.
        # The pool takes the minimum of strided views (rows, then columns): exact, and
        # much faster than a reduction over two short axes.
        h, w = height // DARK_POOL, width // DARK_POOL
        trimmed = dark[: h * DARK_POOL, : w * DARK_POOL]
        rows = functools.reduce(np.minimum, (trimmed[k::DARK_POOL] for k in range(DARK_POOL)))
        dark = functools.reduce(np.minimum, (rows[:, k::DARK_POOL] for k in range(DARK_POOL)))
        window = DARK_WINDOW // DARK_POOL
    else:
        window = DARK_WINDOW
    return float(ndimage.minimum_filter(dark, window, mode="nearest").mean() / 255.0)


def _highlight_detail(luma: np.ndarray, gradient: np.ndarray) -> float:
    bright = luma > HIGHLIGHT_LEVEL
    if not bright.any():
        return 0.0
    return float(gradient[bright].mean())


def _channel_max(rgb: np.ndarray) -> np.ndarray:
    # Element-wise over three planes: much faster than a reduction over the last axis.
    result: np.ndarray = np.maximum(np.maximum(rgb[..., 0], rgb[..., 1]), rgb[..., 2])
    return result


def _channel_min(rgb: np.ndarray) -> np.ndarray:
    result: np.ndarray = np.minimum(np.minimum(rgb[..., 0], rgb[..., 1]), rgb[..., 2])
    return result
