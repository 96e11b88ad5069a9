"""The domain functions with a model obtained in process (``model_for`` + a cache), as
the benchmark's in-process method drives them."""

from __future__ import annotations

from collections.abc import Sequence

from services.optimizer.analysis import Recommendation
from services.optimizer.config import GPConfig
from services.optimizer.fitting import ModelCache, model_for
from services.optimizer.recommendation import Assessment, assess, recommend
from services.optimizer.space import Context, Observation, SearchSpace
from services.optimizer.suggest import Suggestion, suggest


def suggest_with(
    space: SearchSpace,
    observations: Sequence[Observation],
    n: int,
    config: GPConfig,
    cache: ModelCache,
    context: Context | None = None,
) -> list[Suggestion]:
    model = model_for(space, observations, config, cache)
    return suggest(space, observations, n, config, model, context)


def recommend_with(
    space: SearchSpace,
    observations: Sequence[Observation],
    config: GPConfig,
    cache: ModelCache,
    context: Context | None = None,
) -> Recommendation | None:
    return recommend(space, observations, model_for(space, observations, config, cache), context)


def assess_with(
    space: SearchSpace,
    observations: Sequence[Observation],
    config: GPConfig,
    cache: ModelCache,
    context: Context | None = None,
) -> Assessment:
    return assess(space, observations, model_for(space, observations, config, cache), context)
