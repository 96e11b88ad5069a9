"""How a rating predictor is scored on held-out data.

Notation: ``y`` are the true ratings (1–5 stars), ``ŷ`` the predicted means and ``s``
the predicted standard deviations, over ``n`` held-out images.

* ``srcc``: Spearman rank correlation of ``ŷ`` and ``y`` (ranking: what best-of-N
  uses); ``plcc``: Pearson correlation. Both are 0 when either side is constant.
* ``mae``: mean ``|ŷ - y|``; ``within_05``: share of ``|ŷ - y| ≤ 0.5`` (the seeds'
  "within ±0.5 stars" target).
* ``coverage_68`` / ``coverage_95``: share of ``y`` inside ``ŷ ± 1·s`` and
  ``ŷ ± 1.96·s``. A calibrated Gaussian uncertainty gives about 0.68 and 0.95;
  lower means over-confident, higher under-confident.
* ``mean_std``: mean of ``s`` (how wide the intervals are).
* ``pair_accuracy``: within-render pairwise accuracy. Over every pair of ratings
  given by one trainer to two different images of one render with different stars
  (ties in the stars are excluded), the share the model orders the same way; a tie
  in the predictions counts one half. ``n_pairs`` is how many such pairs there were
  (``pair_accuracy`` is ``None`` without any). This is what best-of-N relies on.
* ``pred_min`` / ``pred_max``: the range of the predictions (does it span the scale?).
* ``best_of_n_gain``: over every set of ratings one trainer gave to the variants of
  one render, the mean of ``y[pick] - mean(y)``, where ``pick`` is the variant the
  model scores highest (tied maxima averaged): the stars gained by letting the model
  choose instead of choosing at random. ``best_of_n_low``/``_high`` are a 95 %
  bootstrap interval over sets, ``best_of_n_sets`` their number and
  ``best_of_n_oracle`` the gain of always picking the best-rated variant.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Metrics:
    n: int
    srcc: float
    plcc: float
    mae: float
    within_05: float
    coverage_68: float
    coverage_95: float
    mean_std: float
    pair_accuracy: float | None = None
    n_pairs: int = 0
    pred_min: float = 0.0
    pred_max: float = 0.0
    best_of_n_gain: float | None = None
    best_of_n_low: float | None = None
    best_of_n_high: float | None = None
    best_of_n_oracle: float | None = None
    best_of_n_sets: int = 0

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def _correlation(kind: str, a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    value = stats.spearmanr(a, b)[0] if kind == "s" else stats.pearsonr(a, b)[0]
    return float(value) if np.isfinite(value) else 0.0


def pair_accuracy(
    y: np.ndarray,
    pred: np.ndarray,
    groups: Sequence[str],
    raters: Sequence[str] | None = None,
    images: Sequence[str] | None = None,
) -> tuple[float | None, int]:
    """Within-render pairwise accuracy and the number of pairs (see the module notes)."""
    y = np.asarray(y, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    raters = raters if raters is not None else [""] * len(y)
    images = images if images is not None else [str(i) for i in range(len(y))]
    by_key: dict[tuple[str, str], list[int]] = defaultdict(list)
    for k, (g, r) in enumerate(zip(groups, raters, strict=True)):
        by_key[(g, r)].append(k)
    agree = 0.0
    total = 0
    for rows in by_key.values():
        for a_pos, a in enumerate(rows):
            for b in rows[a_pos + 1 :]:
                if images[a] == images[b] or y[a] == y[b]:
                    continue
                total += 1
                d = (pred[a] - pred[b]) * (y[a] - y[b])
                agree += 1.0 if d > 0 else 0.5 if d == 0 else 0.0
    return (agree / total if total else None), total


@dataclass(frozen=True)
class BestOfN:
    gain: float | None
    low: float | None
    high: float | None
    oracle: float | None
    sets: int


def best_of_n(
    y: np.ndarray,
    pred: np.ndarray,
    groups: Sequence[str],
    raters: Sequence[str] | None = None,
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> BestOfN:
    """Expected gain of the model's pick over a random pick (see the module notes)."""
    y = np.asarray(y, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    raters = raters if raters is not None else [""] * len(y)
    by_key: dict[tuple[str, str], list[int]] = defaultdict(list)
    for k, (g, r) in enumerate(zip(groups, raters, strict=True)):
        by_key[(g, r)].append(k)
    gains: list[float] = []
    oracle: list[float] = []
    for rows in by_key.values():
        if len(rows) < 2:
            continue
        ys, ps = y[rows], pred[rows]
        best = ps == ps.max()
        gains.append(float(ys[best].mean() - ys.mean()))
        oracle.append(float(ys.max() - ys.mean()))
    if not gains:
        return BestOfN(None, None, None, None, 0)
    per_set = np.array(gains)
    rng = np.random.default_rng(seed)
    boot = per_set[rng.integers(0, len(per_set), (resamples, len(per_set)))].mean(axis=1)
    return BestOfN(
        float(per_set.mean()),
        float(np.percentile(boot, 2.5)),
        float(np.percentile(boot, 97.5)),
        float(np.mean(oracle)),
        len(per_set),
    )


def evaluate(
    y: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray | None = None,
    *,
    groups: Sequence[str] | None = None,
    raters: Sequence[str] | None = None,
    images: Sequence[str] | None = None,
) -> Metrics:
    """Scores of predictions ``mean`` (and ``std``) against ratings ``y``.

    With ``groups`` (render of each rating; ``raters`` and ``images`` optional) the
    within-render pairwise accuracy is computed too.

    Raises:
        ValueError: the arrays are empty or differ in length.
    """
    y = np.asarray(y, dtype=np.float64)
    mean = np.asarray(mean, dtype=np.float64)
    if y.size == 0 or y.shape != mean.shape:
        raise ValueError(f"need equal, non-empty arrays (got {y.shape} and {mean.shape})")
    err = np.abs(mean - y)
    if std is None:
        cov68 = cov95 = mean_std = 0.0
    else:
        s = np.asarray(std, dtype=np.float64)
        cov68 = float(np.mean(err <= s))
        cov95 = float(np.mean(err <= 1.96 * s))
        mean_std = float(np.mean(s))
    pairs = pair_accuracy(y, mean, groups, raters, images) if groups is not None else (None, 0)
    bon = (
        best_of_n(y, mean, groups, raters)
        if groups is not None
        else BestOfN(None, None, None, None, 0)
    )
    return Metrics(
        n=int(y.size),
        srcc=_correlation("s", mean, y),
        plcc=_correlation("p", mean, y),
        mae=float(np.mean(err)),
        within_05=float(np.mean(err <= 0.5)),
        coverage_68=cov68,
        coverage_95=cov95,
        mean_std=mean_std,
        pair_accuracy=pairs[0],
        n_pairs=pairs[1],
        pred_min=float(mean.min()),
        pred_max=float(mean.max()),
        best_of_n_gain=bon.gain,
        best_of_n_low=bon.low,
        best_of_n_high=bon.high,
        best_of_n_oracle=bon.oracle,
        best_of_n_sets=bon.sets,
    )
