"""Known answers for Canny edges and the structure-preservation block."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageFilter

from services.common.testing import make_test_image
from services.reward.edges import canny, edge_f1
from services.reward.structure import (
    NO_ORIGINAL,
    STRUCTURE_DIMS,
    STRUCTURE_NAMES,
    prepare_reference,
    ssim,
    structure_features,
)


def room(w: int = 320, h: int = 240, seed: int = 0) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(make_test_image(w, h, seed=seed))).convert("RGB"))


def test_canny_finds_one_thin_line_on_a_step() -> None:
    luma = np.zeros((64, 64), np.float32)
    luma[:, 32:] = 1.0
    edges = canny(luma)
    columns = np.flatnonzero(edges.any(axis=0))
    assert set(columns) <= {31, 32}  # non-maximum suppression keeps it thin
    assert edges[5:-5].sum(axis=1).max() <= 2
    assert edges[5:-5].any(axis=1).all()  # and continuous along the step


def test_canny_ignores_flat_and_faint_images() -> None:
    assert not canny(np.full((32, 32), 0.5, np.float32)).any()
    faint = np.zeros((64, 64), np.float32)
    faint[:, 32:] = 0.01  # a step far below the low threshold
    assert not canny(faint).any()


def test_edge_f1_tolerance_and_empty_maps() -> None:
    a = np.zeros((20, 20), bool)
    a[:, 10] = True
    shifted = np.roll(a, 1, axis=1)
    far = np.roll(a, 5, axis=1)
    assert edge_f1(a, a) == 1.0
    assert edge_f1(shifted, a) == 1.0  # within the 1-px tolerance
    assert edge_f1(far, a) == 0.0
    empty = np.zeros_like(a)
    assert edge_f1(empty, empty) == 1.0
    assert edge_f1(empty, a) == 0.0


def test_ssim_identity_and_degradation() -> None:
    y = room().astype(np.float32).mean(axis=2) / 255
    assert ssim(y, y) == pytest.approx(1.0, abs=1e-6)
    noisy = np.clip(y + np.random.default_rng(0).normal(0, 0.1, y.shape), 0, 1).astype(np.float32)
    assert ssim(noisy, y) < 0.7


def test_structure_block_orders_candidates_sensibly() -> None:
    original = room(seed=1)
    ref = prepare_reference(original)
    same = structure_features(original, ref)
    assert same == pytest.approx((1.0, 1.0, 1.0, 0.0, 0.0), abs=1e-6)
    relit = np.clip(original.astype(int) + 25, 0, 255).astype(np.uint8)
    blurred = np.asarray(Image.fromarray(original).filter(ImageFilter.GaussianBlur(2)))
    recoloured = original[..., ::-1].copy()  # swap red and blue: colours changed
    flipped = original[:, ::-1].copy()  # layout changed
    by_name = {
        name: dict(zip(STRUCTURE_NAMES, structure_features(img, ref), strict=True))
        for name, img in (
            ("relit", relit),
            ("blurred", blurred),
            ("recoloured", recoloured),
            ("flipped", flipped),
        )
    }
    assert by_name["relit"]["edge_f1"] > 0.9 and by_name["relit"]["luma_shift"] > 0.05
    assert by_name["recoloured"]["chroma_shift"] > 5 * by_name["relit"]["chroma_shift"]
    assert by_name["flipped"]["edge_f1"] < by_name["blurred"]["edge_f1"] < 1.0
    assert by_name["flipped"]["ssim"] < by_name["relit"]["ssim"]


def test_candidate_of_other_size_is_compared_on_the_original_canvas() -> None:
    original = room(320, 240, seed=2)
    bigger = np.asarray(Image.fromarray(original).resize((640, 480), Image.Resampling.BILINEAR))
    values = structure_features(bigger, prepare_reference(original))
    assert len(values) == STRUCTURE_DIMS and values[0] == 1.0
    assert values[2] > 0.8  # same layout after resizing


def test_no_original_block_is_all_zero() -> None:
    assert NO_ORIGINAL == (0.0,) * STRUCTURE_DIMS
    with pytest.raises(ValueError):
        prepare_reference(np.zeros((4, 4), np.uint8))
