"""Mapping the ensemble's score back to stars, fitted on predictions the model did not
train on.

Notation: ``s`` is the ensemble's raw score of an image, ``t`` its target (average
debiased stars, :mod:`services.reward.targets`), ``w`` its weight. The calibration is
fitted on *out-of-bag* pairs ``(s_oob, t)``: each training image scored only by the
bootstrap members that did not see it (nor any image of its render), so it sees the
shrinkage a new image will get, not the fit to the training set.

Kinds:

* ``isotonic``: ``c = PAV(s_oob → t)``, the weighted isotonic regression, which is
  the least-squares monotone map (it assumes only that a higher score means a better
  image: the ordinal part of the labels). Its flat blocks would create ties and cost
  ranking, so the map used is the piecewise-linear interpolation through the block
  centres ``(mean s, block value)``, strictly increasing between the first and last
  centre and extended beyond them with the end segments' slopes, then clipped to
  1–5. Ranking inside the fitted range is therefore unchanged.
* ``linear``: ``c(s) = a + b s`` by weighted least squares (``b > 1`` stretches a
  compressed score).
* ``none``: the identity (clipped to 1–5).

Only numpy is needed to apply a calibrator; scikit-learn's isotonic regression is
imported when one is fitted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RATING_MIN, RATING_MAX = 1.0, 5.0
KINDS = ("isotonic", "linear", "none")
MIN_POINTS = 10


@dataclass(frozen=True)
class Calibrator:
    """A monotone map from score to stars: ``np.interp`` through ``knots_x``/``knots_y``."""

    kind: str
    knots_x: np.ndarray
    knots_y: np.ndarray

    def __call__(self, score: np.ndarray) -> np.ndarray:
        s = np.asarray(score, dtype=np.float64)
        x, y = self.knots_x, self.knots_y
        if len(x) < 2:
            return np.clip(s, RATING_MIN, RATING_MAX)
        out = np.interp(s, x, y)
        lo, hi = s < x[0], s > x[-1]
        slope_lo = (y[1] - y[0]) / (x[1] - x[0])
        slope_hi = (y[-1] - y[-2]) / (x[-1] - x[-2])
        out[lo] = y[0] + slope_lo * (s[lo] - x[0])
        out[hi] = y[-1] + slope_hi * (s[hi] - x[-1])
        return np.clip(out, RATING_MIN, RATING_MAX)

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "knots": len(self.knots_x)}


IDENTITY = Calibrator("none", np.array([0.0, 1.0]), np.array([0.0, 1.0]))


def fit_calibrator(
    score: np.ndarray, target: np.ndarray, weight: np.ndarray | None = None, kind: str = "isotonic"
) -> Calibrator:
    """Fit a calibrator of ``kind`` on out-of-bag ``score`` and ``target``.

    Falls back to the identity with fewer than ``MIN_POINTS`` finite pairs or a
    constant score.

    Raises:
        ValueError: ``kind`` is not one of :data:`KINDS`.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown calibration {kind!r}; expected one of {KINDS}")
    s = np.asarray(score, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    w = np.ones_like(s) if weight is None else np.asarray(weight, dtype=np.float64)
    ok = np.isfinite(s) & np.isfinite(t)
    s, t, w = s[ok], t[ok], w[ok]
    if kind == "none" or len(s) < MIN_POINTS or np.ptp(s) == 0:
        return IDENTITY
    if kind == "linear":
        b, a = np.polyfit(s, t, 1, w=np.sqrt(w))
        if b <= 0:
            return IDENTITY
        x = np.array([s.min(), s.max()])
        return Calibrator("linear", x, a + b * x)
    from sklearn.isotonic import IsotonicRegression

    order = np.argsort(s, kind="stable")
    s, t, w = s[order], t[order], w[order]
    fitted = IsotonicRegression(out_of_bounds="clip").fit(s, t, sample_weight=w).predict(s)
    # Block centres: runs of equal fitted values.
    starts = np.flatnonzero(np.r_[True, np.diff(fitted) != 0])
    ends = np.r_[starts[1:], len(s)]
    kx = np.array([np.average(s[a:b], weights=w[a:b]) for a, b in zip(starts, ends, strict=True)])
    ky = fitted[starts]
    if len(kx) < 2:
        return IDENTITY
    return Calibrator("isotonic", kx, ky)
