"""Speed work must not change the model's inputs: features equal saved reference values.

``data/feature_reference/reference.json`` holds the classical feature vectors and the
structure blocks that the implementation *before* the speed work (commit 502eec3,
``classical-v2``) computed for:

* four real photographs of the BIQ2021 development subset (``*.jpg`` beside it: the
  lowest-rated photo of each sub-collection and the one that is not square and
  smaller than the working size, so it is enlarged);
* a few synthetic images built from integer formulas below (large and non-square, so
  it is shrunk; flat; tiny; an 8-px block grid with blown highlights and crushed
  shadows);
* the structure block of each real photo, and of a synthetic image, against the first
  photo as the original.

A deliberate change of what a feature means needs a new ``FEATURE_VERSION`` and new
reference values (``python -m services.reward.tests.test_feature_reference --write``
refuses to overwrite them; delete the file first, on purpose).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from services.common.images import decode_image
from services.reward.features import FEATURE_NAMES, FEATURE_VERSION, compute_features
from services.reward.structure import STRUCTURE_NAMES, prepare_reference, structure_features

DATA = Path(__file__).parent / "data" / "feature_reference"
REFERENCE = DATA / "reference.json"
PHOTOS = ("ss01_0693.jpg", "ss02_1671.jpg", "ss03_7226.jpg", "ss02_1947.jpg")

# Rounding-level differences only: float32 images, float64 statistics.
RTOL = 1e-5
ATOL = 1e-7


def photo(name: str) -> np.ndarray:
    data = (DATA / name).read_bytes()
    return decode_image(data, max_bytes=1 << 24, max_pixels=1 << 24).to_array()


def synthetic() -> dict[str, np.ndarray]:
    """Deterministic test images from integer arithmetic (no RNG, no codec)."""
    y, x = np.mgrid[0:700, 0:1050]
    large = np.stack([(x * 7 + y * 3) % 256, (y * 5) % 256, ((x * y) >> 7) % 256], axis=-1).astype(
        np.uint8
    )
    large[100:300, 200:500] = (90, 120, 60)  # a flat patch
    large[400:500, 600:900] = 255  # blown highlight

    flat = np.full((64, 64, 3), 128, dtype=np.uint8)
    tiny = np.array(
        [[[10, 20, 30], [200, 100, 50], [0, 0, 0], [255, 255, 255], [90, 90, 90]]] * 3,
        dtype=np.uint8,
    )

    by, bx = np.mgrid[0:512, 0:512]
    shade = (bx // 8 * 5 + by // 8 * 3) % 256
    blocks = np.stack([shade, (shade * 3) % 256, 255 - shade], axis=-1).astype(np.uint8)
    blocks[:64] = 0
    blocks[-64:] = 255
    return {"large": large, "flat": flat, "tiny": tiny, "blocks": blocks}


def compute_all() -> dict[str, object]:
    """Every value the reference file pins, computed by the current implementation."""
    images = {name: photo(name) for name in PHOTOS} | synthetic()
    original = prepare_reference(images[PHOTOS[0]])
    return {
        "feature_version": FEATURE_VERSION,
        "feature_names": list(FEATURE_NAMES),
        "structure_names": list(STRUCTURE_NAMES),
        "features": {name: compute_features(rgb).tolist() for name, rgb in images.items()},
        "structure": {
            name: list(structure_features(images[name], original)) for name in (*PHOTOS, "large")
        },
    }


@pytest.fixture(scope="module")
def reference() -> dict[str, object]:
    saved: dict[str, object] = json.loads(REFERENCE.read_text())
    return saved


@pytest.fixture(scope="module")
def current() -> dict[str, object]:
    return compute_all()


def test_reference_describes_this_feature_space(reference: dict[str, object]) -> None:
    assert reference["feature_version"] == FEATURE_VERSION
    assert reference["feature_names"] == list(FEATURE_NAMES)
    assert reference["structure_names"] == list(STRUCTURE_NAMES)


@pytest.mark.parametrize("name", [*PHOTOS, *synthetic()])
def test_features_equal_the_reference(
    name: str, reference: dict[str, dict[str, list[float]]], current: dict[str, object]
) -> None:
    expected = np.array(reference["features"][name])
    got = np.array(current["features"][name])  # type: ignore[index]
    for i, feature in enumerate(FEATURE_NAMES):
        assert got[i] == pytest.approx(expected[i], rel=RTOL, abs=ATOL), (
            f"{name}: {feature} = {got[i]!r}, reference {expected[i]!r}"
        )


@pytest.mark.parametrize("name", [*PHOTOS, "large"])
def test_structure_equals_the_reference(
    name: str, reference: dict[str, dict[str, list[float]]], current: dict[str, object]
) -> None:
    expected = np.array(reference["structure"][name])
    got = np.array(current["structure"][name])  # type: ignore[index]
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL, err_msg=name)


def test_the_reference_is_not_trivially_satisfied(
    reference: dict[str, dict[str, list[float]]],
) -> None:
    # Apart from colour-histogram bins no photo falls in, the photos differ from each
    # other in every feature, so a mixed-up or constant vector could not pass above.
    vectors = np.array([reference["features"][name] for name in PHOTOS])
    used = (vectors != 0).any(axis=0)
    differing = (np.abs(vectors - vectors[0]) > 10 * ATOL + RTOL * np.abs(vectors[0])).any(axis=0)
    assert differing[used].all()


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    if REFERENCE.exists():
        sys.exit(f"{REFERENCE} exists; delete it on purpose before writing new values")
    REFERENCE.write_text(json.dumps(compute_all(), indent=1) + "\n")
    print(f"wrote {REFERENCE}")
