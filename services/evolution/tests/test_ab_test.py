"""The paired A/B decision and the post-promotion monitor, with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from services.evolution.ab_test import (
    PROMOTE,
    DecisionRule,
    MonitorRule,
    decide,
    decide_batch,
    monitor,
    p_better_batch,
)

RULE = DecisionRule()


def test_no_data_means_even_odds_and_the_posterior_is_symmetric() -> None:
    assert float(p_better_batch(0, 0.0, 0.0, RULE)) == pytest.approx(0.5)
    diffs = np.array([1, 0, 2, -1, 1, 0, 1])
    up = float(p_better_batch(len(diffs), diffs.sum(), (diffs**2).sum(), RULE))
    down = float(p_better_batch(len(diffs), -diffs.sum(), (diffs**2).sum(), RULE))
    assert up > 0.5 and up + down == pytest.approx(1.0)


def test_posterior_matches_the_closed_form_student_t() -> None:
    diffs = np.array([1.0, 0.0, 2.0, -1.0, 1.0, 1.0, 0.0, 1.0, 2.0, 0.0, 1.0, -1.0])
    n, mean = len(diffs), diffs.mean()
    ss = ((diffs - mean) ** 2).sum()
    k0, a0, s0 = RULE.prior_pairs, RULE.prior_sd_weight, RULE.prior_sd
    k_n, a_n = k0 + n, a0 + n / 2
    b_n = a0 * s0**2 + ss / 2 + k0 * n * mean**2 / (2 * k_n)
    expected = stats.t(df=2 * a_n, loc=n * mean / k_n, scale=math.sqrt(b_n / (a_n * k_n))).sf(0)
    assert float(p_better_batch(n, diffs.sum(), (diffs**2).sum(), RULE)) == pytest.approx(expected)


def test_weak_prior_and_many_pairs_agree_with_the_classical_z() -> None:
    rule = DecisionRule(prior_pairs=1e-6, prior_sd_weight=1e-6)
    rng = np.random.default_rng(0)
    diffs = rng.normal(0.1, 1.0, 5000)
    z = diffs.mean() / (diffs.std(ddof=1) / math.sqrt(len(diffs)))
    got = float(p_better_batch(len(diffs), diffs.sum(), (diffs**2).sum(), rule))
    assert got == pytest.approx(stats.norm.cdf(z), abs=2e-3)


def test_clear_win_is_promoted_at_the_first_look_not_before() -> None:
    wins = [1.0, 2.0, 1.0, 1.0, 0.0, 1.0, 2.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 2.0]
    assert decide(wins[:9], RULE).outcome == "continue"  # below min_pairs
    early = decide(wins[:14], RULE)  # convincing, but not a look yet
    assert early.outcome == "continue" and early.p_better is not None
    assert early.p_better >= 0.95
    decision = decide(wins, RULE)
    assert decision.outcome == "promote"
    assert decision.p_better is not None and decision.p_better >= 0.95
    assert "P(challenger better)" in decision.reason


def test_promotion_waits_for_a_look_between_looks() -> None:
    # Undecided at the look after 15 pairs, strong by 17: no promotion until the look at 20.
    diffs = [0.0, 1.0, -1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, -1.0, 1.0, 0.0, 0.0,
             2.0, 2.0]
    assert decide(diffs[:15], RULE).outcome == "continue"
    between = decide(diffs, RULE, last_look=15)
    assert between.outcome == "continue" and between.p_better is not None
    assert between.p_better >= 0.95
    # A burst of pairs that skips past a look still takes it (looks are not lost).
    assert decide(diffs, RULE, last_look=0).outcome == "promote"


def test_clear_loss_is_rolled_back_and_no_difference_stops_at_max_pairs() -> None:
    losses = [-1.0, -2.0, 0.0, -1.0, -1.0, 0.0, -1.0, -2.0, -1.0, 0.0]
    loss = decide(losses, RULE)
    assert loss.outcome == "rollback" and "worse" in loss.reason
    ties = [1.0, -1.0] * 10
    assert decide(ties[:19], RULE, last_look=15).outcome == "continue"
    final = decide(ties, RULE, last_look=15)
    assert final.outcome == "rollback" and "maximum" in final.reason


def test_batch_and_single_decisions_agree() -> None:
    rng = np.random.default_rng(3)
    diffs = rng.integers(-2, 3, size=(200, 10)).astype(float)
    codes, _ = decide_batch(np.full(200, 10), diffs.sum(1), (diffs**2).sum(1), RULE, True)
    assert (codes == PROMOTE).any()
    singles = [decide(list(row), DecisionRule(looks=(10, 20))).outcome for row in diffs]
    assert [s == "promote" for s in singles] == list(codes == PROMOTE)


def test_rule_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        DecisionRule(promote_probability=1.2)
    with pytest.raises(ValueError):
        DecisionRule(min_pairs=30, max_pairs=20)


def test_monitor_rolls_back_a_clear_drop_and_passes_a_steady_version() -> None:
    rule = MonitorRule()
    reference = [4.0, 3.0, 4.0, 4.0, 3.0, 4.0, 5.0, 3.0, 4.0, 4.0, 3.0, 4.0]
    drop = monitor([2.0, 1.0, 2.0, 2.0, 3.0, 1.0, 2.0, 2.0, 1.0, 2.0], reference, rule)
    assert drop.outcome == "rollback" and drop.p_degraded is not None and drop.p_degraded > 0.95
    early = monitor([1.0, 1.0, 1.0], reference, rule)
    assert early.outcome == "watching"  # fewer than min_samples
    steady = monitor(reference + reference[:8], reference, rule)
    assert steady.outcome == "passed"
    assert monitor([], [], rule).outcome == "passed"
