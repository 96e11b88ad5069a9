"""The rating-aware GP: gradients, render offsets, trainer bias, context transfer."""

from __future__ import annotations

import numpy as np
import pytest

from services.optimizer import gp
from services.optimizer.config import GPConfig
from services.optimizer.convergence import posterior_convergence
from services.optimizer.encoding import encode
from services.optimizer.fitting import ModelCache, fit_model
from services.optimizer.space import Context, Observation, SearchSpace, from_unit
from services.optimizer.tests._inprocess import assess_with

SPACE = SearchSpace.for_providers(["local"])


@pytest.mark.parametrize("contexts", [2, 1])  # 1: one mode and version (skipped factors)
def test_log_posterior_gradient_matches_finite_differences(contexts: int) -> None:
    rng = np.random.default_rng(0)
    n = 24
    design = gp.Design(
        x=rng.uniform(size=(n, 3)),
        provider=rng.integers(0, 2, n),
        mode=rng.integers(0, contexts, n),
        version=rng.integers(0, contexts, n),
        image=np.arange(n) // 2,
        rater=rng.integers(0, 3, n),
    )
    y = rng.integers(1, 6, n).astype(float) - gp.PRIOR_MEAN
    terms = gp._Terms(design)
    t = np.array([h.to_t(h.centre) for h in gp.HYPERPARAMETERS]) + rng.normal(0, 0.3, gp.N_HYPER)
    _, grad = gp.neg_log_posterior(t, terms, y)
    for k in range(gp.N_HYPER):
        step = np.zeros_like(t)
        step[k] = 1e-6
        numeric = (
            gp.neg_log_posterior(t + step, terms, y)[0]
            - gp.neg_log_posterior(t - step, terms, y)[0]
        ) / 2e-6
        assert grad[k] == pytest.approx(numeric, rel=1e-4, abs=1e-6), gp.HYPERPARAMETERS[k].name
    # The fit's contractions equal those of the explicit gradient matrices.
    th = gp._natural(t)
    _, parts = terms._kernel(th)
    w = rng.normal(size=(n, n))
    w = w + w.T
    explicit = [float(np.sum(w * g)) for g in terms.covariance(th, grad=True)[1]]
    assert terms.gradient_dots(th, parts, w) == pytest.approx(explicit, rel=1e-9, abs=1e-9)


def _paired_world(seed: int) -> list[Observation]:
    """Two parameter sets, A (true 4 stars) and B (true 3), always rated side by side.

    A happens to be shown on hard renders (−1.5) when the strict trainer rates, B on
    easy renders; averages of raw ratings favour B, the paired model must favour A.
    """
    rng = np.random.default_rng(seed)
    a = from_unit([0.2, 0.2, 0.2])
    b = from_unit([0.8, 0.8, 0.8])
    out = []
    for t in range(16):
        strict = t % 2 == 0
        render = -1.0 if strict else 1.0
        bias = -0.8 if strict else 0.8
        # A is shown mostly to the strict trainer; B to the lenient one, alone or paired.
        pairs = [(a, 4.0), (b, 3.0)] if strict or t % 4 == 1 else [(b, 3.0), (b, 3.0)]
        for values, q in pairs:
            rating = int(np.clip(round(q + render + bias + rng.normal(0, 0.2)), 1, 5))
            out.append(
                Observation(
                    "local",
                    values,
                    rating,
                    experiment_id=f"e{t}",
                    image_id=f"img{t}",
                    rater="strict@x" if strict else "lenient@x",
                    mode="structure",
                    prompt_version="1.0.0",
                )
            )
    return out


def test_render_offsets_and_trainer_bias_are_removed() -> None:
    observations = _paired_world(0)
    ratings_a = [o.rating for o in observations if o.values["strength"] < 0.3]
    ratings_b = [o.rating for o in observations if o.values["strength"] > 0.3]
    assert np.mean(ratings_a) < np.mean(ratings_b)  # raw averages are misleading
    model = fit_model(observations, GPConfig())
    design, _, vocab = encode(observations)
    query = gp.Query(
        np.array([[0.2, 0.2, 0.2], [0.8, 0.8, 0.8]]),
        np.array([2, 2]),
        vocab.mode("structure"),
        vocab.version("1.0.0"),
    )
    mean_a, mean_b = model.posterior.mean(query)
    # True difference +1 star; raw averages say about -0.5; the GP shrinks a little.
    assert 0.4 < mean_a - mean_b < 1.4
    bias = model.trainer_biases()
    assert bias["lenient@x"] - bias["strict@x"] > 0.8


def test_a_new_prompt_version_keeps_what_was_learned() -> None:
    rng = np.random.default_rng(1)
    best = np.array([0.8, 0.3, 0.7])
    observations = []
    for i in range(30):
        u = rng.uniform(size=3)
        q = 1.5 + 3.3 * np.exp(-((u - best) ** 2).sum() / (2 * 0.3**2))
        observations.append(
            Observation(
                "local",
                from_unit(u),
                int(np.clip(round(q + rng.normal(0, 0.3)), 1, 5)),
                image_id=f"img{i // 2}",
                rater="t@x",
                mode="structure",
                prompt_version="1.0.0",
            )
        )
    cache = ModelCache()
    for version in ("1.0.0", "2.0.0"):  # 2.0.0 has no ratings yet
        view = assess_with(SPACE, observations, GPConfig(), cache, Context("structure", version))
        assert view.recommendation is not None
        unit = np.array(
            [(view.recommendation.values[d] - lo) / (hi - lo) for d, lo, hi in
             (("strength", 0.1, 0.5), ("guidance", 5, 12), ("structure", 0.7, 0.99))]
        )
        assert np.linalg.norm(unit - best) < 0.3, version
        assert view.probability_within is not None and 0 <= view.probability_within <= 1
    # Unseen context: the same optimum, but less certain about the level.
    old = assess_with(SPACE, observations, GPConfig(), cache, Context("structure", "1.0.0"))
    new = assess_with(SPACE, observations, GPConfig(), cache, Context("structure", "2.0.0"))
    assert old.recommendation and new.recommendation
    assert old.recommendation.interval and new.recommendation.interval
    width = lambda i: i[1] - i[0]  # noqa: E731
    assert width(new.recommendation.interval) > width(old.recommendation.interval)
    assert cache.misses == 1  # one model serves every context


def test_posterior_convergence_known_answer() -> None:
    samples = np.array([[3.0, 2.0], [3.0, 2.5], [3.0, 3.2], [3.0, 4.0]])
    conv = posterior_convergence(samples, samples[:, 0], tolerance=0.25)
    assert conv.probability_within == 0.75
    assert conv.expected_regret == pytest.approx((0 + 0.5 * 0 + 0.2 + 1.0) / 4)


def test_a_fit_child_exits_when_its_parent_is_gone() -> None:
    """The child that searches hyperparameters watches its parent: here the "parent"
    it is given is not its parent, so it exits at once instead of sleeping."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import time; from services.optimizer.fitting import exit_with_parent; "
        "exit_with_parent(-1, 0.01); time.sleep(60); raise SystemExit(3)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[3],
                          timeout=50, capture_output=True)
    assert done.returncode == 0, done.stderr


def test_the_search_in_a_child_process_gives_the_same_model() -> None:
    from services.optimizer.fitting import ProcessFitter

    observations = _paired_world(3)
    fitter = ProcessFitter()
    try:
        child = fitter(observations, GPConfig())
    finally:
        fitter.close()
    here = fit_model(observations, GPConfig())
    assert child.key == here.key
    assert np.array_equal(child.posterior.t, here.posterior.t)
