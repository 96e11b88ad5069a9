"""What to use now, and how sure the model is: the recommendation and the
assessment that ``GET /ml/status`` reports, from a fitted model or, while there is
none, from the best rating observed.

Both functions take the model as an argument (``None`` while there is none) and
use it once ``space``'s providers have ``n_initial_points`` observations:
obtaining it is the caller's business (the service's ``ModelKeeper``, or
:func:`services.optimizer.fitting.model_for` in process). A numerical failure never
reaches the caller: it is logged and the best observed point is recommended.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from services.optimizer.analysis import ProviderPosterior, Recommendation
from services.optimizer.fitting import FittedModel, has_enough_data
from services.optimizer.space import Context, Observation, SearchSpace

log = logging.getLogger(__name__)


def observed_best(space: SearchSpace, observations: Sequence[Observation]) -> Recommendation | None:
    """The best-rated observation of ``space``'s providers (latest among ties)."""
    relevant = [o for o in observations if space.contains(o)]
    if not relevant:
        return None
    best = max(reversed(relevant), key=lambda o: o.rating)
    return Recommendation(best.provider, dict(best.values), None, "observed")


def recommend(
    space: SearchSpace,
    observations: Sequence[Observation],
    model: FittedModel | None,
    context: Context | None = None,
) -> Recommendation | None:
    """The posterior-mean best once there is a model, else the best observed point;
    ``None`` without observations in ``space``."""
    try:
        if model is not None and has_enough_data(space, observations, model.config):
            return model.analyse(space, context or model.default_context()).recommendation()
    except Exception:
        log.exception("GP recommendation failed; falling back to the best observed point")
    return observed_best(space, observations)


@dataclass(frozen=True)
class Assessment:
    """Everything ``GET /ml/status`` reports about the model for one space and context."""

    recommendation: Recommendation | None
    context: Context | None = None
    probability_within: float | None = None
    tolerance: float | None = None
    expected_regret: float | None = None
    providers: list[ProviderPosterior] = field(default_factory=list)
    hyperparameters: dict[str, float] = field(default_factory=dict)
    trainer_bias: dict[str, float] = field(default_factory=dict)
    observations_used: int = 0


def assess(
    space: SearchSpace,
    observations: Sequence[Observation],
    model: FittedModel | None,
    context: Context | None = None,
) -> Assessment:
    """Recommendation, principled convergence and per-provider posterior (or the best
    observed point while there is no model)."""
    from services.optimizer.convergence import posterior_convergence

    try:
        if model is not None and has_enough_data(space, observations, model.config):
            ctx = context or model.default_context()
            analysis = model.analyse(space, ctx)
            conv = posterior_convergence(
                analysis.samples, analysis.rec_sample(), model.config.convergence_tolerance
            )
            return Assessment(
                recommendation=analysis.recommendation(),
                context=ctx,
                probability_within=conv.probability_within,
                tolerance=conv.tolerance,
                expected_regret=conv.expected_regret,
                providers=analysis.provider_posteriors(),
                hyperparameters=model.posterior.describe(),
                trainer_bias=model.trainer_biases(),
                observations_used=model.n_observations,
            )
    except Exception:
        log.exception("GP assessment failed; falling back to the best observed point")
    return Assessment(observed_best(space, observations))
