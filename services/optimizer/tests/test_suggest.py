"""Suggestions and the model, without HTTP or a database."""

from __future__ import annotations

import math
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from services.common.parameter_space import DIMENSIONS, random_values
from services.optimizer.config import GPConfig
from services.optimizer.fitting import ModelCache, fit_model, fit_window
from services.optimizer.recommendation import recommend
from services.optimizer.space import Context, Observation, SearchSpace
from services.optimizer.suggest import initial_design, random_suggestions, suggest
from services.optimizer.tests._inprocess import assess_with, recommend_with, suggest_with

BOUNDS = {d.name: (d.low, d.high) for d in DIMENSIONS}
# Off-centre on purpose: the centre of the box is ~0.56 from it, a random point ~0.7.
OPTIMUM = {"strength": 0.15, "guidance": 10.5, "structure": 0.95}
REPO_ROOT = Path(__file__).resolve().parents[3]
CONTEXT = Context("structure", "1.0.0")


def small_config(**overrides: object) -> GPConfig:
    """A five-observation start-up design, so the model is exercised with few ratings."""
    return GPConfig(**{"n_initial_points": 5, **overrides})  # type: ignore[arg-type]


def distance_to_optimum(values: dict[str, float]) -> float:
    """Euclidean distance in the unit cube (each dimension scaled to [0, 1])."""
    return math.sqrt(
        sum(((values[k] - OPTIMUM[k]) / (BOUNDS[k][1] - BOUNDS[k][0])) ** 2 for k in OPTIMUM)
    )


def quality(provider: str, values: dict[str, float]) -> float:
    """5 stars at the optimum with local, falling quadratically; leonardo 1.5 lower."""
    return 5 - 8 * distance_to_optimum(values) ** 2 - (1.5 if provider == "leonardo" else 0)


def quadratic_rating(provider: str, values: dict[str, float]) -> int:
    return int(min(5, max(1, round(quality(provider, values)))))


def observation(provider: str, values: dict[str, float], rating: float, i: int) -> Observation:
    return Observation(
        provider,
        values,
        rating,
        experiment_id=f"e{i // 2}",
        image_id=f"img{i // 2}",
        rater="t@example.com",
        mode="structure",
        prompt_version="1.0.0",
    )


def random_observations(n: int, providers: list[str], seed: int = 0) -> list[Observation]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        provider = rng.choice(providers)
        values = random_values(rng)
        out.append(observation(provider, values, quadratic_rating(provider, values), i))
    return out


def in_bounds(values: dict[str, float]) -> bool:
    return all(BOUNDS[k][0] <= v <= BOUNDS[k][1] for k, v in values.items())


def test_start_up_design_is_repeatable_alternates_providers_and_continues() -> None:
    space = SearchSpace.for_providers(["local", "leonardo"])
    config = small_config(random_state=42)
    cache = ModelCache()
    first = suggest_with(space, [], 4, config, cache)
    assert suggest_with(space, [], 4, config, cache) == first
    assert all(s.source == "random" for s in first)
    assert all(in_bounds(s.values) for s in first)
    assert [s.provider for s in first] == [*space.providers, *space.providers]
    assert len({s.values["strength"] for s in first}) == 4
    # One more observation: the next points of the same sequence, not a reshuffle.
    after_one = suggest_with(space, random_observations(1, ["local"]), 4, config, cache)
    assert [s.values for s in after_one[:3]] == [s.values for s in first[1:]]
    assert after_one == initial_design(space, 4, 1, 42)
    assert cache.misses == 0  # no model was fitted in the start-up phase


def test_start_up_design_covers_the_box_more_evenly_than_random_points() -> None:
    from scipy.stats import qmc

    space = SearchSpace.for_providers(["local"])

    def unit(batch: list) -> np.ndarray:
        return np.array(
            [[(s.values[k] - BOUNDS[k][0]) / (BOUNDS[k][1] - BOUNDS[k][0]) for k in OPTIMUM]
             for s in batch]
        )

    design = [qmc.discrepancy(unit(initial_design(space, 10, 0, seed))) for seed in range(10)]
    uniform = [qmc.discrepancy(unit(random_suggestions(space, 10, seed))) for seed in range(10)]
    assert max(design) < np.median(uniform)


def test_observations_of_disabled_providers_do_not_count() -> None:
    space = SearchSpace.for_providers(["local"])
    leonardo_only = random_observations(10, ["leonardo"])
    batch = suggest_with(space, leonardo_only, 2, small_config(), ModelCache())
    assert [s.source for s in batch] == ["random", "random"]
    assert {s.provider for s in batch} == {"local"}


@pytest.mark.parametrize("providers", [["local"], ["local", "leonardo", "stablediffusion"]])
def test_after_initial_points_suggestions_are_bayesian_and_in_bounds(
    providers: list[str],
) -> None:
    space = SearchSpace.for_providers(providers)
    observations = random_observations(6, providers, seed=3)
    cache = ModelCache()
    batch = suggest_with(space, observations, 3, small_config(), cache, CONTEXT)
    assert [s.source for s in batch] == ["bayesian"] * 3
    assert {s.strategy for s in batch} == {"thompson"}
    assert all(s.provider in providers and in_bounds(s.values) for s in batch)
    assert all(s.predicted_rating is not None for s in batch)
    assert len({tuple(s.values.values()) for s in batch}) == 3  # a batch is spread out
    assert suggest_with(space, observations, 3, small_config(), cache, CONTEXT) == batch
    assert (cache.misses, cache.hits) == (1, 1)  # same observations: fitted once


@pytest.mark.parametrize(("first", "rest"), [("exploit", "ei"), ("thompson", "ucb")])
def test_other_batch_rules_give_distinct_points(first: str, rest: str) -> None:
    space = SearchSpace.for_providers(["local"])
    observations = random_observations(8, ["local"], seed=2)
    config = small_config(first_variant=first, other_variants=rest)
    batch = suggest_with(space, observations, 2, config, ModelCache(), CONTEXT)
    assert [s.source for s in batch] == ["bayesian"] * 2
    assert batch[0].values != batch[1].values
    if first == "exploit":
        rec = recommend_with(space, observations, config, ModelCache(), CONTEXT)
        assert rec is not None and batch[0].values == rec.values
        assert batch[1].strategy == "expected_improvement"
        assert batch[1].expected_improvement is not None and batch[1].expected_improvement >= 0


def test_new_observation_refits_the_model() -> None:
    space = SearchSpace.for_providers(["local"])
    observations = random_observations(8, ["local"], seed=5)
    cache = ModelCache()
    suggest_with(space, observations, 2, small_config(), cache)
    more = [*observations, observation("local", OPTIMUM, 5, 99)]
    suggest_with(space, more, 2, small_config(), cache)
    assert cache.misses == 2


@pytest.mark.parametrize("seed", [1, 2])
def test_optimizer_moves_toward_the_optimum_of_a_quadratic_surface(seed: int) -> None:
    """Closed loop on a synthetic rating surface: random points, then batches of 2."""
    space = SearchSpace.for_providers(["local", "leonardo"])
    config = small_config(random_state=seed)
    cache = ModelCache()
    observations: list[Observation] = []
    sources: list[str] = []
    while len(observations) < 24:
        for s in suggest_with(space, observations, 2, config, cache, CONTEXT):
            rating = quadratic_rating(s.provider, s.values)
            observations.append(observation(s.provider, s.values, rating, len(observations)))
            sources.append(s.source)
    assert sources[:6] == ["random"] * 6 and set(sources[6:]) == {"bayesian"}
    rec = recommend_with(space, observations, config, cache, CONTEXT)
    assert rec is not None and rec.source == "model"
    assert rec.provider == "local"
    # Observed 0.03-0.2 over seeds 1-6; the box centre is ~0.56 away.
    assert distance_to_optimum(rec.values) < 0.3
    assert rec.predicted_rating is not None and rec.predicted_rating >= 4.0
    assert rec.interval is not None and rec.interval[0] <= rec.predicted_rating <= rec.interval[1]
    random_mean = np.mean([o.rating for o in observations[:6]])
    bayesian_mean = np.mean([o.rating for o in observations[6:]])
    assert bayesian_mean > random_mean + 0.8


def test_thompson_sampling_stops_wasting_samples_on_a_worse_provider() -> None:
    space = SearchSpace.for_providers(["local", "leonardo"])
    observations = random_observations(40, ["local", "leonardo"], seed=11)
    model_view = assess_with(space, observations, small_config(), ModelCache(), CONTEXT)
    probabilities = {p.provider: p.probability_best for p in model_view.providers}
    assert probabilities["local"] > 0.9 and probabilities["leonardo"] < 0.1
    providers = [
        s.provider
        for seed in range(4)
        for s in suggest_with(
            space, observations, 2, small_config(random_state=seed), ModelCache()
        )
    ]
    assert providers.count("leonardo") <= 1


def test_second_variant_challenges_the_leading_provider_while_it_is_uncertain() -> None:
    """Top-two Thompson sampling: two equally good providers are both kept in play."""
    space = SearchSpace.for_providers(["local", "leonardo"])
    rng = random.Random(21)
    observations = []
    for i in range(0, 16, 2):  # each experiment: both providers, same parameters, same stars
        values = random_values(rng)
        rating = quadratic_rating("local", values)
        observations += [
            observation(p, values, rating, i + k) for k, p in enumerate(space.providers)
        ]
    model_view = assess_with(space, observations, small_config(), ModelCache(), CONTEXT)
    probabilities = [p.probability_best for p in model_view.providers]
    assert min(probabilities) > 0.05  # precondition: neither provider is ruled out
    for seed in range(4):
        config = small_config(random_state=seed)
        batch = suggest_with(space, observations, 2, config, ModelCache())
        assert {s.provider for s in batch} == {"local", "leonardo"}


def test_recommendation_before_the_model_is_the_best_observed_point() -> None:
    space = SearchSpace.for_providers(["local", "leonardo"])
    observations = [
        Observation("local", {"strength": 0.3, "guidance": 7.0, "structure": 0.8}, 3),
        Observation("leonardo", {"strength": 0.4, "guidance": 9.0, "structure": 0.9}, 4),
        Observation("local", {"strength": 0.2, "guidance": 6.0, "structure": 0.75}, 4),
    ]
    rec = recommend_with(space, observations, small_config(), ModelCache())
    assert rec is not None
    assert (rec.provider, rec.values, rec.source, rec.predicted_rating) == (
        "local",
        observations[2].values,
        "observed",
        None,
    )
    assert recommend_with(space, [], small_config(), ModelCache()) is None


def test_model_is_conditioned_on_the_most_recent_window() -> None:
    observations = random_observations(30, ["local"], seed=9)
    config = small_config(max_fit_observations=10, hyper_fit_observations=10)
    window = fit_window(observations, config)
    assert window == observations[-10:]
    cache = ModelCache()
    space = SearchSpace.for_providers(["local"])
    suggest_with(space, observations, 2, config, cache)
    assert cache.get(window, config).n_observations == 10
    assert (cache.misses, cache.hits) == (1, 1)


def test_importing_the_service_does_not_import_the_numerical_libraries() -> None:
    code = (
        "import sys, services.optimizer.main; "
        "print(any(m in sys.modules for m in ('scipy', 'skopt', 'sklearn')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    )
    assert out.stdout.strip() == "False"


def test_a_failing_analysis_degrades_to_random_points_and_the_observed_best(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import services.optimizer.fitting as fitting

    space = SearchSpace.for_providers(["local"])
    observations = random_observations(8, ["local"], seed=4)
    model = fit_model(fit_window(observations, small_config()), small_config())

    def broken(*args: object, **kwargs: object) -> None:
        raise np.linalg.LinAlgError("not positive definite")

    monkeypatch.setattr(fitting, "analyse", broken)
    batch = suggest(space, observations, 2, small_config(), model)
    assert batch == random_suggestions(space, 2, small_config().random_state + 8)
    assert all(s.source == "random" for s in batch)
    rec = recommend(space, observations, model)
    assert rec is not None and rec.source == "observed"
    assert rec.values == max(reversed(observations), key=lambda o: o.rating).values


def test_leonardo_suggestions_carry_integer_guidance() -> None:
    """Leonardo's guidance_scale is an Int: every suggestion for it (start-up design,
    Bayesian batch, random fallback) is already a whole number, so the GP learns from
    the value that was sent; other providers keep continuous guidance."""
    space = SearchSpace.for_providers(["leonardo", "local"])
    config = small_config(random_state=7)
    start = suggest(space, [], 4, config, None)
    rng = random.Random(3)
    rated = []
    for i in range(12):
        provider = ("leonardo", "local")[i % 2]
        values = random_values(rng)
        if provider == "leonardo":
            values["guidance"] = float(round(values["guidance"]))
        rated.append(observation(provider, values, quadratic_rating(provider, values), i))
    bayesian = suggest(space, rated, 6, config, fit_model(fit_window(rated, config), config))
    fallback = random_suggestions(space, 8, seed=1)
    assert {s.source for s in bayesian} == {"bayesian"}
    batches = [start, bayesian, fallback]
    leonardo = [s for batch in batches for s in batch if s.provider == "leonardo"]
    local = [s for batch in batches for s in batch if s.provider == "local"]
    assert leonardo and local
    assert all(s.values["guidance"] == int(s.values["guidance"]) for s in leonardo)
    assert all(in_bounds(s.values) for s in leonardo)
    assert any(s.values["guidance"] != int(s.values["guidance"]) for s in local)


def test_without_a_model_yet_the_start_up_design_continues() -> None:
    """Enough ratings but no fitted model (the first fit is still running, or failed):
    the space-filling design goes on, and the recommendation is the observed best."""
    space = SearchSpace.for_providers(["local"])
    observations = random_observations(8, ["local"], seed=4)
    batch = suggest(space, observations, 2, small_config(), None)
    assert batch == initial_design(space, 2, 8, small_config().random_state)
    rec = recommend(space, observations, None)
    assert rec is not None and rec.source == "observed"
