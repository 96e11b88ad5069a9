"""Posterior summaries of one fitted model on a candidate set: the recommendation,
joint posterior samples, and each provider's best point and chance of being best.

Notation as in :mod:`services.optimizer.gp`; ``q(z)`` is the expected rating of
parameter set ``z`` for an average trainer on an average render, in context
``(m, v)``. Decisions made here:

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

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from services.common.parameter_space import PROVIDERS
from services.optimizer import gp
from services.optimizer.config import GPConfig
from services.optimizer.encoding import Vocabulary
from services.optimizer.space import Context, from_unit

MIN_RATING = 1.0
MAX_RATING = 5.0
Z90 = 1.6448536269514722
"""Standard normal quantile of 0.95: ``mean ± Z90·sd`` is a central 90 % interval."""


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


def clip_rating(v: float) -> float:
    """``v`` clipped to the 1–5 star scale."""
    return float(min(max(v, MIN_RATING), MAX_RATING))


def interval90(mean: float, sd: float) -> tuple[float, float]:
    """Central 90 % interval of ``N(mean, sd²)``, clipped to the star scale."""
    return (round(clip_rating(mean - Z90 * sd), 4), round(clip_rating(mean + Z90 * sd), 4))


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
            predicted_rating=round(clip_rating(mean), 4),
            source="model",
            interval=interval90(mean, sd),
            rating_interval=interval90(mean, float(np.sqrt(self.var[i] + self.noise_var))),
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
                    predicted_rating=round(clip_rating(mean), 4),
                    interval=interval90(mean, sd),
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


def analyse(
    posterior: gp.Posterior,
    vocabulary: Vocabulary,
    config: GPConfig,
    providers: tuple[str, ...],
    context: Context,
    rng: np.random.Generator,
) -> Analysis:
    """Evaluate the posterior on the candidates of ``providers`` in ``context`` and draw
    joint samples over the most promising ones (see the module docstring)."""
    cfg, post = config, posterior
    mode, version = vocabulary.mode(context.mode), vocabulary.version(context.prompt_version)
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
    chol = safe_cholesky(cov)
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


def safe_cholesky(cov: np.ndarray) -> np.ndarray:
    """A lower factor ``L`` with ``L Lᵀ ≈ cov``: Cholesky with growing jitter, and an
    eigen-decomposition (negative eigenvalues set to zero) when that fails."""
    jitter = 1e-9 * max(float(np.mean(np.diag(cov))), 1e-9)
    for _ in range(8):
        try:
            return np.linalg.cholesky(cov + jitter * np.eye(len(cov)))
        except np.linalg.LinAlgError:
            jitter *= 10
    w, v = np.linalg.eigh(cov)
    return np.asarray(v * np.sqrt(np.maximum(w, 0.0)))
