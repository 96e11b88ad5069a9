"""The validation gate: when a trained candidate may replace the active model.

Notation: on the held-out ratings, ``C`` and ``A`` are the candidate's and the active
model's metrics (:mod:`services.reward.metrics`), ``K`` the constant predictor's
(the training mean). The candidate goes live only if every check passes:

1. ``SRCC(C) ≥ min_srcc``: it ranks images at all;
2. ``MAE(C) < MAE(K)``: it beats guessing the mean;
3. with an active model that this service can evaluate (same held-out ratings):

   * ``SRCC(C) − SRCC(A) ≥ −δ_srcc``   (ranking: what best-of-N relies on)
   * ``acc(C) − acc(A) ≥ −δ_acc``      (within-render pairwise accuracy, when there
     are pairs)
   * ``MAE(C) − MAE(A) ≤ δ_mae``

   "Not worse, within the noise of the held-out set". Each tolerance is
   ``δ = z · SE`` with ``SE`` the bootstrap standard error of the *paired*
   difference: the held-out renders are resampled with replacement (a render's
   ratings together), both models scored on each resample, and the difference's
   standard deviation taken. It therefore shrinks as ``1/√n`` with the held-out
   size: a small held-out set tolerates small regressions it cannot see, a large
   one does not. ``z = 1.645`` (one-sided 95 %), 200 resamples, seeded, so the gate
   is a pure function of its inputs.

An identical retrain passes (every difference is 0). The decision and every figure
are recorded in the registry row and the audit log.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

Z_ONE_SIDED_95 = 1.6448536269514722


@dataclass(frozen=True)
class Check:
    name: str
    candidate: float | None
    reference: float | None
    tolerance: float | None
    passed: bool
    note: str = ""


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    checks: list[Check]

    @property
    def reason(self) -> str:
        failed = [c for c in self.checks if not c.passed]
        verdict = "passed the gate" if self.passed else "rejected"
        parts = [_describe(c) for c in (failed or self.checks)]
        return f"{verdict} ({'; '.join(parts)})"

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "checks": [asdict(c) for c in self.checks]}


def _describe(c: Check) -> str:
    if c.note:
        return c.note
    ref = "" if c.reference is None else f" vs {c.reference:.3f}"
    tol = "" if c.tolerance is None else f" (tolerance {c.tolerance:.3f})"
    return f"{c.name} {c.candidate if c.candidate is None else round(c.candidate, 3)}{ref}{tol}"


@dataclass(frozen=True)
class HeldOut:
    """The held-out ratings the models are compared on."""

    y: np.ndarray
    groups: Sequence[str]
    raters: Sequence[str]
    images: Sequence[str]


def _pairs(held: HeldOut) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Comparable pairs (a, b, sign of y_a − y_b, render code) within (render, trainer)."""
    by_key: dict[tuple[str, str], list[int]] = defaultdict(list)
    for k, (g, r) in enumerate(zip(held.groups, held.raters, strict=True)):
        by_key[(g, r)].append(k)
    render_code = {g: c for c, g in enumerate(sorted(set(held.groups)))}
    a_s, b_s, sign, rend = [], [], [], []
    for (g, _), rows in by_key.items():
        for pos, a in enumerate(rows):
            for b in rows[pos + 1 :]:
                if held.images[a] != held.images[b] and held.y[a] != held.y[b]:
                    a_s.append(a)
                    b_s.append(b)
                    sign.append(np.sign(held.y[a] - held.y[b]))
                    rend.append(render_code[g])
    as_int = np.array(a_s, dtype=np.intp), np.array(b_s, dtype=np.intp)
    return as_int[0], as_int[1], np.array(sign), np.array(rend, dtype=np.intp)


def _agreement(pred: np.ndarray, a: np.ndarray, b: np.ndarray, sign: np.ndarray) -> np.ndarray:
    d = np.sign(pred[a] - pred[b]) * sign
    return np.where(d > 0, 1.0, np.where(d == 0, 0.5, 0.0))


def _srcc(y: np.ndarray, p: np.ndarray) -> float:
    if len(y) < 3 or np.ptp(y) == 0 or np.ptp(p) == 0:
        return 0.0
    value = stats.spearmanr(p, y)[0]
    return float(value) if np.isfinite(value) else 0.0


def paired_tolerances(
    held: HeldOut,
    candidate: np.ndarray,
    active: np.ndarray,
    *,
    z: float = Z_ONE_SIDED_95,
    resamples: int = 200,
    seed: int = 0,
) -> dict[str, float | None]:
    """``z ×`` the bootstrap SE of the paired differences in SRCC, pair accuracy and MAE."""
    render_code = {g: c for c, g in enumerate(sorted(set(held.groups)))}
    codes = np.array([render_code[g] for g in held.groups], dtype=np.intp)
    n_renders = len(render_code)
    rows_of = [np.flatnonzero(codes == c) for c in range(n_renders)]
    a, b, sign, pair_render = _pairs(held)
    agree_c = _agreement(candidate, a, b, sign)
    agree_a = _agreement(active, a, b, sign)
    err_c = np.abs(candidate - held.y)
    err_a = np.abs(active - held.y)
    rng = np.random.default_rng(seed)
    d_srcc, d_acc, d_mae = [], [], []
    for _ in range(resamples):
        picked = rng.integers(0, n_renders, n_renders)
        idx = np.concatenate([rows_of[c] for c in picked])
        d_srcc.append(_srcc(held.y[idx], candidate[idx]) - _srcc(held.y[idx], active[idx]))
        d_mae.append(err_c[idx].mean() - err_a[idx].mean())
        if len(a):
            mult = np.bincount(picked, minlength=n_renders)[pair_render]
            if mult.sum():
                d_acc.append(float((mult * (agree_c - agree_a)).sum() / mult.sum()))
    return {
        "srcc": z * float(np.std(d_srcc, ddof=1)),
        "pair_accuracy": z * float(np.std(d_acc, ddof=1)) if len(d_acc) > 1 else None,
        "mae": z * float(np.std(d_mae, ddof=1)),
    }


def decide(
    candidate: dict[str, Any],
    constant: dict[str, Any],
    *,
    min_srcc: float,
    active: dict[str, Any] | None = None,
    active_name: str | None = None,
    tolerances: dict[str, float | None] | None = None,
    active_note: str | None = None,
) -> GateDecision:
    """Apply the checks to metric dictionaries (``Metrics.as_dict()``)."""
    checks = [
        Check(
            "srcc_minimum",
            candidate["srcc"],
            min_srcc,
            None,
            candidate["srcc"] >= min_srcc,
            f"held-out SRCC {candidate['srcc']:.3f} vs minimum {min_srcc:.2f}",
        ),
        Check(
            "mae_vs_constant",
            candidate["mae"],
            constant["mae"],
            None,
            candidate["mae"] < constant["mae"],
            f"held-out MAE {candidate['mae']:.3f} vs {constant['mae']:.3f} for the constant",
        ),
    ]
    if active is not None and tolerances is not None:
        tol_s = tolerances["srcc"] or 0.0
        checks.append(
            Check(
                "srcc_vs_active",
                candidate["srcc"],
                active["srcc"],
                tol_s,
                candidate["srcc"] >= active["srcc"] - tol_s,
                f"SRCC {candidate['srcc']:.3f} vs {active['srcc']:.3f} for active {active_name} "
                f"(tolerance {tol_s:.3f})",
            )
        )
        cand_acc, act_acc = candidate.get("pair_accuracy"), active.get("pair_accuracy")
        tol_a = tolerances.get("pair_accuracy")
        if cand_acc is not None and act_acc is not None:
            tol_a = tol_a or 0.0
            checks.append(
                Check(
                    "pair_accuracy_vs_active",
                    cand_acc,
                    act_acc,
                    tol_a,
                    cand_acc >= act_acc - tol_a,
                    f"within-render accuracy {cand_acc:.3f} vs {act_acc:.3f} "
                    f"(tolerance {tol_a:.3f})",
                )
            )
        tol_m = tolerances["mae"] or 0.0
        checks.append(
            Check(
                "mae_vs_active",
                candidate["mae"],
                active["mae"],
                tol_m,
                candidate["mae"] <= active["mae"] + tol_m,
                f"MAE {candidate['mae']:.3f} vs {active['mae']:.3f} (tolerance {tol_m:.3f})",
            )
        )
    elif active_note:
        checks.append(Check("active", None, None, None, True, active_note))
    return GateDecision(all(c.passed for c in checks), checks)
