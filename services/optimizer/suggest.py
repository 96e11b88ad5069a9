"""Which parameters to try next: a space-filling start, then a Bayesian batch.

Notation as in :mod:`services.optimizer.gp`: ``μ(z)``, ``σ²(z)`` are the posterior
mean and variance of the quality ``q(z)`` in the request's context (mode, prompt
version); ``q*`` is the best posterior mean over the candidates (the incumbent).

Decisions made here:

* While fewer than ``n_initial_points`` observations exist for the enabled
  providers, suggestions come from a **scrambled Halton sequence** over the unit
  cube (seeded with ``random_state``; point ``n`` of the sequence for the ``n``-th
  observation, so the same state always gives the same suggestions), with the
  providers taken in turn, so every early experiment compares providers on one
  render. They keep the source label ``"random"`` on the wire (the gateway and its
  pages already call these start-up points exploration, not model choices).
  A low-discrepancy start covers the box more evenly than uniform draws: in
  simulation it drew level with random search at 5 rounds on the hardest surface
  (1.99 vs 1.94 stars), where six uniform points plus early Thompson draws from a
  barely fitted model were 0.4 stars behind (docs/benchmarks.md).
* After that, one experiment's batch is chosen by **Thompson sampling**: each
  variant takes its own joint draw of ``q`` from the posterior (over the most
  promising candidates of every enabled provider) and uses that draw's argmax,
  provider and parameters together.

  - **Provider** (seed 004, roadmap 3.1.A): the provider whose best sampled point
    is highest in the draw. A provider that is clearly worse is then almost never
    drawn, while one that is still uncertain is.
  - **Top-two challenger** (Russo 2016, "top-two Thompson sampling"): the goal of
    phase 1 is to *identify* the best provider and parameters, not to collect high
    ratings along the way. So when several providers are enabled, later variants
    of a batch use the first draw in which a *different* provider than the first
    variant's wins, as long as such draws have probability ≥
    ``challenger_floor``. A provider is thus tested until the posterior gives it
    under that probability of being best; plain Thompson sampling often settled
    on whichever provider's optimum it found first.
  - **Parameters**: the argmax of the same draw within that provider. Two draws
    give two different, individually plausible optima, so the pair both exploits
    (each is a possible best) and explores (where the posterior is unsure).

  Rendering and trainer offsets are integrated out by the model, so the two
  variants rated on one render are a paired comparison it learns from.

  The issue's example rule, "variant 1 exploits the posterior best, variant 2
  maximises Expected Improvement given the first", is implemented too
  (``first_variant="exploit"``, ``other_variants="ei"``:
  ``EI(z) = E[max(q(z) − q*, 0)]`` under the posterior updated with a fantasy
  rating at each earlier pick, its mean unchanged and its variance reduced as if
  rated with render, trainer and noise variance). In simulation (8 worlds per
  surface, 25 rounds) it got stuck on local optima: mean regret 1.6 / 0.34 /
  1.7 / 0.84 stars (narrow / broad / provider / boundary) against 0.7 / 0.2 / 0.5
  / 0.2 for Thompson draws, so Thompson sampling is the default.
* Every suggestion is **snapped** to what its provider can be sent
  (:func:`~services.common.parameter_space.snap`: Leonardo's guidance is an
  integer), so the point the optimizer proposes, the request the gateway makes and
  the observation that comes back with the rating are the same point.
* If acquisition fails, the batch falls back to uniformly random points marked
  ``"random"``: a trainer is never blocked by a numerical problem (it is logged).
  While no model has been fitted yet although there are enough observations (the
  first fit is still running, or it failed), the start-up design continues.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from services.common.parameter_space import random_values, snap
from services.optimizer.analysis import Analysis
from services.optimizer.config import Acquisition, GPConfig
from services.optimizer.fitting import FittedModel
from services.optimizer.space import Context, Observation, SearchSpace, from_unit

log = logging.getLogger(__name__)

Source = Literal["random", "bayesian"]
Strategy = Literal["random", "exploit", "expected_improvement", "thompson", "ucb"]


@dataclass(frozen=True)
class Suggestion:
    """One parameter set to try: provider, normalised values and how it was chosen.

    ``source`` is the coarse label the gateway stores; ``strategy``, the predicted
    rating and the provider's probability of being best say more.
    """

    provider: str
    values: dict[str, float]
    source: Source
    strategy: Strategy = "random"
    predicted_rating: float | None = None
    expected_improvement: float | None = None
    provider_probability: float | None = None


def random_suggestions(space: SearchSpace, n: int, seed: int) -> list[Suggestion]:
    """``n`` uniformly random points of ``space``, reproducible from ``seed``."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        provider = rng.choice(space.providers)
        out.append(Suggestion(provider, snap(provider, random_values(rng)), "random"))
    return out


def initial_design(space: SearchSpace, n: int, start: int, seed: int) -> list[Suggestion]:
    """Points ``start … start+n-1`` of a scrambled Halton sequence, providers in turn."""
    from scipy.stats import qmc  # lazily: importing the service must stay light

    points = qmc.Halton(d=3, scramble=True, seed=seed).random(start + n)[start:]
    providers = space.providers
    return [
        Suggestion(p, snap(p, from_unit(u)), "random")
        for p, u in ((providers[(start + i) % len(providers)], u) for i, u in enumerate(points))
    ]


def expected_improvement(mean: np.ndarray, sd: np.ndarray, incumbent: float) -> np.ndarray:
    """``E[max(q − incumbent, 0)]`` for ``q ~ N(mean, sd²)`` (elementwise)."""
    from scipy.stats import norm

    sd = np.maximum(sd, 1e-12)
    gap = mean - incumbent
    z = gap / sd
    return np.asarray(gap * norm.cdf(z) + sd * norm.pdf(z))


def bayesian_batch(
    analysis: Analysis,
    n: int,
    first: Acquisition = "thompson",
    rest: Acquisition = "thompson",
    challenger_floor: float = 0.05,
) -> list[Suggestion]:
    """``n`` variants: a Thompson draw each (later ones top-two challengers, see the
    module docstring), or the ``exploit`` / ``ei`` / ``ucb`` rules when configured."""
    mean, var = analysis.mean, analysis.var.copy()
    codes = analysis.query.provider
    several = len(analysis.providers) > 1
    probabilities = {p.provider: p.probability_best for p in analysis.provider_posteriors()}
    incumbent = float(mean.max())
    updates: list[np.ndarray] = []
    out: list[Suggestion] = []
    first_code: int | None = None
    for j in range(n):
        draw = j
        code = analysis.thompson_provider(draw) if several else int(codes[0])
        if several and first_code is not None:
            rivals = analysis.draws_won_by_other(first_code)
            if len(rivals) and len(rivals) >= challenger_floor * analysis.samples.shape[0]:
                draw = int(rivals[(j - 1) % len(rivals)])
                code = analysis.thompson_provider(draw)
        allowed = np.flatnonzero(codes == code)
        ei: float | None = None
        rule = first if j == 0 else rest
        if rule == "exploit":
            pick = int(allowed[np.argmax(mean[allowed])])
            strategy: Strategy = "exploit"
        elif rule == "thompson":
            pick = analysis.thompson_point(draw, code)
            strategy = "thompson"
        elif rule == "ucb":
            scores = mean[allowed] + 2.0 * np.sqrt(var[allowed])
            pick = int(allowed[np.argmax(scores)])
            strategy = "ucb"
        else:
            scores = expected_improvement(mean[allowed], np.sqrt(var[allowed]), incumbent)
            best = int(np.argmax(scores))
            pick, ei = int(allowed[best]), float(scores[best])
            strategy = "expected_improvement"
        # Fantasy rating at the pick: rank-one update of the candidates' variance.
        cov = analysis.covariance_with(pick)
        for u in updates:
            cov = cov - u * u[pick]
        u = cov / np.sqrt(max(float(var[pick]), 1e-12) + analysis.noise_var)
        updates.append(u)
        var = np.maximum(var - u * u, 1e-12)
        provider = analysis.provider_of(pick)
        if first_code is None:
            first_code = int(codes[pick])
        out.append(
            Suggestion(
                provider=provider,
                values=snap(provider, analysis.values_of(pick)),
                source="bayesian",
                strategy=strategy,
                predicted_rating=round(float(mean[pick]), 4),
                expected_improvement=None if ei is None else round(ei, 6),
                provider_probability=probabilities.get(provider) if several else None,
            )
        )
    return out


def suggest(
    space: SearchSpace,
    observations: Sequence[Observation],
    n: int,
    config: GPConfig,
    model: FittedModel | None,
    context: Context | None = None,
) -> list[Suggestion]:
    """A batch of ``n`` suggestions given every stored observation (oldest first) and
    the latest fitted model (``None`` while there is none)."""
    context = context or Context()
    relevant = sum(1 for o in observations if space.contains(o))
    if relevant < config.n_initial_points:
        return initial_design(space, n, relevant, config.random_state)
    if model is None:
        log.info("no fitted model yet (%d observations); continuing the start-up design",
                 relevant)
        return initial_design(space, n, relevant, config.random_state)
    try:
        analysis = model.analyse(space, context)
        batch: list[Suggestion] = model.memo(
            ("batch", space.providers, context, n),
            lambda: bayesian_batch(
                analysis, n, config.first_variant, config.other_variants, config.challenger_floor
            ),
        )
        return list(batch)
    except Exception:
        log.exception("Bayesian suggestion failed (%d observations); using random points", relevant)
        return random_suggestions(space, n, config.random_state + relevant)
