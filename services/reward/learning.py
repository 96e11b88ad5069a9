"""What a training learns from, and how it is scored: the pure part of training.

No database, no HTTP: :mod:`services.reward.training` loads observations into a
:class:`TrainingTable` and calls these functions; the benchmark (``bench/reward.py``)
calls the same functions on BIQ2021, so the figures in ``docs/benchmarks.md`` are
the service's own.

Notation: one row per stored rating ``k``, with its image ``i(k)``, render ``g(k)``
(the original render's hash when the gateway sent it, else the experiment id: the
variants of one render share it), trainer ``r(k)`` and stars ``y_k``.

Held-out split. A render is held out when ``H(g) < holdout_fraction``, with ``H`` the
first 8 bytes of SHA-256 of the render key read as a number in ``[0, 1)``; an image
is held out when *any* render it belongs to is, and then every rating of it is. So
no image (and, unless an image is reused across renders, no render) is on both
sides, and the split does not change as ratings arrive: no version trains on a
held-out rating and every version is compared on the current held-out set.

Training. The training ratings become one target per image (trainer bias removed,
:mod:`services.reward.targets`); the classical ensemble is fitted on them (and the
CLIP MLP when embeddings exist), calibrated on out-of-bag scores.

Scoring. Every held-out *rating* is predicted from its image: metrics compare the
prediction with the stars trainers actually gave (:mod:`services.reward.metrics`),
including the within-render pairwise accuracy and the best-of-N gain.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from services.reward.metrics import Metrics, evaluate
from services.reward.model import RatingModel, fit_classical, fit_mlp
from services.reward.targets import RATER_SD, image_targets


@dataclass(frozen=True)
class TrainingTable:
    """Stored ratings as arrays, one row per rating.

    ``classical`` includes the structure block; ``clip`` is ``None`` unless every
    image has an embedding.
    """

    images: list[str]
    groups: list[str]
    raters: list[str]
    y: np.ndarray
    classical: np.ndarray
    clip: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.y)

    def inputs(self, feature_set: str) -> np.ndarray:
        if feature_set == "classical+clip":
            if self.clip is None:
                raise ValueError("no CLIP embeddings in this table")
            return np.hstack([self.classical, self.clip])
        return self.classical


def unit_hash(key: str) -> float:
    """``H(key)``: the first 8 bytes of SHA-256 of ``key`` as a number in [0, 1)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64


def holdout_mask(images: Sequence[str], groups: Sequence[str], fraction: float) -> np.ndarray:
    """Which ratings are held out: whole renders, widened to whole images."""
    render_out = {g: unit_hash(g) < fraction for g in set(groups)}
    image_out: dict[str, bool] = {}
    for image, group in zip(images, groups, strict=True):
        image_out[image] = image_out.get(image, False) or render_out[group]
    return np.array([image_out[i] for i in images], dtype=bool)


@dataclass(frozen=True)
class FitOptions:
    resamples: int = 5
    calibration: str = "isotonic"
    mlp_epochs: int = 300
    pairwise: float = 0.0
    seed: int = 0
    rater_sd: float = RATER_SD


def fit_candidates(
    table: TrainingTable,
    train: np.ndarray,
    options: FitOptions,
    progress: Callable[[float], None] | None = None,
) -> dict[str, RatingModel]:
    """Fit every feature set the table allows on the ratings where ``train`` is set.

    Raises:
        ValueError: fewer than 5 distinct training images.
    """
    rows = np.flatnonzero(train)
    targets = image_targets(
        [table.images[k] for k in rows],
        [table.raters[k] for k in rows],
        table.y[rows],
        [table.groups[k] for k in rows],
        rater_sd=options.rater_sd,
    )
    first_row = np.array(
        [rows[np.flatnonzero(targets.row_of == i)[0]] for i in range(len(targets.images))]
    )
    groups = np.array(targets.group)
    out: dict[str, RatingModel] = {}
    sets = ["classical", *(["classical+clip"] if table.clip is not None else [])]
    for n, feature_set in enumerate(sets):

        def step(share: float, n: int = n) -> None:
            if progress is not None:
                progress((n + share) / len(sets))

        X = table.inputs(feature_set)[first_row]
        if feature_set == "classical":
            model = fit_classical(
                X,
                targets.target,
                weights=targets.weight,
                groups=groups,
                resamples=options.resamples,
                seed=options.seed,
                calibration=options.calibration,
                progress=step,
            )
        else:
            model = fit_mlp(
                X,
                targets.target,
                weights=targets.weight,
                groups=groups,
                resamples=options.resamples,
                seed=options.seed,
                epochs=options.mlp_epochs,
                pairwise=options.pairwise,
                calibration=options.calibration,
                progress=step,
            )
        model.info["trainer_biases"] = {r: round(b, 4) for r, b in targets.biases.items()}
        model.info["images"] = len(targets.images)
        out[feature_set] = model
    return out


def predict_rows(
    model: RatingModel, table: TrainingTable, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Predicted mean and std of every rating where ``mask`` is set (by its image)."""
    return model.predict(table.inputs(model.feature_set)[mask])


def score(
    table: TrainingTable, mask: np.ndarray, mean: np.ndarray, std: np.ndarray | None = None
) -> Metrics:
    """Held-out metrics of predictions for the ratings where ``mask`` is set."""
    rows = np.flatnonzero(mask)
    return evaluate(
        table.y[rows],
        mean,
        std,
        groups=[table.groups[k] for k in rows],
        raters=[table.raters[k] for k in rows],
        images=[table.images[k] for k in rows],
    )
