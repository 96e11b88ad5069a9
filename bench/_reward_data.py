"""BIQ2021 development subset for the reward benchmark: labels and cached features.

Features are extracted once per feature version and cached in
``data/bench/reward_features_<version>.npz`` (``data/`` is not in git), with the
per-image CPU extraction time (decode excluded and included) so the timing is
reported from the same run that produced the features.
"""

from __future__ import annotations

import csv
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from services.common.images import decode_image
from services.reward.features import FEATURE_NAMES, ClassicalExtractor

REPO = Path(__file__).resolve().parents[1]


def _dataset_root() -> Path:
    """``../shared/data/biq2021-dev`` from the checkout (a worktree sits one level deeper)."""
    override = os.environ.get("REWARD_BENCH_DATASET")
    if override:
        return Path(override)
    for base in (REPO.parent, REPO.parent.parent):
        root = base / "shared" / "data" / "biq2021-dev"
        if root.exists():
            return root
    return REPO.parent / "shared" / "data" / "biq2021-dev"


DATASET = _dataset_root()
CACHE_DIR = REPO / "data" / "bench"


@dataclass(frozen=True)
class Dataset:
    images: list[str]
    subsets: np.ndarray
    y: np.ndarray  # rating_1_5
    X: np.ndarray  # classical features, FEATURE_NAMES order
    names: tuple[str, ...]
    extract_s: np.ndarray  # features only, per image
    decode_s: np.ndarray  # JPEG decode to RGB, per image
    version: str


def read_scores(root: Path = DATASET) -> tuple[list[str], np.ndarray, np.ndarray]:
    with open(root / "scores.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    images = [r["image"] for r in rows]
    y = np.array([float(r["rating_1_5"]) for r in rows])
    subsets = np.array([r["subset"] for r in rows])
    return images, subsets, y


def load(root: Path = DATASET, *, refresh: bool = False, log: bool = True) -> Dataset:
    """Labels and features of every image; features from the cache when present."""
    extractor = ClassicalExtractor()
    images, subsets, y = read_scores(root)
    cache = CACHE_DIR / f"reward_features_{extractor.version}.npz"
    if cache.exists() and not refresh:
        data = np.load(cache, allow_pickle=False)
        if list(data["images"]) == images:
            return Dataset(
                images,
                subsets,
                y,
                data["X"],
                FEATURE_NAMES,
                data["extract_s"],
                data["decode_s"],
                extractor.version,
            )
    X = np.empty((len(images), len(FEATURE_NAMES)))
    extract_s = np.empty(len(images))
    decode_s = np.empty(len(images))
    started = time.perf_counter()
    for i, name in enumerate(images):
        raw = (root / "images" / name).read_bytes()
        t0 = time.perf_counter()
        rgb = decode_image(raw, max_bytes=50 << 20, max_pixels=50_000_000).to_array()
        t1 = time.perf_counter()
        X[i] = extractor.extract(rgb).values
        t2 = time.perf_counter()
        decode_s[i], extract_s[i] = t1 - t0, t2 - t1
        if log and (i + 1) % 250 == 0:
            print(f"  features {i + 1}/{len(images)} ({time.perf_counter() - started:.0f} s)")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    np.savez(cache, images=np.array(images), X=X, extract_s=extract_s, decode_s=decode_s)
    return Dataset(images, subsets, y, X, FEATURE_NAMES, extract_s, decode_s, extractor.version)
