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
"""

from __future__ import annotations

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

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _correlation(kind: str, a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    value = stats.spearmanr(a, b)[0] if kind == "s" else stats.pearsonr(a, b)[0]
    return float(value) if np.isfinite(value) else 0.0


def evaluate(y: np.ndarray, mean: np.ndarray, std: np.ndarray | None = None) -> Metrics:
    """Scores of predictions ``mean`` (and ``std``) against ratings ``y``.

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
    return Metrics(
        n=int(y.size),
        srcc=_correlation("s", mean, y),
        plcc=_correlation("p", mean, y),
        mae=float(np.mean(err)),
        within_05=float(np.mean(err <= 0.5)),
        coverage_68=cov68,
        coverage_95=cov95,
        mean_std=mean_std,
    )
