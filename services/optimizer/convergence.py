"""Phase-1 progress: the seeds' convergence score, a principled convergence measure,
and when phase 1 is complete.

Notation: ``n`` is the number of rated samples, ``best`` the best rating seen
(1–5 stars, ``None`` before any), ``q`` the quality surface of
:mod:`services.optimizer.gp`, ``ẑ`` the recommended parameters and ``Z`` the
candidate set the posterior is evaluated on.

* **Seeds' score** (seed document ``lib/ml-client.ts``, kept for continuity)::

      score = 0.6 * min(n / 50, 1) + 0.4 * min(best / 4.0, 1)

  It rises with the number of samples whatever they taught us, and a single lucky
  rating of 4 maxes its second term.
* **Principled convergence**: under the posterior, the probability that the
  recommendation is within ``ε`` (0.25 stars) of the best point in the space, and
  the expected remaining improvement (expected simple regret)::

      P_ε = P( q(ẑ) ≥ max_{z∈Z} q(z) − ε )          E[R] = E[ max_{z∈Z} q(z) − q(ẑ) ]

  both estimated from joint posterior samples. ``Z`` is finite, so both are
  slightly optimistic about a point the candidates never came near.
* **Phase 1 is complete** (seed 002, "Convergence criteria") after 50 samples, once a
  sample is rated 4.0 or more, or when an admin stops it by hand; the reason is
  reported, the manual stop first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

PHASE_1_SAMPLES = 50
TARGET_RATING = 4.0
SAMPLE_WEIGHT = 0.6
RATING_WEIGHT = 0.4

Phase1Reason = Literal["manual", "best_rating", "samples"]


def convergence_score(n: int, best: float | None) -> float:
    """Phase-1 convergence in ``[0, 1]`` (the seeds' formula).

    Args:
        n: samples seen.
        best: best rating seen, or ``None`` when there are none.

    Returns:
        ``0.6 * min(n/50, 1) + 0.4 * min(best/4, 1)``; e.g. ``n=25, best=3`` → ``0.6``.
    """
    sample_factor = min(max(n, 0) / PHASE_1_SAMPLES, 1.0)
    rating_factor = min(max(best or 0.0, 0.0) / TARGET_RATING, 1.0)
    return round(SAMPLE_WEIGHT * sample_factor + RATING_WEIGHT * rating_factor, 6)


def phase_1_reason(n: int, best: float | None, manual_stop: bool = False) -> Phase1Reason | None:
    """Why phase 1 is complete, or ``None`` while it is not."""
    if manual_stop:
        return "manual"
    if best is not None and best >= TARGET_RATING:
        return "best_rating"
    if n >= PHASE_1_SAMPLES:
        return "samples"
    return None


def phase_1_complete(n: int, best: float | None, manual_stop: bool = False) -> bool:
    """True once ``n >= 50``, ``best >= 4.0`` or an admin stopped phase 1."""
    return phase_1_reason(n, best, manual_stop) is not None


@dataclass(frozen=True)
class PosteriorConvergence:
    """``P_ε`` and ``E[R]`` (see the module docstring)."""

    probability_within: float
    tolerance: float
    expected_regret: float


def posterior_convergence(
    samples: np.ndarray, recommended: np.ndarray, tolerance: float = 0.25
) -> PosteriorConvergence:
    """Estimate ``P_ε`` and ``E[R]`` from joint posterior samples.

    Args:
        samples: ``(S, N)`` draws of ``q`` on the candidates (the recommendation among them).
        recommended: ``(S,)`` the same draws at the recommendation.
        tolerance: ``ε`` in stars.

    Returns:
        e.g. draws whose maximum is the recommendation in 3 of 4 samples and 1 star
        above it in the fourth → ``P_ε = 0.75``, ``E[R] = 0.25``.
    """
    best = np.asarray(samples).max(axis=1)
    regret = np.maximum(best - np.asarray(recommended), 0.0)
    return PosteriorConvergence(
        probability_within=round(float(np.mean(regret <= tolerance)), 4),
        tolerance=tolerance,
        expected_regret=round(float(np.mean(regret)), 4),
    )
