"""Known-answer tests of the classical feature vector."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageFilter
from scipy import ndimage

from services.common.testing import make_test_image
from services.reward.features import (
    FEATURE_DIMS,
    FEATURE_NAMES,
    FEATURE_VERSION,
    GABOR_ANGLES_DEG,
    GABOR_RELATIVE_BANDWIDTH,
    GABOR_SCALES,
    GROUPS,
    HF_CUTOFF,
    ClassicalExtractor,
    _downsample2,
    _gabor_energies,
    _median_abs,
    _power_spectrum,
    _spectral_shape,
    compute_features,
)

IDX = {name: i for i, name in enumerate(FEATURE_NAMES)}


def room(size: int = 512, seed: int = 0) -> np.ndarray:
    data = make_test_image(size, size, seed=seed)
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def flat(value: int | tuple[int, int, int], height: int = 64, width: int = 64) -> np.ndarray:
    rgb = np.zeros((height, width, 3), dtype=np.uint8)
    rgb[...] = value
    return rgb


def feature(rgb: np.ndarray, name: str) -> float:
    return float(compute_features(rgb)[IDX[name]])


def test_names_dims_and_groups_agree() -> None:
    vector = compute_features(room())
    assert vector.shape == (FEATURE_DIMS,) == (len(FEATURE_NAMES),)
    assert len(set(FEATURE_NAMES)) == FEATURE_DIMS
    assert tuple(n for names in GROUPS.values() for n in names) == FEATURE_NAMES
    assert list(GROUPS) == [
        "color_histogram",
        "edge_density",
        "texture",
        "lighting",
        "sharpness",
        "noise",
        "colorfulness",
        "contrast",
        "canny_edge_density",
        "naturalness",
        "multiscale",
        "saturation",
        "regional",
    ]
    assert len(GROUPS["color_histogram"]) == 64


def test_extractor_groups_split_the_vector_in_order() -> None:
    vector = ClassicalExtractor().extract(room())
    groups = vector.groups()
    flat_values: list[float] = []
    for name in GROUPS:
        block = groups[name]
        flat_values.extend(block if isinstance(block, list) else [block])
    assert flat_values == list(vector.values)
    assert isinstance(groups["edge_density"], float)
    assert isinstance(groups["texture"], list)
    assert vector.version == f"{FEATURE_VERSION}@512"


def test_deterministic() -> None:
    image = room(seed=4)
    first = compute_features(image)
    second = compute_features(image.copy())
    assert np.array_equal(first, second)


def test_different_images_differ() -> None:
    assert not np.array_equal(compute_features(room(seed=1)), compute_features(room(seed=2)))


def test_flat_grey_has_no_edges_texture_noise_or_colour() -> None:
    vector = compute_features(flat(128))
    for name in (
        "edge_density",
        "gradient_mean",
        "local_std_mean",
        "laplacian_var",
        "noise_sigma",
        "colorfulness",
        "rms_contrast",
    ):
        assert vector[IDX[name]] == pytest.approx(0.0, abs=1e-9), name
    for name in GROUPS["texture"]:
        assert vector[IDX[name]] == pytest.approx(0.0, abs=1e-9), name
    # 128 is level 2 on every channel: joint bin (2, 2, 2).
    assert vector[IDX["color_hist_r2g2b2"]] == 1.0
    assert vector[IDX["luma_mean"]] == pytest.approx(128 / 255, abs=1e-6)
    assert vector[IDX["luma_p05"]] == vector[IDX["luma_p95"]] == pytest.approx(128 / 255)


def test_checkerboard_has_high_edge_density() -> None:
    y, x = np.mgrid[0:512, 0:512]
    board = (((y // 8) + (x // 8)) % 2 * 255).astype(np.uint8)
    rgb = np.repeat(board[..., None], 3, axis=2)
    density = feature(rgb, "edge_density")
    # Pixels next to a boundary: 1 - (6/8)² ≈ 0.44 of the image.
    assert density > 0.4
    assert density > 10 * feature(room(), "edge_density")


def test_brighter_image_has_higher_mean_luminance() -> None:
    base = room()
    brighter = np.clip(base.astype(int) + 40, 0, 255).astype(np.uint8)
    assert feature(brighter, "luma_mean") > feature(base, "luma_mean") + 0.1
    assert feature(brighter, "luma_p50") > feature(base, "luma_p50")


def test_blur_lowers_sharpness() -> None:
    base = room()
    blurred = ndimage.gaussian_filter(base, sigma=(2, 2, 0))
    assert feature(blurred, "laplacian_var") < 0.5 * feature(base, "laplacian_var")


def test_noise_estimate_recovers_known_sigma() -> None:
    rng = np.random.default_rng(0)
    sigma = 8.0
    grey = 128 + rng.normal(0, sigma, (512, 512))
    rgb = np.repeat(np.clip(np.rint(grey), 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    assert feature(rgb, "noise_sigma") == pytest.approx(sigma / 255, rel=0.1)
    assert feature(flat(128, 512, 512), "noise_sigma") == 0.0


def test_colorfulness_of_a_uniform_colour_is_the_paper_formula() -> None:
    # σ = 0, so colourfulness = 0.3 · √(rg² + yb²) with rg = 150, yb = 75.
    assert feature(flat((200, 50, 50)), "colorfulness") == pytest.approx(
        0.3 * np.hypot(150, 75), rel=1e-5
    )


def test_half_black_half_white_contrast_and_clipping() -> None:
    rgb = np.zeros((512, 512, 3), dtype=np.uint8)
    rgb[:, 256:] = 255
    vector = compute_features(rgb)
    assert vector[IDX["rms_contrast"]] == pytest.approx(0.5, abs=1e-4)
    assert vector[IDX["clipped_dark"]] == pytest.approx(0.5, abs=0.01)
    assert vector[IDX["clipped_bright"]] == pytest.approx(0.5, abs=0.01)
    assert vector[IDX["luma_p05"]] == 0.0
    assert vector[IDX["luma_p95"]] == 1.0


def test_histograms_are_distributions() -> None:
    vector = compute_features(room())
    for group in ("color_histogram",):
        block = [vector[IDX[n]] for n in GROUPS[group]]
        assert sum(block) == pytest.approx(1.0)
    luma_hist = [vector[IDX[f"luma_hist_{i:02d}"]] for i in range(16)]
    assert sum(luma_hist) == pytest.approx(1.0)
    assert vector[IDX["luma_p05"]] <= vector[IDX["luma_p50"]] <= vector[IDX["luma_p95"]]


@pytest.mark.parametrize("period, scale", [(4, "fine"), (16, "coarse")])
def test_gabor_energy_follows_stripe_orientation_and_scale(period: int, scale: str) -> None:
    x = np.arange(512)
    wave = (127.5 + 100 * np.cos(2 * np.pi * x / period)).astype(np.uint8)
    vertical = np.repeat(np.tile(wave, (512, 1))[..., None], 3, axis=2)  # varies along x
    horizontal = vertical.transpose(1, 0, 2).copy()  # varies along y
    other = "coarse" if scale == "fine" else "fine"
    v = compute_features(vertical)
    h = compute_features(horizontal)
    assert v[IDX[f"gabor_{scale}_0"]] > 100 * v[IDX[f"gabor_{scale}_90"]]
    assert h[IDX[f"gabor_{scale}_90"]] > 100 * h[IDX[f"gabor_{scale}_0"]]
    assert v[IDX[f"gabor_{scale}_0"]] > 20 * v[IDX[f"gabor_{other}_0"]]


@pytest.mark.parametrize(
    "rgb",
    [
        flat(0),
        flat(255),
        flat(0, 1, 1),
        flat((255, 0, 0), 1, 1),
        flat(255, 1, 3000),
        flat(0, 2000, 3),
        np.random.default_rng(0).integers(0, 256, (300, 200, 3), dtype=np.uint8),
    ],
    ids=["black", "white", "1x1", "red-1x1", "1x3000", "2000x3", "random"],
)
def test_finite_and_in_range_on_extreme_images(rgb: np.ndarray) -> None:
    vector = compute_features(rgb)
    assert vector.shape == (FEATURE_DIMS,)
    assert np.all(np.isfinite(vector))
    # Only the spectral slope and the AGGD means are signed.
    signed = [
        i
        for i, n in enumerate(FEATURE_NAMES)
        if n == "spectral_slope" or n.endswith("_mean") and n.startswith("mscn")
    ]
    unsigned = np.delete(vector, signed)
    assert np.all(unsigned >= 0)


def test_black_and_white_are_fully_clipped() -> None:
    assert feature(flat(0), "clipped_dark") == 1.0
    assert feature(flat(255), "clipped_bright") == 1.0
    assert feature(flat(0), "luma_mean") == 0.0
    assert feature(flat(255), "luma_mean") == pytest.approx(1.0)


def test_working_size_is_part_of_the_version() -> None:
    small = ClassicalExtractor(size=64)
    assert small.version != ClassicalExtractor().version
    assert len(small.extract(room()).values) == FEATURE_DIMS


@pytest.mark.parametrize(
    "bad",
    [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32), np.zeros((0, 4, 3), np.uint8)],
)
def test_rejects_arrays_that_are_not_rgb_uint8(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        compute_features(bad)


def test_v1_prefix_is_unchanged() -> None:
    # classical-v2 only appends: the first 101 names are the classical-v1 vector.
    assert FEATURE_NAMES[0] == "color_hist_r0g0b0" and FEATURE_NAMES[100] == "rms_contrast"
    assert FEATURE_DIMS == 148 and FEATURE_VERSION == "classical-v2"


def test_canny_density_grows_with_detail_and_is_zero_when_flat() -> None:
    assert feature(flat(128), "canny_edge_density") == 0.0
    stripes = flat(0, 128, 128)
    stripes[:, ::16] = 255
    stripes[:, 1::16] = 255
    assert feature(stripes, "canny_edge_density") > feature(room(), "canny_edge_density") > 0


def test_blur_lowers_sharpness_and_steepens_the_spectrum() -> None:
    sharp = room(seed=3)
    blurred = np.asarray(Image.fromarray(sharp).filter(ImageFilter.GaussianBlur(3)))
    assert feature(blurred, "laplacian_var_half") < feature(sharp, "laplacian_var_half")
    assert feature(blurred, "spectral_slope") < feature(sharp, "spectral_slope")
    assert feature(blurred, "hf_energy_ratio") < feature(sharp, "hf_energy_ratio")


def test_ggd_and_aggd_fits_recover_known_shapes() -> None:
    from services.reward.features import _aggd, _ggd

    rng = np.random.default_rng(0)
    gaussian = rng.normal(0, 0.5, 200_000).astype(np.float32)
    laplacian = rng.laplace(0, 1.0, 200_000).astype(np.float32)
    assert _ggd(gaussian)[0] == pytest.approx(2.0, abs=0.05)
    assert _ggd(gaussian)[1] == pytest.approx(0.25, rel=0.02)
    assert _ggd(laplacian)[0] == pytest.approx(1.0, abs=0.05)
    shape, mean, left, right = _aggd(gaussian)
    assert shape == pytest.approx(2.0, abs=0.05) and abs(mean) < 0.01
    assert left == pytest.approx(right, rel=0.03)
    skewed = np.where(gaussian < 0, gaussian, 3 * gaussian)
    assert _aggd(skewed)[1] > 0.3  # heavier right side: positive mean


def test_saturation_of_grey_and_pure_colour() -> None:
    assert feature(flat(90), "saturation_mean") == 0.0
    assert feature(flat((255, 0, 0)), "saturation_mean") == pytest.approx(1.0)
    assert feature(flat((255, 0, 0)), "saturation_p95") == pytest.approx(1.0)


def test_jpeg_blocking_raises_blockiness() -> None:
    rgb = room(seed=5)
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="JPEG", quality=5)
    blocky = np.asarray(Image.open(io.BytesIO(out.getvalue())).convert("RGB"))
    assert feature(blocky, "jpeg_blockiness") > feature(rgb, "jpeg_blockiness") + 0.2


@pytest.mark.parametrize("n", [1, 2, 7, 1000, 1001, 65536])
def test_radix_median_equals_numpys_median_bit_for_bit(n: int) -> None:
    rng = np.random.default_rng(n)
    values = (rng.normal(size=n) * rng.choice([1e-6, 1.0, 100.0], size=n)).astype(np.float32)
    values[: n // 3] = np.round(values[: n // 3], 1)  # ties
    values[: n // 10] = 0.0
    assert _median_abs(values) == np.median(np.abs(values))
    assert _median_abs(np.zeros(n, np.float32)) == 0.0


@pytest.mark.parametrize("shape", [(512, 512), (341, 512), (7, 9), (33, 2), (3, 3), (1, 4)])
def test_strided_downsample_equals_the_block_mean(shape: tuple[int, int]) -> None:
    luma = np.random.default_rng(5).random(shape).astype(np.float32)
    h2, w2 = shape[0] // 2, shape[1] // 2
    if h2 == 0 or w2 == 0:
        assert _downsample2(luma) is luma
        return
    expected = luma[: 2 * h2, : 2 * w2].reshape(h2, 2, w2, 2).mean(axis=(1, 3))
    assert np.array_equal(_downsample2(luma), expected)


@pytest.mark.parametrize("shape", [(64, 64), (48, 33), (31, 40), (9, 1)])
def test_half_plane_spectrum_gives_the_full_grid_sums(shape: tuple[int, int]) -> None:
    # Gabor energies and the radial statistics, computed here on the full FFT grid
    # directly, equal the ones computed on rfft2's half plane with mirrored columns.
    luma = np.random.default_rng(6).random(shape).astype(np.float32)
    luma += np.linspace(0, 1, shape[1], dtype=np.float32)  # some low-frequency power
    height, width = shape
    spectrum = np.fft.fft2(luma - np.float32(luma.mean()))
    power = np.abs(spectrum) ** 2 / float(height * width) ** 2
    fy, fx = np.fft.fftfreq(height), np.fft.fftfreq(width)
    expected = []
    for _, f0 in GABOR_SCALES:
        sigma = GABOR_RELATIVE_BANDWIDTH * f0
        for angle in GABOR_ANGLES_DEG:
            theta = np.deg2rad(angle)
            gx = np.exp(-((fx - f0 * np.cos(theta)) ** 2) / (2 * sigma**2)) ** 2
            gy = np.exp(-((fy - f0 * np.sin(theta)) ** 2) / (2 * sigma**2)) ** 2
            expected.append(float(gy @ power @ gx))
    half = _power_spectrum(luma)
    assert half.power.shape == (height, width // 2 + 1)
    np.testing.assert_allclose(_gabor_energies(half), expected, rtol=1e-5, atol=1e-12)
    radius = np.hypot(fy[:, None], fx[None, :])
    hf = power[radius > HF_CUTOFF].sum() / power.sum()
    assert _spectral_shape(half)[1] == pytest.approx(hf if min(shape) >= 8 else 0.0, rel=1e-5)
