"""The fitted model: the rating-aware GP (:mod:`services.optimizer.gp`) built from
stored observations, cached in memory, and the posterior summaries derived from it
(candidates, recommendation, posterior samples, per-provider posterior).

Notation as in :mod:`services.optimizer.gp`; ``q(z)`` is the expected rating of
parameter set ``z`` for an average trainer on an average render, in context
``(m, v)``. Decisions made here:

* **One model per observation set.** The GP is fitted on every stored rating
  (all providers, modes and prompt versions: they inform each other through the
  kernel's correlations), at most the ``max_fit_observations`` most recent.
  Hyperparameters are fitted on the ``hyper_fit_observations`` most recent of
  those (the marginal likelihood is cubic in their number and stabilises long
  before), then the posterior is conditioned on the whole window.
* **The cache is an optimisation, never the source of truth.** A fitted model is
  keyed by a hash of exactly what it depends on (every observation field the model
  reads, and the configuration); any change to the stored observations changes the
  key, and the model is refitted once. A model is a pure function of its key
  (fits start from the prior's centre; random candidates and posterior samples are
  seeded from the key), so replicas and restarts agree.
* **Candidates.** Posterior quantities are evaluated on ``candidate_points`` random
  points per enabled provider, every observed point, and ``local_points``
  perturbations around the best few posterior means per provider, so narrow optima
  are resolved without a continuous optimiser.
* **The recommendation is the posterior-mean argmax** in the requested context
  (not the best single rating); its interval is the central 90 % credible interval
  of ``q`` and, separately, of one future rating (adding render, trainer and noise).
* **Posterior samples** (joint, over the ``sample_points`` most promising candidates
  per provider by upper confidence bound, plus the recommendation) give Thompson
  sampling over providers and parameters, each provider's probability of being
  best, and the principled convergence measures of
  :mod:`services.optimizer.convergence`.
* **Context**: every candidate is evaluated in the requested (mode, prompt
  version); an unseen version gets code ``-1``, i.e. the shared surface with the
  version correlation ``ρ_v`` and a prior-mean offset, never an empty model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from services.common.parameter_space import PROVIDERS
from services.optimizer import gp
from services.optimizer.space import Context, Observation, SearchSpace, from_unit, to_unit

log = logging.getLogger(__name__)

MIN_RATING = 1.0
MAX_RATING = 5.0
Z90 = 1.6448536269514722
Acquisition = Literal["thompson", "exploit", "ei", "ucb"]


@dataclass(frozen=True)
class GPConfig:
    """Model knobs (see ``OptimizerSettings`` for their meaning)."""

    n_initial_points: int = 10
    random_state: int = 42
    candidate_points: int = 512
    local_points: int = 24
    local_centres: int = 6
    sample_points: int = 96
    posterior_samples: int = 256
    max_fit_observations: int = 600
    hyper_fit_observations: int = 250
    hyper_max_iter: int = 80
    convergence_tolerance: float = 0.25
    first_variant: Acquisition = "thompson"
    other_variants: Acquisition = "thompson"
    recommendation_sd: float = 0.0
    challenger_floor: float = 0.05

    def fingerprint(self) -> list[Any]:
        return [
            self.random_state,
            self.candidate_points,
            self.local_points,
            self.local_centres,
            self.sample_points,
            self.posterior_samples,
            self.max_fit_observations,
            self.hyper_fit_observations,
            self.hyper_max_iter,
            self.convergence_tolerance,
            self.first_variant,
            self.other_variants,
            self.recommendation_sd,
            self.challenger_floor,
        ]


@dataclass(frozen=True)
class Recommendation:
    """The parameters the optimizer currently believes are best.

    Attributes:
        provider: provider of the recommended point.
        values: normalised parameter values.
        predicted_rating: posterior mean of ``q`` there, clipped to 1–5 (``None``
            without a model).
        source: ``"model"`` (posterior-mean argmax) or ``"observed"`` (best rating seen).
        interval: central 90 % credible interval of ``q`` (the expected rating).
        rating_interval: central 90 % predictive interval of one new rating.
        predicted_sd: posterior standard deviation of ``q``.
    """

    provider: str
    values: dict[str, float]
    predicted_rating: float | None
    source: Literal["model", "observed"]
    interval: tuple[float, float] | None = None
    rating_interval: tuple[float, float] | None = None
    predicted_sd: float | None = None


@dataclass(frozen=True)
class ProviderPosterior:
    """One provider's best point under the posterior and its chance of being the best."""

    provider: str
    values: dict[str, float]
    predicted_rating: float
    interval: tuple[float, float]
    probability_best: float


def _clip(v: float) -> float:
    return float(min(max(v, MIN_RATING), MAX_RATING))


def _interval(mean: float, sd: float) -> tuple[float, float]:
    return (round(_clip(mean - Z90 * sd), 4), round(_clip(mean + Z90 * sd), 4))


@dataclass
class Analysis:
    """Posterior quantities on the candidate set of one (providers, context).

    ``cross_w`` is ``V = L⁻¹ Cov(y, q(Z))``; the posterior covariance of candidates
    ``a, b`` is ``prior_cov(a, b) − V[:, a]ᵀ V[:, b]``.
    """

    providers: tuple[str, ...]
    context: Context
    query: gp.Query
    mean: np.ndarray
    var: np.ndarray
    cross_w: np.ndarray
    subset: np.ndarray
    samples: np.ndarray  # (posterior_samples, len(subset))
    rec_index: int
    noise_var: float
    tolerance: float
    posterior: gp.Posterior = field(repr=False)

    def provider_of(self, index: int) -> str:
        return PROVIDERS[int(self.query.provider[index])]

    def values_of(self, index: int) -> dict[str, float]:
        return from_unit(self.query.x[index])

    def covariance_with(self, index: int) -> np.ndarray:
        """Posterior covariance of every candidate with candidate ``index``."""
        prior = self.posterior.prior_cov(self.query, np.array([index]))[:, 0]
        return np.asarray(prior - self.cross_w.T @ self.cross_w[:, index])

    def recommendation(self) -> Recommendation:
        i = self.rec_index
        mean, sd = float(self.mean[i]), float(np.sqrt(self.var[i]))
        return Recommendation(
            provider=self.provider_of(i),
            values=self.values_of(i),
            predicted_rating=round(_clip(mean), 4),
            source="model",
            interval=_interval(mean, sd),
            rating_interval=_interval(mean, float(np.sqrt(self.var[i] + self.noise_var))),
            predicted_sd=round(sd, 4),
        )

    def best_per_sample(self) -> np.ndarray:
        return np.asarray(self.samples.max(axis=1))

    def rec_sample(self) -> np.ndarray:
        pos = int(np.flatnonzero(self.subset == self.rec_index)[0])
        return np.asarray(self.samples[:, pos])

    def provider_posteriors(self) -> list[ProviderPosterior]:
        codes = self.query.provider
        sub_codes = codes[self.subset]
        maxima = {c: self.samples[:, sub_codes == c].max(axis=1) for c in np.unique(sub_codes)}
        stacked = np.vstack(list(maxima.values()))
        winners = np.array(list(maxima))[stacked.argmax(axis=0)]
        out = []
        for name in self.providers:
            c = PROVIDERS.index(name)
            mask = codes == c
            i = int(np.flatnonzero(mask)[np.argmax(self.mean[mask])])
            mean, sd = float(self.mean[i]), float(np.sqrt(self.var[i]))
            out.append(
                ProviderPosterior(
                    provider=name,
                    values=self.values_of(i),
                    predicted_rating=round(_clip(mean), 4),
                    interval=_interval(mean, sd),
                    probability_best=round(float(np.mean(winners == c)), 4),
                )
            )
        return out

    def thompson_point(self, draw: int, code: int) -> int:
        """Candidate index of provider ``code`` that maximises posterior draw ``draw``."""
        mask = self.query.provider[self.subset] == code
        row = self.samples[draw % self.samples.shape[0]]
        return int(self.subset[mask][np.argmax(row[mask])])

    def draws_won_by_other(self, code: int) -> np.ndarray:
        """Indices of the posterior draws in which a provider other than ``code`` wins."""
        codes = self.query.provider[self.subset]
        winners = codes[np.argmax(self.samples, axis=1)]
        return np.flatnonzero(winners != code)

    def thompson_provider(self, draw: int) -> int:
        """Provider code whose best sampled quality is highest in posterior draw ``draw``."""
        codes = self.query.provider[self.subset]
        row = self.samples[draw % self.samples.shape[0]]
        return int(codes[int(np.argmax(row))])


@dataclass
class Vocabulary:
    """Integer codes for the categorical inputs of one fit."""

    modes: dict[str | None, int]
    versions: dict[str | None, int]
    raters: dict[str | None, int]

    def mode(self, mode: str | None) -> int:
        return self.modes.get(mode, -1)

    def version(self, version: str | None) -> int:
        return self.versions.get(version, -1)


def _codes(items: Sequence[Any]) -> tuple[np.ndarray, dict[Any, int]]:
    vocab: dict[Any, int] = {}
    return np.array([vocab.setdefault(i, len(vocab)) for i in items], dtype=int), vocab


def encode(observations: Sequence[Observation]) -> tuple[gp.Design, np.ndarray, Vocabulary]:
    """Observations → the GP's design matrix, ratings and category codes."""
    renders = [o.render if o.render is not None else f"#{i}" for i, o in enumerate(observations)]
    mode, modes = _codes([o.mode for o in observations])
    version, versions = _codes([o.prompt_version for o in observations])
    image, _ = _codes(renders)
    rater, raters = _codes([o.rater for o in observations])
    design = gp.Design(
        x=np.array([to_unit(o.values) for o in observations], dtype=float).reshape(-1, 3),
        provider=np.array([PROVIDERS.index(o.provider) for o in observations], dtype=int),
        mode=mode,
        version=version,
        image=image,
        rater=rater,
    )
    ratings = np.array([float(o.rating) for o in observations])
    return design, ratings, Vocabulary(modes, versions, raters)


def model_key(observations: Sequence[Observation], config: GPConfig) -> str:
    """A hash of everything a fitted model depends on."""
    payload = {
        "config": config.fingerprint(),
        "observations": [
            [
                o.provider,
                *(round(v, 9) for v in to_unit(o.values)),
                float(o.rating),
                o.render,
                o.rater,
                o.mode,
                o.prompt_version,
            ]
            for o in observations
        ],
    }
    blob = json.dumps(payload, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


@dataclass
class FittedModel:
    """The GP posterior for one observation set, plus memoised analyses.

    Thread-safe: the memoised queries take the model's own lock.
    """

    key: str
    config: GPConfig
    observations: list[Observation]
    posterior: gp.Posterior
    vocabulary: Vocabulary
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _analyses: dict[tuple[tuple[str, ...], Context], Analysis] = field(default_factory=dict)
    _memo: dict[Any, Any] = field(default_factory=dict)

    @property
    def n_observations(self) -> int:
        return len(self.observations)

    def default_context(self) -> Context:
        """The context of the most recent observation (what trainers use now)."""
        last = self.observations[-1]
        return Context(last.mode, last.prompt_version)

    def seed(self, *parts: Any) -> int:
        text = json.dumps([self.key, *parts], default=str)
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")

    def analyse(self, space: SearchSpace, context: Context) -> Analysis:
        """Posterior summaries for ``space``'s providers in ``context`` (memoised)."""
        memo_key = (space.providers, context)
        with self._lock:
            if memo_key not in self._analyses:
                self._analyses[memo_key] = self._analyse(space.providers, context)
            return self._analyses[memo_key]

    def memo(self, key: Any, compute: Any) -> Any:
        """Memoise ``compute()`` under ``key`` for the life of this model."""
        with self._lock:
            if key not in self._memo:
                self._memo[key] = compute()
            return self._memo[key]

    def _analyse(self, providers: tuple[str, ...], context: Context) -> Analysis:
        cfg, post = self.config, self.posterior
        rng = np.random.default_rng(self.seed("candidates", providers, context))
        mode, version = self.vocabulary.mode(context.mode), self.vocabulary.version(
            context.prompt_version
        )
        codes = [PROVIDERS.index(p) for p in providers]
        design = post.design
        xs, ps = [], []
        for c in codes:
            own = design.x[design.provider == c]
            base = np.vstack([rng.uniform(size=(cfg.candidate_points, 3)), own])
            xs.append(base)
            ps.append(np.full(len(base), c))
        x0, p0 = np.vstack(xs), np.concatenate(ps)
        mean0 = post.mean(gp.Query(x0, p0, mode, version))
        ls = np.array(post.lengthscales)
        for c in codes:
            mask = np.flatnonzero(p0 == c)
            top = mask[np.argsort(mean0[mask])[-cfg.local_centres :]]
            for i in top:
                scale = np.where(np.arange(cfg.local_points)[:, None] % 2 == 0, 0.05, 0.2)
                local = x0[i] + rng.normal(size=(cfg.local_points, 3)) * scale * np.minimum(ls, 1)
                xs.append(np.clip(local, 0.0, 1.0))
                ps.append(np.full(cfg.local_points, c))
        query = gp.Query(np.vstack(xs), np.concatenate(ps), mode, version)
        cross = post.cross(query)
        mean = post.mean(query, cross)
        cross_w = post.whiten(cross)
        var = np.maximum(post.prior_var - np.einsum("ij,ij->j", cross_w, cross_w), 1e-12)
        rec = int(np.argmax(mean - cfg.recommendation_sd * np.sqrt(var)))
        ucb = mean + 2.0 * np.sqrt(var)
        chosen = [np.array([rec])]
        for c in codes:
            mask = np.flatnonzero(query.provider == c)
            chosen.append(mask[np.argsort(ucb[mask])[-cfg.sample_points :]])
        subset = np.unique(np.concatenate(chosen))
        cov = post.prior_cov(query, subset)[subset] - cross_w[:, subset].T @ cross_w[:, subset]
        cov = 0.5 * (cov + cov.T)
        chol = _safe_cholesky(cov)
        normal = rng.standard_normal((cfg.posterior_samples, len(subset)))
        samples = mean[subset] + normal @ chol.T
        return Analysis(
            providers=providers,
            context=context,
            query=query,
            mean=mean,
            var=var,
            cross_w=cross_w,
            subset=subset,
            samples=samples,
            rec_index=rec,
            noise_var=post.rating_noise_var,
            tolerance=cfg.convergence_tolerance,
            posterior=post,
        )

    def trainer_biases(self) -> dict[str, float]:
        """Estimated strictness of each trainer (stars; negative = stricter)."""
        raters = self.vocabulary.raters
        biases = self.posterior.trainer_bias(list(raters.values()))
        return {str(r): round(biases[c], 4) for r, c in raters.items() if r is not None}


def _safe_cholesky(cov: np.ndarray) -> np.ndarray:
    jitter = 1e-9 * max(float(np.mean(np.diag(cov))), 1e-9)
    for _ in range(8):
        try:
            return np.linalg.cholesky(cov + jitter * np.eye(len(cov)))
        except np.linalg.LinAlgError:
            jitter *= 10
    w, v = np.linalg.eigh(cov)
    return np.asarray(v * np.sqrt(np.maximum(w, 0.0)))


def fit_window(observations: Sequence[Observation], config: GPConfig) -> list[Observation]:
    """The observations a model is conditioned on: the most recent
    ``max_fit_observations`` (``observations`` come oldest first)."""
    return list(observations[-config.max_fit_observations :])


def fit_model(observations: Sequence[Observation], config: GPConfig) -> FittedModel:
    """Fit the hyperparameters and condition the GP on ``observations`` (the window).

    Raises:
        ValueError: no observations.
    """
    if not observations:
        raise ValueError("cannot fit a model without observations")
    observations = list(observations)
    design, ratings, vocabulary = encode(observations)
    k = min(len(observations), config.hyper_fit_observations)
    recent = np.arange(len(observations) - k, len(observations))
    t = gp.fit_hyperparameters(design.take(recent), ratings[recent], config.hyper_max_iter)
    posterior = gp.Posterior(design, ratings, t)
    key = model_key(observations, config)
    log.info("fitted GP on %d observations: %s", len(observations), posterior.describe())
    return FittedModel(key, config, observations, posterior, vocabulary)


class ModelCache:
    """Fitted models keyed by :func:`model_key`, least recently used evicted first.

    Thread-safe; fits run under the cache lock, so concurrent requests for the
    same observation set fit once.
    """

    def __init__(self, maxsize: int = 4) -> None:
        self.maxsize = maxsize
        self.hits = 0
        self.misses = 0
        self._models: OrderedDict[str, FittedModel] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, observations: Sequence[Observation], config: GPConfig) -> FittedModel:
        """The model for exactly these observations (the window), fitting it if needed."""
        key = model_key(observations, config)
        with self._lock:
            model = self._models.get(key)
            if model is not None:
                self.hits += 1
                self._models.move_to_end(key)
                return model
            self.misses += 1
            model = fit_model(observations, config)
            self._models[key] = model
            while len(self._models) > self.maxsize:
                self._models.popitem(last=False)
            return model


def model_for(
    space: SearchSpace,
    observations: Sequence[Observation],
    config: GPConfig,
    cache: ModelCache,
) -> FittedModel | None:
    """The fitted model once ``space``'s providers have ``n_initial_points`` observations."""
    relevant = sum(1 for o in observations if space.contains(o))
    if relevant < config.n_initial_points:
        return None
    return cache.get(fit_window(observations, config), config)


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
    config: GPConfig,
    cache: ModelCache,
    context: Context | None = None,
) -> Recommendation | None:
    """What to use now: the posterior-mean best once the model is fitted, else the best
    observed point; ``None`` without observations in ``space``.
    """
    try:
        model = model_for(space, observations, config, cache)
        if model is not None:
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
    config: GPConfig,
    cache: ModelCache,
    context: Context | None = None,
) -> Assessment:
    """Recommendation, principled convergence and per-provider posterior (or the best
    observed point while there is no model)."""
    from services.optimizer.convergence import posterior_convergence

    try:
        model = model_for(space, observations, config, cache)
        if model is not None:
            ctx = context or model.default_context()
            analysis = model.analyse(space, ctx)
            conv = posterior_convergence(
                analysis.samples, analysis.rec_sample(), config.convergence_tolerance
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
