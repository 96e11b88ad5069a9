"""From trainers' whole-star ratings to training targets: one row per image.

Notation (``k = 1..m`` indexes stored ratings)::

    y_k ∈ {1..5}   the stars a trainer gave
    i(k)           the rated image (content hash); an image may be rated repeatedly
    r(k)           the trainer who gave the rating
    g(i)           the render the image was made from (its group: variants of one
                   render are compared with each other, and never split across the
                   held-out boundary)

Rating model (the optimizer's, :mod:`services.optimizer.gp`, without the parameter
surface: here the image's quality plays the role of ``q``)::

    y_k = μ + a[i(k)] + b[r(k)] + ε_k
    a[i] ~ N(0, τ_a²)   quality of the image
    b[r] ~ N(0, τ_r²)   trainer strictness (negative = stricter)
    ε_k  ~ N(0, σ²)     a trainer's inconsistency plus rounding to whole stars

Everything is Gaussian, so the posterior mean of ``(μ, a, b)`` is a ridge solution
with penalties ``σ²/τ_a²`` and ``σ²/τ_r²`` (flat prior on ``μ``). The image effects
are profiled out exactly, leaving a linear system of one row per trainer plus one,
so the biases are estimated jointly with the image effects: a strict trainer who
happens to rate good images is not mistaken for a lenient one. ``τ_r = 0.4`` and
``σ = 0.5`` stars are the centres of the optimizer's priors; ``τ_a²`` is estimated
by moments (variance of the image means minus the noise share, floored at 0.05).

Targets. The target of image ``i`` is the plain average of its *debiased* ratings,
``t_i = mean_k (y_k − b[r(k)])``, not the shrunk ``μ + a[i]``: shrinking every
once-rated image toward the mean would compress the scale the model learns. Its
weight is ``w_i = (τ_f² + σ²) / (τ_f² + σ²/n_i)`` (``n_i`` ratings, ``τ_f² = 0.25``
the model's own error): 1 for one rating, rising toward 2 as repeats average the
noise out. With a single trainer the bias is confounded with ``μ`` and comes out 0.

The labels stay ordinal where it matters: the model's score is mapped back to stars
by a monotone (isotonic) calibration, :mod:`services.reward.calibration`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RATER_SD = 0.4
NOISE_SD = 0.5
MODEL_VAR = 0.25
MIN_IMAGE_VAR = 0.05


@dataclass(frozen=True)
class ImageTargets:
    """One row per distinct image, in order of first appearance.

    Attributes:
        images: image keys.
        target: average debiased rating of each image (stars).
        weight: regression weight of each image (1 for one rating).
        count: ratings of each image.
        group: render key of each image (its first observation's).
        row_of: for every input rating, the index of its image row.
        biases: estimated strictness of each trainer (stars).
    """

    images: list[str]
    target: np.ndarray
    weight: np.ndarray
    count: np.ndarray
    group: list[str]
    row_of: np.ndarray
    biases: dict[str, float]


def _codes(items: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    vocab: dict[str, int] = {}
    codes = np.array([vocab.setdefault(s, len(vocab)) for s in items], dtype=np.intp)
    return codes, list(vocab)


def trainer_biases(
    images: Sequence[str],
    raters: Sequence[str],
    ratings: Sequence[float] | np.ndarray,
    *,
    rater_sd: float = RATER_SD,
    noise_sd: float = NOISE_SD,
) -> dict[str, float]:
    """Posterior-mean strictness ``b[r]`` of each trainer under the model above."""
    y = np.asarray(ratings, dtype=np.float64)
    if y.size == 0:
        return {}
    img, _ = _codes(images)
    rat, names = _codes(raters)
    n_img = np.bincount(img).astype(np.float64)
    means = np.bincount(img, y) / n_img
    image_var = max(float(np.var(means)) - noise_sd**2 * float(np.mean(1.0 / n_img)), 0.0)
    lam_a = noise_sd**2 / max(image_var, MIN_IMAGE_VAR)
    lam_r = noise_sd**2 / rater_sd**2
    # Z = [1, one-hot(trainer)]; the image effects are profiled out exactly:
    # (ZᵀZ − Cᵀ D C + Λ) θ = Zᵀy − Cᵀ D s, with C the per-image counts of each
    # column of Z, s the per-image sums of y and D = diag(1 / (n_i + λ_a)).
    n_cols = 1 + len(names)
    cols = np.column_stack([np.zeros(len(y), dtype=np.intp), 1 + rat])
    C = np.zeros((len(n_img), n_cols))
    C[:, 0] = n_img
    np.add.at(C, (img, 1 + rat), 1.0)
    ZtZ = np.zeros((n_cols, n_cols))
    np.add.at(ZtZ, (cols[:, 0], cols[:, 0]), 1.0)
    np.add.at(ZtZ, (cols[:, 0], cols[:, 1]), 1.0)
    np.add.at(ZtZ, (cols[:, 1], cols[:, 0]), 1.0)
    np.add.at(ZtZ, (cols[:, 1], cols[:, 1]), 1.0)
    Zty = np.zeros(n_cols)
    np.add.at(Zty, cols[:, 0], y)
    np.add.at(Zty, cols[:, 1], y)
    d = 1.0 / (n_img + lam_a)
    sums = np.bincount(img, y)
    A = ZtZ - C.T @ (C * d[:, None]) + np.diag([0.0] + [lam_r] * len(names))
    rhs = Zty - C.T @ (d * sums)
    theta = np.linalg.lstsq(A, rhs, rcond=None)[0]
    b = theta[1:]
    return {name: float(b[c]) for c, name in enumerate(names)}


def image_targets(
    images: Sequence[str],
    raters: Sequence[str],
    ratings: Sequence[float] | np.ndarray,
    groups: Sequence[str] | None = None,
    *,
    rater_sd: float = RATER_SD,
    noise_sd: float = NOISE_SD,
) -> ImageTargets:
    """Average debiased rating (and weight) of every distinct image.

    Raises:
        ValueError: the sequences differ in length.
    """
    if not len(images) == len(raters) == len(ratings):
        raise ValueError("images, raters and ratings must have the same length")
    groups = list(groups) if groups is not None else list(images)
    if len(groups) != len(images):
        raise ValueError("groups must have one entry per rating")
    y = np.asarray(ratings, dtype=np.float64)
    biases = trainer_biases(images, raters, y, rater_sd=rater_sd, noise_sd=noise_sd)
    img, names = _codes(images)
    debiased = y - np.array([biases[r] for r in raters], dtype=np.float64)
    count = np.bincount(img, minlength=len(names)).astype(np.float64)
    target = np.bincount(img, debiased, minlength=len(names)) / np.maximum(count, 1)
    weight = (MODEL_VAR + noise_sd**2) / (MODEL_VAR + noise_sd**2 / np.maximum(count, 1))
    first: dict[int, str] = {}
    for k, code in enumerate(img):
        first.setdefault(int(code), groups[k])
    return ImageTargets(
        images=names,
        target=target,
        weight=weight,
        count=count.astype(np.intp),
        group=[first[c] for c in range(len(names))],
        row_of=img,
        biases=biases,
    )
