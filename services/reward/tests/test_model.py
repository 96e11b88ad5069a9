"""The rating ensemble and its metrics, on data with known answers."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from services.reward.metrics import evaluate
from services.reward.model import CLASSICAL_KIND, RATING_MAX, RATING_MIN, fit_classical


def synthetic(n: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    y = np.clip(3 + 0.8 * X[:, 0] - 0.5 * X[:, 1] + rng.normal(0, noise, n), 1, 5)
    return X, y


def test_metrics_known_answers() -> None:
    y = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    m = evaluate(y, y + np.array([0.1, -0.2, 0.6, 0.0, -1.0]), np.full(5, 0.5))
    assert m.n == 5
    assert m.mae == pytest.approx(0.38)
    assert m.within_05 == pytest.approx(3 / 5)
    assert m.coverage_68 == pytest.approx(3 / 5)  # |err| ≤ 0.5
    assert m.coverage_95 == pytest.approx(4 / 5)  # |err| ≤ 0.98
    # Ranks of the predictions with the tie: 1, 2, 3, 4.5, 4.5 -> r = 9.5 / sqrt(10 * 9.5).
    assert m.srcc == pytest.approx(9.5 / np.sqrt(95.0))
    perfect = evaluate(y, 2 * y)
    assert (perfect.srcc, perfect.plcc) == pytest.approx((1.0, 1.0))
    assert evaluate(y, np.full(5, 3.0)).srcc == 0.0  # constant prediction: no ranking
    with pytest.raises(ValueError):
        evaluate(y, y[:3])


def test_ensemble_learns_and_its_uncertainty_is_calibrated() -> None:
    X, y = synthetic(300, noise=0.4, seed=0)
    Xt, yt = synthetic(400, noise=0.4, seed=1)
    model = fit_classical(X, y, resamples=3, seed=0)
    assert model.kind == CLASSICAL_KIND and len(model.members) == 9
    mean, std = model.predict(Xt)
    m = evaluate(yt, mean, std)
    constant = evaluate(yt, np.full(len(yt), y.mean()))
    assert m.srcc > 0.8 and m.mae < 0.7 * constant.mae
    assert 0.55 < m.coverage_68 < 0.85 and 0.88 < m.coverage_95 <= 1.0
    # The noise floor dominates: std is about the label noise, not the member spread.
    assert 0.3 < float(np.median(std)) < 0.7
    assert np.all((mean >= RATING_MIN) & (mean <= RATING_MAX))


def test_uncertainty_is_larger_far_from_the_training_data() -> None:
    X, y = synthetic(200, noise=0.2, seed=2)
    model = fit_classical(X, y, resamples=4, seed=0)
    near = model.predict(X[:50])[1].mean()
    far = model.predict(X[:50] + 6.0)[1].mean()
    assert far > near


def test_model_pickles_and_predicts_the_same() -> None:
    X, y = synthetic(60, noise=0.3, seed=3)
    model = fit_classical(X, y, resamples=2, seed=0)
    copy = pickle.loads(pickle.dumps(model))
    np.testing.assert_allclose(copy.predict(X)[0], model.predict(X)[0])
    with pytest.raises(ValueError):
        model.predict(X[:, :3])
    with pytest.raises(ValueError):
        fit_classical(X[:4], y[:4])


def test_flat_trees_give_scikit_learns_tree_predictions_exactly() -> None:
    # The tree members evaluate all trees at once as flat arrays; the values must be
    # the ones scikit-learn's own tree-by-tree prediction gives, bit for bit, also for
    # missing values and after a pickle round trip (which drops the flat arrays).
    X, y = synthetic(200, noise=0.3, seed=3)
    model = fit_classical(X, y, resamples=2, seed=0)
    rows = synthetic(50, noise=0.3, seed=4)[0]
    rows[0, 0] = np.nan
    rows[1, :] = np.nan
    rows[2, 1] = np.inf
    copy = pickle.loads(pickle.dumps(model))
    trees = [m for m in copy.members if type(m).__name__ == "_Trees"]
    boosting = [m for m in copy.members if type(m).__name__ == "_Boosting"]
    assert trees and boosting
    # Rows exactly at (or rounding onto) a root split's threshold, where < and <= differ.
    root = boosting[0].model._predictors[0][0].nodes[0]
    rows[3, root["feature_idx"]] = root["num_threshold"]
    tree = trees[0].trees[0]
    rows[4, tree.feature[0]] = float(np.float32(tree.threshold[0]))
    for member in trees:
        assert "_flat_trees" not in member.__dict__
        X32 = rows.astype(np.float32)
        expected = np.mean([t.predict(X32)[:, 0] for t in member.trees], axis=0)
        assert np.array_equal(member.predict(rows), expected)
    for member in boosting:
        assert np.array_equal(member.predict(rows), member.model.predict(rows))
    # (The kernel ridge member gives NaN for the rows with NaN.)
    both = copy.member_predictions(rows), model.member_predictions(rows)
    assert np.array_equal(*both, equal_nan=True)
