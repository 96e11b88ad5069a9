"""Targets, calibration, grouped split, ranking metrics and the gate: known answers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from services.reward.calibration import fit_calibrator
from services.reward.gate import HeldOut, decide, paired_tolerances
from services.reward.learning import FitOptions, TrainingTable, fit_candidates, holdout_mask
from services.reward.metrics import best_of_n, evaluate, pair_accuracy
from services.reward.model import fit_classical
from services.reward.targets import image_targets, trainer_biases

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_trainer_bias_is_separated_from_image_quality() -> None:
    # 20 images of quality 1..5. Trainer "strict" rates one star lower than "kind" and
    # only rated the ten best, so their plain averages are pulled down half a star;
    # the joint model attributes most of that to the trainer (the priors shrink both
    # the image effects and the biases, so not all of it).
    quality = {f"i{k:02d}": 1.0 + 4.0 * k / 19 for k in range(20)}
    images, raters, ratings = [], [], []
    for img, q in quality.items():
        images.append(img)
        raters.append("kind")
        ratings.append(q)
        if q >= 3.0:
            images.append(img)
            raters.append("strict")
            ratings.append(q - 1)
    biases = trainer_biases(images, raters, ratings)
    assert 0.5 < biases["kind"] - biases["strict"] < 1.0
    targets = image_targets(images, raters, ratings)
    by_image = dict(zip(targets.images, targets.target, strict=True))
    # Gap between the best ten and the rest, against the truth: the plain averages
    # shrink it by 0.5 stars, the debiased targets by much less.
    best = [i for i, q in quality.items() if q >= 3.0]
    rest = [i for i in quality if i not in best]
    true_gap = np.mean([quality[i] for i in best]) - np.mean([quality[i] for i in rest])
    gap = np.mean([by_image[i] for i in best]) - np.mean([by_image[i] for i in rest])
    assert true_gap - 0.5 + 0.25 < gap <= true_gap + 1e-9
    assert targets.count[0] == 1 and targets.count[-1] == 2
    assert targets.weight[0] == pytest.approx(1.0) and targets.weight[-1] > 1.0
    # One trainer: nothing to separate, targets are the plain ratings.
    single = image_targets(["x", "y", "y"], ["t", "t", "t"], [2.0, 4.0, 5.0])
    np.testing.assert_allclose(single.target, [2.0, 4.5], atol=1e-6)
    assert single.biases["t"] == pytest.approx(0.0, abs=1e-6)


def test_isotonic_calibration_is_monotone_and_keeps_the_order() -> None:
    rng = np.random.default_rng(0)
    truth = rng.uniform(1, 5, 400)
    score = 3 + 0.4 * (truth - 3) + rng.normal(0, 0.15, 400)  # compressed toward 3
    cal = fit_calibrator(score, truth, kind="isotonic")
    s = np.linspace(score.min() - 1, score.max() + 1, 200)
    out = cal(s)
    assert np.all(np.diff(out) >= 0) and out.min() >= 1.0 and out.max() <= 5.0
    inside = (s > cal.knots_x[0]) & (s < cal.knots_x[-1])
    assert np.all(np.diff(out[inside]) > 0)  # strictly increasing: no ties created
    spread_before = np.ptp(score)
    assert np.ptp(cal(score)) > 1.5 * spread_before  # it undoes the compression
    assert np.mean(np.abs(cal(score) - truth)) < np.mean(np.abs(score - truth))
    linear = fit_calibrator(score, truth, kind="linear")
    assert linear(np.array([3.4]))[0] > linear(np.array([3.0]))[0]
    assert fit_calibrator(score[:5], truth[:5]).kind == "none"  # too few points
    with pytest.raises(ValueError):
        fit_calibrator(score, truth, kind="spline")


def test_holdout_keeps_renders_and_images_whole() -> None:
    images = [f"img{k % 30}" for k in range(90)]  # every image rated 3 times
    groups = [f"render{(k % 30) // 3}" for k in range(90)]
    groups[5] = "render-other"  # img5 also appears in another render
    mask = holdout_mask(images, groups, 0.3)
    for img in set(images):
        sides = {m for i, m in zip(images, mask, strict=True) if i == img}
        assert len(sides) == 1, img
    assert 0 < mask.sum() < len(mask)
    assert np.array_equal(mask, holdout_mask(images, groups, 0.3))  # stable


def test_pair_accuracy_and_best_of_n_known_answers() -> None:
    y = np.array([5.0, 3.0, 3.0, 1.0, 4.0, 2.0])
    pred = np.array([4.0, 3.5, 3.5, 2.0, 2.0, 3.0])
    groups = ["r1", "r1", "r1", "r1", "r2", "r2"]
    acc, n = pair_accuracy(y, pred, groups)
    # r1: pairs with different stars: (0,1) ok, (0,2) ok, (0,3) ok, (1,3) ok, (2,3) ok;
    # (1,2) tied stars excluded. r2: (4,5) wrong. 5 of 6.
    assert n == 6 and acc == pytest.approx(5 / 6)
    bon = best_of_n(y, pred, groups)
    # r1 picks image 0 (5 stars) over the mean 3 → +2; r2 picks image 5 (2) vs 3 → -1.
    assert bon.gain == pytest.approx(0.5) and bon.sets == 2
    assert bon.oracle == pytest.approx((2 + 1) / 2)
    assert bon.low is not None and bon.high is not None and bon.low <= 0.5 <= bon.high
    m = evaluate(y, pred, groups=groups)
    assert m.pair_accuracy == pytest.approx(5 / 6) and m.best_of_n_gain == pytest.approx(0.5)
    # Different trainers' ratings are not compared with each other.
    assert pair_accuracy(y, pred, groups, raters=["a", "b", "a", "b", "a", "b"])[1] == 2


def _held(n_renders: int, seed: int) -> tuple[HeldOut, np.ndarray]:
    rng = np.random.default_rng(seed)
    quality = rng.normal(3, 1, 4 * n_renders)
    y = np.clip(np.round(quality + rng.normal(0, 0.3, len(quality))), 1, 5)
    held = HeldOut(
        y=y,
        groups=[f"g{k // 4}" for k in range(len(y))],
        raters=["t"] * len(y),
        images=[f"i{k}" for k in range(len(y))],
    )
    return held, quality


def test_gate_tolerance_shrinks_with_the_held_out_size_and_blocks_a_worse_ranker() -> None:
    small, q_small = _held(10, 0)
    large, q_large = _held(160, 0)
    rng = np.random.default_rng(1)
    tol_small = paired_tolerances(small, q_small, q_small + rng.normal(0, 0.5, len(q_small)))
    tol_large = paired_tolerances(large, q_large, q_large + rng.normal(0, 0.5, len(q_large)))
    assert tol_large["srcc"] < tol_small["srcc"]  # type: ignore[operator]
    assert tol_large["mae"] < tol_small["mae"]  # type: ignore[operator]
    # Identical predictions: zero tolerance, and the candidate is not worse.
    same = paired_tolerances(large, q_large, q_large)
    assert same["srcc"] == 0.0 and same["mae"] == 0.0

    good = q_large
    worse = 3 + 0.3 * (q_large - 3) + rng.normal(0, 1.0, len(q_large))  # ranks worse
    cand = evaluate(large.y, worse, groups=large.groups).as_dict()
    act = evaluate(large.y, good, groups=large.groups).as_dict()
    constant = evaluate(large.y, np.full(len(large.y), 3.0)).as_dict()
    tolerances = paired_tolerances(large, worse, good)
    decision = decide(
        cand, constant, min_srcc=0.1, active=act, active_name="rm-1", tolerances=tolerances
    )
    failed = {c.name for c in decision.checks if not c.passed}
    assert not decision.passed and "srcc_vs_active" in failed
    assert "pair_accuracy_vs_active" in failed
    assert decision.reason.startswith("rejected")
    assert decide(
        act,
        constant,
        min_srcc=0.1,
        active=act,
        active_name="rm-1",
        tolerances=paired_tolerances(large, good, good),
    ).passed
    first = decide(act, constant, min_srcc=0.99)
    assert not first.passed and "minimum" in first.reason


def test_fit_candidates_through_the_table() -> None:
    rng = np.random.default_rng(4)
    n_img = 80
    X_img = rng.normal(size=(n_img, 5))
    quality = 3 + 0.9 * X_img[:, 0]
    rows = np.repeat(np.arange(n_img), 2)
    raters = ["kind", "strict"] * n_img
    y = np.clip(np.round(quality[rows] + np.where(np.array(raters) == "strict", -0.8, 0.0)), 1, 5)
    table = TrainingTable(
        images=[f"i{k}" for k in rows],
        groups=[f"g{k // 2}" for k in rows],
        raters=raters,
        y=y,
        classical=X_img[rows],
    )
    models = fit_candidates(table, np.ones(len(rows), bool), FitOptions(resamples=2))
    model = models["classical"]
    assert set(models) == {"classical"} and model.info["images"] == n_img
    biases = model.info["trainer_biases"]
    assert biases["kind"] - biases["strict"] > 0.4
    assert model.oob is not None and len(model.oob[0]) == n_img
    mean, _ = model.predict(X_img)
    assert np.corrcoef(mean, quality)[0, 1] > 0.8


def test_weights_and_groups_reach_the_ensemble() -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(60, 4))
    y = 3 + X[:, 0]
    model = fit_classical(X, y, weights=np.full(60, 2.0), groups=np.arange(60) // 3, resamples=2)
    assert model.info["calibration"]["kind"] == "isotonic"
    assert len(model.members) == 6


def test_importing_the_service_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys, services.reward.main; "
        "print([m for m in ('sklearn', 'torch', 'transformers', 'boto3', 'aioboto3', 'botocore') "
        "if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    )
    assert out.stdout.strip() == "[]"
