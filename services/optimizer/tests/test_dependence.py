"""Partial dependence: the closed form of the band, and curves that find the
parameter that matters."""

from __future__ import annotations

import numpy as np
import pytest

from services.common.parameter_space import DIMENSIONS
from services.optimizer import gp
from services.optimizer.config import GPConfig
from services.optimizer.dependence import _group_moments, partial_dependence
from services.optimizer.fitting import FittedModel, fit_model
from services.optimizer.space import Context, Observation, SearchSpace, from_unit, to_unit

CONTEXT = Context("structure", "1.0.0")
SPACE = SearchSpace.for_providers(["local"])


def strength_world(n: int = 40, seed: int = 0) -> FittedModel:
    """Ratings rise by ~3 stars with strength; guidance and structure do nothing."""
    rng = np.random.default_rng(seed)
    observations = []
    for i in range(n):
        u = rng.uniform(size=3)
        rating = int(np.clip(round(1.5 + 3.0 * u[0] + rng.normal(0, 0.3)), 1, 5))
        observations.append(Observation("local", from_unit(u), rating, image_id=f"img{i // 2}",
                                        rater="t@x", mode="structure", prompt_version="1.0.0"))
    return fit_model(observations, GPConfig(n_initial_points=5))


def test_group_moments_equal_the_brute_force_posterior_of_the_average() -> None:
    model = strength_world(24)
    post = model.posterior
    rng = np.random.default_rng(5)
    groups = rng.uniform(size=(4, 7, 3))
    means, variances = _group_moments(post, groups, 2, 0, 0)
    for j in range(4):
        query = gp.Query(groups[j], np.full(7, 2), 0, 0)
        cross = post.cross(query)
        w = post.whiten(cross)
        cov = post.prior_cov(query, np.arange(7)) - w.T @ w  # full 7×7 posterior
        assert means[j] == pytest.approx(float(post.mean(query, cross).mean()), abs=1e-10)
        assert variances[j] == pytest.approx(float(cov.sum()) / 49, rel=1e-8, abs=1e-12)


def test_the_parameter_that_matters_has_the_steep_curve() -> None:
    model = strength_world()
    effects = {e.parameter: e for e in partial_dependence(model, SPACE, CONTEXT)}
    assert set(effects) == {d.name for d in DIMENSIONS}
    rise = {name: e.points[-1].mean - e.points[0].mean for name, e in effects.items()}
    assert rise["strength"] > 1.5
    assert abs(rise["guidance"]) < 0.6 and abs(rise["structure"]) < 0.6
    for effect in effects.values():
        for p in effect.points:
            assert p.low <= p.mean <= p.high
    # The band is narrower where the average is pinned down than the rating scale.
    widths = [p.high - p.low for e in effects.values() for p in e.points]
    assert max(widths) < 2.0


def test_a_slice_passes_through_the_recommendation() -> None:
    model = strength_world()
    rec = model.analyse(SPACE, CONTEXT).recommendation()
    assert rec.predicted_rating is not None
    effects = partial_dependence(model, SPACE, CONTEXT, points=101, method="slice")
    for effect, d in zip(effects, DIMENSIONS, strict=True):
        unit = to_unit(rec.values)[[x.name for x in DIMENSIONS].index(d.name)]
        nearest = effect.points[int(round(unit * 100))]
        assert nearest.mean == pytest.approx(rec.predicted_rating, abs=0.05)
    # Seen from the recommendation, no single change does better by much.
    assert max(p.mean for e in effects for p in e.points) <= rec.predicted_rating + 0.05
