"""Each parameter's effect on the predicted rating, with its uncertainty band, from
the GP posterior: partial dependence (the status page's "what each knob does").

Notation as in :mod:`services.optimizer.gp` and :mod:`services.optimizer.analysis`:
``q(p, x)`` is the expected rating of parameter set ``x ∈ [0,1]³`` with provider
``p`` in the requested context, for an average trainer on an average render;
``x[d := g]`` is ``x`` with dimension ``d`` set to ``g``. For a reference set
``R = {x⁽¹⁾ … x⁽ᴹ⁾}`` the partial dependence of dimension ``d`` is::

    PD_d(g) = (1/M) Σ_m q(p, x⁽ᵐ⁾[d := g])

a linear functional of the GP, so its posterior is Gaussian with

    E[PD_d(g)]   = (1/M) Σ_m μ(x⁽ᵐ⁾[d := g])
    Var[PD_d(g)] = (1/M²) Σ_ab k_post(a, b)
                 = mean(P_g) − ‖L⁻¹ c̄_g‖²,   c̄_g = (1/M) Σ_m Cov(y, q(x⁽ᵐ⁾[d := g]))

where ``P_g`` is the ``M×M`` prior covariance of the group and ``L`` the Cholesky
factor of the training covariance; only the group's summed cross-covariance is
whitened, never an ``M×M`` posterior matrix.

Decisions made here:

* **Two reference sets.** ``average`` (the default, the classic partial dependence):
  ``M`` points drawn uniformly over the box, seeded from the model's key, so the
  curve says what the parameter does *across the space*. ``slice``: the one point
  ``R = {x̂_p}``, the provider's posterior-mean best, so the curve says what
  changing only that parameter would do to the recommended setting.
* **Per provider**: each enabled provider has its own surface (the kernel's provider
  correlation and offset), so each gets its own curves.
* The band is the central 90 % credible interval of ``PD_d(g)``, clipped to 1–5
  like every other interval the service reports; it is the uncertainty of the
  *average*, not the spread of single ratings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from services.common.parameter_space import DIMENSIONS, PROVIDERS
from services.optimizer import gp
from services.optimizer.analysis import clip_rating, interval90
from services.optimizer.fitting import FittedModel
from services.optimizer.space import Context, SearchSpace, to_unit

Method = Literal["average", "slice"]


@dataclass(frozen=True)
class EffectPoint:
    """The partial dependence at one value of the parameter (normalised units)."""

    value: float
    mean: float
    low: float
    high: float


@dataclass(frozen=True)
class ParameterEffect:
    """One parameter's curve for one provider."""

    parameter: str
    provider: str
    points: list[EffectPoint]


def _group_moments(
    post: gp.Posterior, groups: np.ndarray, code: int, mode: int, version: int
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and variance of the average of ``q`` over each group.

    Args:
        groups: ``(G, M, 3)`` unit-cube points; group ``j`` is averaged.

    Returns:
        ``(G,)`` means and ``(G,)`` variances of the group averages.
    """
    n_groups, size, _ = groups.shape
    flat = groups.reshape(-1, 3)
    query = gp.Query(flat, np.full(len(flat), code), mode, version)
    cross = post.cross(query)  # (n, G·M)
    means = post.mean(query, cross).reshape(n_groups, size).mean(axis=1)
    mean_cross = cross.reshape(cross.shape[0], n_groups, size).mean(axis=2)  # (n, G)
    whitened = post.whiten(mean_cross)
    explained = np.einsum("ij,ij->j", whitened, whitened)
    prior = np.empty(n_groups)
    for j in range(n_groups):
        block = gp.Query(groups[j], np.full(size, code), mode, version)
        prior[j] = float(post.prior_cov(block, np.arange(size)).mean())
    return means, np.maximum(prior - explained, 1e-12)


def partial_dependence(
    model: FittedModel,
    space: SearchSpace,
    context: Context,
    *,
    points: int = 21,
    reference: int = 64,
    method: Method = "average",
) -> list[ParameterEffect]:
    """Curves of every parameter for every provider of ``space`` (see the module
    docstring); ``points`` evenly spaced values from each parameter's low to high."""
    post = model.posterior
    mode = model.vocabulary.mode(context.mode)
    version = model.vocabulary.version(context.prompt_version)
    grid = np.linspace(0.0, 1.0, points)
    if method == "slice":
        best = {p.provider: p.values for p in model.analyse(space, context).provider_posteriors()}
    else:
        rng = np.random.default_rng(model.seed("dependence", space.providers, context))
        shared = rng.uniform(size=(reference, 3))
    out: list[ParameterEffect] = []
    for provider in space.providers:
        code = PROVIDERS.index(provider)
        base = np.array([to_unit(best[provider])]) if method == "slice" else shared
        for d, dim in enumerate(DIMENSIONS):
            groups = np.repeat(base[None, :, :], points, axis=0)
            groups[:, :, d] = grid[:, None]
            means, variances = _group_moments(post, groups, code, mode, version)
            curve = []
            for g, mean, var in zip(grid, means, variances, strict=True):
                low, high = interval90(float(mean), float(np.sqrt(var)))
                curve.append(
                    EffectPoint(
                        value=round(dim.low + float(g) * (dim.high - dim.low), 4),
                        mean=round(clip_rating(float(mean)), 4),
                        low=low,
                        high=high,
                    )
                )
            out.append(ParameterEffect(dim.name, provider, curve))
    return out
