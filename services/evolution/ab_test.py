"""When a challenger prompt beats the champion: the Bayesian paired A/B decision,
and the post-promotion monitor that rolls a promoted version back if it degrades.

Notation (paired test)
----------------------
During a test every experiment's two variants come from the same render and are
rated by the same trainer, one made with the champion prompt and one with the
challenger. For pair ``i``::

    d_i = rating(challenger) - rating(champion)        (an integer in -4..4)

The render's difficulty and the trainer's leniency are in both ratings, so they
cancel in ``d_i``. Model::

    d_i | mu, sigma^2  ~  Normal(mu, sigma^2)                 i = 1..n
    mu  | sigma^2      ~  Normal(0, sigma^2 / k0)              sceptical prior
    sigma^2            ~  Inv-Gamma(a0, a0 * s0^2)

``mu`` is the challenger's true advantage in stars. The prior centres it on 0
("a prompt edit usually changes little") with the weight of ``k0`` pairs that
showed no difference; ``s0`` is a prior guess of the per-pair spread worth about
``2 * a0`` pairs. Conjugacy gives, with ``dbar`` the mean and ``S`` the sum of
squared deviations of the ``d_i``::

    k_n = k0 + n,   m_n = n * dbar / k_n,   a_n = a0 + n / 2,
    b_n = a0 * s0^2 + S / 2 + k0 * n * dbar^2 / (2 * k_n)
    mu | d  ~  Student-t(2 a_n, loc = m_n, scale = sqrt(b_n / (a_n k_n)))

    P(better) = P(mu > 0 | d),   P(worse) = 1 - P(better)

Rule (:class:`DecisionRule`; defaults are the service's and the benchmark's):

* nothing is decided before ``min_pairs`` (10) pairs;
* **promote** when ``P(better) >= 0.95`` at a *look* (after ``looks`` pairs:
  15 and 20 by default). Checking for promotion after every pair would give
  noise many more chances to cross 0.95 (see ``bench/abtest.py``: about 12 % false
  promotions by 40 pairs instead of 4-5 %), so promotion is only considered at
  the looks;
* **roll back** (keep the champion) as soon as ``P(worse) >= 0.90`` after
  ``min_pairs``, or when ``max_pairs`` (20) pairs have not produced a promotion;
* otherwise keep testing.

The core, :func:`decide_batch`, works on NumPy arrays so that ``bench/abtest.py``
can run tens of thousands of simulated tests through exactly the code the service
uses; :func:`decide` is the one-test wrapper the service calls.

Monitor (after a promotion)
---------------------------
After promotion both options use the new champion, so there are no pairs any
more. The monitor compares the promoted version's ratings after promotion
(``x``, ``n1`` of them) with the old champion's ratings during the test (``y``,
``n0``): ``delta = mean(x) - mean(y)`` with a normal posterior under a
``Normal(0, tau^2)`` prior (``tau`` = 0.5 stars) and the pooled spread. It rolls
back when ``P(delta < 0) >= 0.975`` after ``min_samples`` (10) ratings, checking
after every rating, and stops watching after ``max_samples`` (20). It is a
guard-rail against a rare false promotion or a drift, not a second test: these
ratings are unpaired (render difficulty does not cancel), so it reliably catches
only large drops (see ``bench/abtest.py``: about 5 % false rollbacks of an
unchanged version, a third of -0.5-star drops, most -1-star drops).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtr, stdtr

CONTINUE = 0
PROMOTE = 1
ROLLBACK = -1
OUTCOMES = {CONTINUE: "continue", PROMOTE: "promote", ROLLBACK: "rollback"}


@dataclass(frozen=True)
class DecisionRule:
    """Parameters of the paired A/B decision (see the module docstring)."""

    promote_probability: float = 0.95
    rollback_probability: float = 0.90
    min_pairs: int = 10
    max_pairs: int = 20
    looks: tuple[int, ...] = (15, 20)
    prior_pairs: float = 3.0
    prior_sd: float = 1.0
    prior_sd_weight: float = 2.0

    def __post_init__(self) -> None:
        if not 0.5 < self.promote_probability < 1 or not 0.5 < self.rollback_probability < 1:
            raise ValueError("decision probabilities must be in (0.5, 1)")
        if not 1 <= self.min_pairs <= self.max_pairs:
            raise ValueError("need 1 <= min_pairs <= max_pairs")
        if self.prior_pairs <= 0 or self.prior_sd <= 0 or self.prior_sd_weight <= 0:
            raise ValueError("prior parameters must be positive")

    def is_look(self, n: int) -> bool:
        """Whether promotion may be decided with exactly ``n`` pairs (bench: one pair at a time)."""
        return n >= self.min_pairs and (n in self.looks or n >= self.max_pairs)

    def look_reached(self, n: int, last_look: int) -> int | None:
        """The newest look in ``(last_look, n]``, or None (service: pairs may arrive in bursts)."""
        due = [look for look in (*self.looks, self.max_pairs) if last_look < look <= n]
        return max(due) if due and n >= self.min_pairs else None


@dataclass(frozen=True)
class Decision:
    outcome: str  # continue | promote | rollback
    n_pairs: int
    mean_diff: float | None
    p_better: float | None
    p_worse: float | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "n_pairs": self.n_pairs,
            "mean_diff": self.mean_diff,
            "p_better": self.p_better,
            "p_worse": self.p_worse,
            "reason": self.reason,
        }


FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


def p_better_batch(
    n: FloatArray | float, total: FloatArray | float, total_sq: FloatArray | float,
    rule: DecisionRule,
) -> FloatArray:
    """``P(mu > 0 | d)`` from the sufficient statistics ``n``, ``sum d``, ``sum d^2``."""
    n_ = np.asarray(n, dtype=np.float64)
    s1 = np.asarray(total, dtype=np.float64)
    s2 = np.asarray(total_sq, dtype=np.float64)
    safe_n = np.maximum(n_, 1.0)
    mean = np.where(n_ > 0, s1 / safe_n, 0.0)
    ss = np.maximum(s2 - n_ * mean * mean, 0.0)
    k0, a0 = rule.prior_pairs, rule.prior_sd_weight
    k_n = k0 + n_
    m_n = n_ * mean / k_n
    a_n = a0 + n_ / 2.0
    b_n = a0 * rule.prior_sd**2 + ss / 2.0 + k0 * n_ * mean * mean / (2.0 * k_n)
    scale = np.sqrt(b_n / (a_n * k_n))
    return np.asarray(stdtr(2.0 * a_n, m_n / scale), dtype=np.float64)


def decide_batch(
    n: IntArray | int, total: FloatArray | float, total_sq: FloatArray | float,
    rule: DecisionRule, at_look: NDArray[np.bool_] | bool,
) -> tuple[IntArray, FloatArray]:
    """Outcome codes (PROMOTE / ROLLBACK / CONTINUE) and ``P(better)`` for many tests.

    Args:
        n: pairs so far per test.
        total, total_sq: ``sum d_i`` and ``sum d_i^2`` per test.
        rule: the decision rule.
        at_look: whether promotion may be decided now (:meth:`DecisionRule.is_look`).
    """
    n_arr = np.asarray(n, dtype=np.int64)
    p = p_better_batch(n_arr.astype(np.float64), total, total_sq, rule)
    ready = n_arr >= rule.min_pairs
    promote = ready & np.asarray(at_look, dtype=bool) & (p >= rule.promote_probability)
    rollback = ready & ~promote & (((1.0 - p) >= rule.rollback_probability)
                                   | (n_arr >= rule.max_pairs))
    codes = np.where(promote, PROMOTE, np.where(rollback, ROLLBACK, CONTINUE)).astype(np.int64)
    return codes, p


def decide(diffs: Sequence[float], rule: DecisionRule, last_look: int = 0) -> Decision:
    """The decision for one running test, given its paired differences so far.

    ``last_look`` is the newest look already taken (pairs can arrive several at a
    time, so the service passes the look it last evaluated; a look is taken once).
    """
    n = len(diffs)
    if n == 0:
        return Decision("continue", 0, None, None, None, "no pairs yet")
    arr = np.asarray(diffs, dtype=np.float64)
    look = rule.look_reached(n, last_look)
    codes, p = decide_batch(n, float(arr.sum()), float((arr * arr).sum()), rule, look is not None)
    code = int(codes.reshape(-1)[0])
    p_better = float(p.reshape(-1)[0])
    p_worse = 1.0 - p_better
    mean = float(arr.mean())
    if code == PROMOTE:
        reason = (f"P(challenger better) = {p_better:.3f} >= {rule.promote_probability} "
                  f"after {n} pairs (mean difference {mean:+.2f} stars)")
    elif code == ROLLBACK and p_worse >= rule.rollback_probability:
        reason = (f"P(challenger worse) = {p_worse:.3f} >= {rule.rollback_probability} "
                  f"after {n} pairs (mean difference {mean:+.2f} stars)")
    elif code == ROLLBACK:
        reason = (f"{n} pairs (maximum {rule.max_pairs}) without a promotion: "
                  f"P(challenger better) = {p_better:.3f}")
    elif n < rule.min_pairs:
        reason = f"{n} of at least {rule.min_pairs} pairs"
    else:
        reason = f"undecided after {n} pairs: P(challenger better) = {p_better:.3f}"
    return Decision(OUTCOMES[code], n, round(mean, 4), round(p_better, 4),
                    round(p_worse, 4), reason)


# --- post-promotion monitor ---------------------------------------------------


@dataclass(frozen=True)
class MonitorRule:
    """Parameters of the post-promotion monitor (see the module docstring)."""

    min_samples: int = 10
    max_samples: int = 20
    rollback_probability: float = 0.975
    prior_sd: float = 0.5
    min_sd: float = 0.5


@dataclass(frozen=True)
class MonitorCheck:
    outcome: str  # watching | passed | rollback
    n_new: int
    n_reference: int
    delta: float | None
    p_degraded: float | None
    reason: str


def p_degraded_batch(
    n1: FloatArray | float, mean1: FloatArray | float, n0: FloatArray | float,
    mean0: FloatArray | float, sd: FloatArray | float, rule: MonitorRule,
) -> FloatArray:
    """``P(delta < 0)`` for the promoted version against the reference (arrays allowed)."""
    n1_ = np.maximum(np.asarray(n1, dtype=np.float64), 1.0)
    n0_ = np.maximum(np.asarray(n0, dtype=np.float64), 1.0)
    s = np.maximum(np.asarray(sd, dtype=np.float64), rule.min_sd)
    se2 = s * s * (1.0 / n1_ + 1.0 / n0_)
    diff = np.asarray(mean1, dtype=np.float64) - np.asarray(mean0, dtype=np.float64)
    post_var = 1.0 / (1.0 / se2 + 1.0 / rule.prior_sd**2)
    post_mean = post_var * diff / se2
    return np.asarray(ndtr(-post_mean / np.sqrt(post_var)), dtype=np.float64)


WATCHING = 0
PASSED = 2
MONITOR_OUTCOMES = {WATCHING: "watching", PASSED: "passed", ROLLBACK: "rollback"}


def monitor_batch(
    n1: IntArray | int, sum1: FloatArray | float, sumsq1: FloatArray | float,
    n0: IntArray | int, sum0: FloatArray | float, sumsq0: FloatArray | float,
    rule: MonitorRule,
) -> tuple[IntArray, FloatArray]:
    """Monitor outcome codes (WATCHING / PASSED / ROLLBACK) and ``P(degraded)`` for many
    promoted versions, from the sufficient statistics of new (1) and reference (0) ratings."""
    n1_ = np.asarray(n1, dtype=np.float64)
    n0_ = np.asarray(n0, dtype=np.float64)
    mean1 = np.asarray(sum1, dtype=np.float64) / np.maximum(n1_, 1.0)
    mean0 = np.asarray(sum0, dtype=np.float64) / np.maximum(n0_, 1.0)
    ss = (np.asarray(sumsq1, dtype=np.float64) - n1_ * mean1**2
          + np.asarray(sumsq0, dtype=np.float64) - n0_ * mean0**2)
    sd = np.sqrt(np.maximum(ss, 0.0) / np.maximum(n1_ + n0_ - 2.0, 1.0))
    p = p_degraded_batch(n1_, mean1, n0_, mean0, sd, rule)
    rollback = (n1_ >= rule.min_samples) & (n0_ > 0) & (p >= rule.rollback_probability)
    passed = ~rollback & ((n1_ >= rule.max_samples) | (n0_ == 0))
    codes = np.where(rollback, ROLLBACK, np.where(passed, PASSED, WATCHING)).astype(np.int64)
    return codes, p


def monitor(new: Sequence[float], reference: Sequence[float], rule: MonitorRule) -> MonitorCheck:
    """Whether a promoted version has degraded against the old champion's reference."""
    n1, n0 = len(new), len(reference)
    if n0 == 0:
        return MonitorCheck("passed", n1, 0, None, None, "no reference ratings to compare with")
    if n1 == 0:
        return MonitorCheck("watching", 0, n0, None, None, "no ratings since the promotion")
    x = np.asarray(new, dtype=np.float64)
    y = np.asarray(reference, dtype=np.float64)
    codes, probs = monitor_batch(n1, x.sum(), (x * x).sum(), n0, y.sum(), (y * y).sum(), rule)
    outcome = MONITOR_OUTCOMES[int(codes.reshape(-1)[0])]
    p = float(probs.reshape(-1)[0])
    delta = round(float(x.mean() - y.mean()), 4)
    if outcome == "rollback":
        return MonitorCheck("rollback", n1, n0, delta, round(p, 4),
                            f"P(degraded) = {p:.3f} >= {rule.rollback_probability} after {n1} "
                            f"ratings ({delta:+.2f} stars against the previous champion)")
    if outcome == "passed":
        return MonitorCheck("passed", n1, n0, delta, round(p, 4),
                            f"held up for {n1} ratings (P(degraded) = {p:.3f})")
    return MonitorCheck("watching", n1, n0, delta, round(p, 4),
                        f"{n1} of {rule.max_samples} ratings watched (P(degraded) = {p:.3f})")
