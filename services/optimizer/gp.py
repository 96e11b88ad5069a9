"""The rating-aware Gaussian process: how a star rating is produced, and what it tells
us about the quality of a parameter set.

Notation (``i = 1..n`` indexes stored ratings)::

    p_i            provider of the rated image (leonardo, stablediffusion, local)
    x_i ∈ [0,1]³   strength, guidance, structure, each scaled to the unit interval
    m_i, v_i       context: mode (structure / surfaces) and prompt version
    g_i            the original render (image_id); both variants of an experiment share it
    r_i            the trainer who gave the rating
    y_i ∈ {1..5}   the rating, kept as the integer the trainer gave

Model::

    y_i = μ₀ + q(p_i, x_i, m_i, v_i) + u[g_i] + b[r_i] + ε_i

    q(p, x, m, v) = f(p, x, m, v) + o[p] + o[m] + o[v]       quality of a parameter set
    f ~ GP(0, s² k₅⸝₂(x, x'; ℓ) · ρ_p^[p≠p'] · ρ_m^[m≠m'] · ρ_v^[v≠v'])
    o[p] ~ N(0, τ_p²)        provider offset
    o[m], o[v] ~ N(0, τ_c²)   context offsets (a new prompt version may be better overall)
    u[g] ~ N(0, τ_g²)        render difficulty: shared by the two variants of an experiment
    b[r] ~ N(0, τ_r²)        trainer strictness (bias)
    ε_i ~ N(0, σ²)           white noise: a trainer's inconsistency plus rounding to stars
    μ₀ ~ N(3, τ₀²), τ₀ = 1   the overall level, integrated out

``k₅⸝₂`` is the ARD Matérn-5/2 kernel with one length-scale per dimension. The
correlations ``ρ ∈ (0, 1)`` let the response surface differ between providers,
modes and prompt versions while sharing what they have in common: data from one
prompt version still inform the next (``ρ_v`` near 1 unless the data say
otherwise), so a new version does not start from scratch.

All terms are Gaussian and independent, so the ratings are jointly Gaussian with
covariance (``[·]`` is 1 when the condition holds)::

    K_ij = s² M_ij P_ij C_ij + τ₀² + τ_p²[p_i=p_j] + τ_c²([m_i=m_j] + [v_i=v_j])
           + τ_g²[g_i=g_j] + τ_r²[r_i=r_j] + σ²[i=j]

The render offsets and trainer biases are therefore *modelled jointly* rather than
estimated in a separate pass: the posterior of ``q`` integrates them out exactly,
which is what makes the two variants of one experiment a paired comparison (their
difference does not depend on ``u[g]`` or ``b[r]``).

What is predicted is ``μ₀ + q(z)`` at a point ``z = (p, x, m, v)``: the expected
rating of an average trainer on an average render. Integer ratings and the 1–5
bounds are treated as Gaussian noise (rounding adds variance ``1/12`` to ``σ²``);
an ordinal likelihood would be more exact but needs approximate inference.

Hyperparameters ``θ = (s, ℓ₁..₃, ρ_p, ρ_m, ρ_v, τ_p, τ_c, τ_g, τ_r, σ)`` are set by
maximising the log posterior (marginal likelihood plus weak log-normal /
logit-normal priors, see :data:`HYPERPARAMETERS`) with L-BFGS-B and analytic
gradients, always from the prior's centre, so the fit is a pure function of the
data. The priors matter with a dozen ratings: maximum likelihood alone would
happily explain everything as noise or interpolate every rating.

Why not scikit-learn's ``GaussianProcessRegressor`` (the model scikit-optimize
wraps): its kernels act on one feature matrix and it has no hyperpriors, so grouped
random effects (render, trainer, context) would need custom kernel classes and the
small-data fits would be maximum-likelihood only. The white-noise term it would add
is ``σ²`` here. With the group effects and correlations off and the hyperparameters
fixed, this model *is* that regressor (``Matern(ν=5/2)·C + C + White``):
``services/optimizer/tests/test_gp_reference.py`` pins mean, variance, marginal
likelihood and gradient.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

SQRT5 = math.sqrt(5.0)
PRIOR_MEAN = 3.0
"""Centre of the 1–5 star scale: the prior mean of every rating."""
MEAN_SD = 1.0
"""Prior standard deviation of the overall level ``μ₀`` (stars)."""
JITTER = 1e-8


@dataclass(frozen=True)
class Hyper:
    """One hyperparameter: its transform, the prior's centre (natural units), the
    prior's standard deviation in the transformed coordinate, and its bounds."""

    name: str
    transform: str  # "log" or "logit"
    centre: float
    spread: float
    low: float
    high: float

    def to_t(self, value: float) -> float:
        if self.transform == "log":
            return math.log(value)
        return math.log(value / (1.0 - value))

    def from_t(self, t: float) -> float:
        if self.transform == "log":
            return math.exp(t)
        return 1.0 / (1.0 + math.exp(-t))


HYPERPARAMETERS: tuple[Hyper, ...] = (
    Hyper("signal_sd", "log", 1.0, 0.5, 0.05, 4.0),
    Hyper("lengthscale_strength", "log", 0.35, 0.6, 0.03, 3.0),
    Hyper("lengthscale_guidance", "log", 0.35, 0.6, 0.03, 3.0),
    Hyper("lengthscale_structure", "log", 0.35, 0.6, 0.03, 3.0),
    Hyper("provider_correlation", "logit", 0.5, 1.0, 0.01, 0.999),
    Hyper("mode_correlation", "logit", 0.8, 1.0, 0.01, 0.999),
    Hyper("version_correlation", "logit", 0.9, 1.0, 0.01, 0.999),
    Hyper("provider_sd", "log", 0.5, 0.7, 0.01, 3.0),
    Hyper("context_sd", "log", 0.3, 0.7, 0.01, 3.0),
    Hyper("image_sd", "log", 0.5, 0.7, 0.01, 3.0),
    Hyper("rater_sd", "log", 0.4, 0.7, 0.01, 3.0),
    Hyper("noise_sd", "log", 0.5, 0.5, 0.05, 3.0),
)
"""The hyperparameters in the order of ``θ``; the priors are deliberately broad
(one unit of ``spread`` in log space is a factor of e)."""
N_HYPER = len(HYPERPARAMETERS)
_CENTRE_T = np.array([h.to_t(h.centre) for h in HYPERPARAMETERS])
_SPREAD_T = np.array([h.spread for h in HYPERPARAMETERS])
_BOUNDS_T = [(h.to_t(h.low), h.to_t(h.high)) for h in HYPERPARAMETERS]


@dataclass(frozen=True)
class Design:
    """The model's inputs for ``n`` ratings: unit-cube coordinates and integer codes.

    Codes index categories (provider, mode, version, render, trainer); equal codes
    mean the same category. ``-1`` in a query means "not seen in training" and so
    matches no training code.
    """

    x: np.ndarray  # (n, 3) in [0, 1]
    provider: np.ndarray  # (n,) int
    mode: np.ndarray
    version: np.ndarray
    image: np.ndarray
    rater: np.ndarray

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def take(self, index: np.ndarray | slice) -> Design:
        return Design(
            self.x[index],
            self.provider[index],
            self.mode[index],
            self.version[index],
            self.image[index],
            self.rater[index],
        )


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a[:, None] == b[None, :]).astype(float)


def _matern(sq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Matérn-5/2 of scaled squared distances, and ``(5/3)(1+√5r)e^{-√5r}`` (for gradients)."""
    r = np.sqrt(np.maximum(sq, 0.0))
    e = np.exp(-SQRT5 * r)
    poly = 1.0 + SQRT5 * r
    return (poly + (5.0 / 3.0) * sq) * e, (5.0 / 3.0) * poly * e


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """``Σ a∘b`` in numpy's own loop: BLAS ``ddot`` wakes its threads for every call,
    which costs more than the sum itself at these sizes on a 2-core machine."""
    return float(np.einsum("ij,ij->", a, b))


def _natural(t: np.ndarray) -> dict[str, float]:
    return {h.name: h.from_t(float(v)) for h, v in zip(HYPERPARAMETERS, t, strict=True)}


class _KernelParts(NamedTuple):
    """Intermediate matrices of ``K(θ)`` that its gradient reuses (see :class:`_Terms`)."""

    lengthscales: tuple[float, float, float]
    m: np.ndarray  # Matérn-5/2 of the scaled distances
    dm: np.ndarray  # its derivative factor
    p: np.ndarray  # provider correlation factor
    cm: np.ndarray | None  # mode correlation factor (None: one mode in the data)
    cv: np.ndarray | None  # version correlation factor (None: one version)
    pc: np.ndarray  # s²·p·cm·cv
    f: np.ndarray  # pc·m, the quality part of K


class _Terms:
    """Training-set matrices that do not depend on ``θ`` (built once per fit)."""

    def __init__(self, d: Design) -> None:
        self.sqdiff = [(d.x[:, k, None] - d.x[None, :, k]) ** 2 for k in range(3)]
        self.same_p = _same(d.provider, d.provider)
        self.same_m = _same(d.mode, d.mode)
        self.same_v = _same(d.version, d.version)
        self.same_g = _same(d.image, d.image)
        self.same_r = _same(d.rater, d.rater)
        self.same_ctx = self.same_m + self.same_v
        # One mode (or one prompt version) in the data: its correlation factor is 1
        # everywhere and its gradient 0, so both are skipped (the usual case early on).
        self.varied_m = not bool(self.same_m.all())
        self.varied_v = not bool(self.same_v.all())

    def covariance(self, th: dict[str, float], grad: bool) -> tuple[np.ndarray, list[np.ndarray]]:
        """``K(θ)`` and, when ``grad``, ``∂K/∂t`` for every hyperparameter (tests, callers
        that need the matrices; the fit itself uses :meth:`gradient_dots`)."""
        k, parts = self._kernel(th)
        if not grad:
            return k, []
        return k, self._gradients(th, parts)

    def _kernel(self, th: dict[str, float]) -> tuple[np.ndarray, _KernelParts]:
        ls = (th["lengthscale_strength"], th["lengthscale_guidance"], th["lengthscale_structure"])
        sq = sum(d / (scale * scale) for d, scale in zip(self.sqdiff, ls, strict=True))
        m, dm = _matern(np.asarray(sq))
        rp, rm, rv = th["provider_correlation"], th["mode_correlation"], th["version_correlation"]
        p = rp + (1.0 - rp) * self.same_p
        cm = rm + (1.0 - rm) * self.same_m if self.varied_m else None
        cv = rv + (1.0 - rv) * self.same_v if self.varied_v else None
        s2 = th["signal_sd"] ** 2
        pc = s2 * p
        for factor in (cm, cv):
            if factor is not None:
                pc = pc * factor
        f = pc * m
        k = f + MEAN_SD**2
        k += th["provider_sd"] ** 2 * self.same_p
        k += th["context_sd"] ** 2 * self.same_ctx
        k += th["image_sd"] ** 2 * self.same_g
        k += th["rater_sd"] ** 2 * self.same_r
        k[np.diag_indices_from(k)] += th["noise_sd"] ** 2 + JITTER
        return k, _KernelParts(ls, m, dm, p, cm, cv, pc, f)

    def _gradients(self, th: dict[str, float], parts: _KernelParts) -> list[np.ndarray]:
        ls, m, dm, p, cm, cv, pc, f = parts
        ones = np.ones_like(m)
        cm, cv = (ones if cm is None else cm), (ones if cv is None else cv)
        rp, rm, rv = th["provider_correlation"], th["mode_correlation"], th["version_correlation"]
        base = th["signal_sd"] ** 2 * m
        grads = [2.0 * f]
        grads += [pc * dm * d / (scale * scale) for d, scale in zip(self.sqdiff, ls, strict=True)]
        grads.append(base * cm * cv * (1.0 - self.same_p) * rp * (1.0 - rp))
        grads.append(base * p * cv * (1.0 - self.same_m) * rm * (1.0 - rm))
        grads.append(base * p * cm * (1.0 - self.same_v) * rv * (1.0 - rv))
        grads.append(2.0 * th["provider_sd"] ** 2 * self.same_p)
        grads.append(2.0 * th["context_sd"] ** 2 * self.same_ctx)
        grads.append(2.0 * th["image_sd"] ** 2 * self.same_g)
        grads.append(2.0 * th["rater_sd"] ** 2 * self.same_r)
        grads.append(2.0 * th["noise_sd"] ** 2 * np.eye(m.shape[0]))
        return grads

    def gradient_dots(self, th: dict[str, float], parts: _KernelParts, w: np.ndarray
                      ) -> np.ndarray:
        """``Σ_ij W_ij ∂K_ij/∂t`` for every hyperparameter, in ``HYPERPARAMETERS`` order.

        The same numbers as contracting :meth:`_gradients` with ``W``, without building
        the thirteen ``n×n`` matrices: each is a dot product with a matrix already at
        hand (``W`` and ``K`` are symmetric).
        """
        ls, _, dm, p, cm, cv, pc, f = parts
        rp, rm, rv = th["provider_correlation"], th["mode_correlation"], th["version_correlation"]
        wf = w * f  # W ∘ s²·p·cm·cv·M
        out = [2.0 * float(wf.sum())]
        w_pc_dm = w * pc * dm
        out += [_dot(w_pc_dm, d) / (scale * scale)
                for d, scale in zip(self.sqdiff, ls, strict=True)]
        # ∂/∂logit(ρ_p) of s²·p·cm·cv·M is (wf / p)·(1 - same_p)·ρ(1-ρ); likewise ρ_m, ρ_v.
        out.append(_dot(wf / p, 1.0 - self.same_p) * rp * (1.0 - rp))
        out.append(_dot(wf / cm, 1.0 - self.same_m) * rm * (1.0 - rm)
                   if cm is not None else 0.0)
        out.append(_dot(wf / cv, 1.0 - self.same_v) * rv * (1.0 - rv)
                   if cv is not None else 0.0)
        out.append(2.0 * th["provider_sd"] ** 2 * _dot(w, self.same_p))
        out.append(2.0 * th["context_sd"] ** 2 * _dot(w, self.same_ctx))
        out.append(2.0 * th["image_sd"] ** 2 * _dot(w, self.same_g))
        out.append(2.0 * th["rater_sd"] ** 2 * _dot(w, self.same_r))
        out.append(2.0 * th["noise_sd"] ** 2 * float(np.trace(w)))
        return np.array(out)


def neg_log_posterior(t: np.ndarray, terms: _Terms, y: np.ndarray) -> tuple[float, np.ndarray]:
    """``-log p(y | θ) - log p(θ)`` (up to a constant) and its gradient in ``t``."""
    from scipy.linalg import LinAlgError, cho_factor, cho_solve

    th = _natural(t)
    k, parts = terms._kernel(th)
    try:
        factor = cho_factor(k, lower=True, check_finite=False)
    except LinAlgError:
        return 1e25, np.zeros_like(t)
    alpha = cho_solve(factor, y, check_finite=False)
    n = y.shape[0]
    nll = 0.5 * float(y @ alpha) + float(np.log(np.diag(factor[0])).sum()) + 0.5 * n * math.log(
        2 * math.pi
    )
    w = np.outer(alpha, alpha) - cho_solve(factor, np.eye(n), check_finite=False)
    grad = -0.5 * terms.gradient_dots(th, parts, w)
    z = (t - _CENTRE_T) / _SPREAD_T
    return nll + 0.5 * float(z @ z), grad + z / _SPREAD_T


def fit_hyperparameters(design: Design, ratings: np.ndarray, max_iter: int = 80) -> np.ndarray:
    """MAP hyperparameters (transformed coordinates) for ``ratings`` on ``design``.

    Starts from the prior's centre, so the result is a pure function of the data.
    """
    from scipy.optimize import minimize

    terms = _Terms(design)
    y = np.asarray(ratings, dtype=float) - PRIOR_MEAN
    result = minimize(
        neg_log_posterior,
        _CENTRE_T.copy(),
        args=(terms, y),
        jac=True,
        method="L-BFGS-B",
        bounds=_BOUNDS_T,
        options={"maxiter": max_iter},
    )
    return np.asarray(result.x, dtype=float)


@dataclass(frozen=True)
class Query:
    """Points at which to predict quality, all in one context (mode, version codes).

    Trainer and render are those of a *new* experiment, so their offsets are
    integrated out (prior mean zero).
    """

    x: np.ndarray  # (N, 3)
    provider: np.ndarray  # (N,) int codes
    mode: int
    version: int


class Posterior:
    """The GP conditioned on ``design``/``ratings`` with fixed hyperparameters ``t``.

    Thread-safe after construction (read-only arrays).
    """

    def __init__(self, design: Design, ratings: np.ndarray, t: np.ndarray) -> None:
        from scipy.linalg import cho_factor, cho_solve

        self.design = design
        self.t = np.asarray(t, dtype=float)
        self.theta = _natural(self.t)
        self.ratings = np.asarray(ratings, dtype=float)
        k, _ = _Terms(design).covariance(self.theta, grad=False)
        self.chol = cho_factor(k, lower=True, check_finite=False)[0]
        self.alpha = cho_solve((self.chol, True), self.ratings - PRIOR_MEAN, check_finite=False)

    @property
    def lengthscales(self) -> tuple[float, float, float]:
        th = self.theta
        return (
            th["lengthscale_strength"],
            th["lengthscale_guidance"],
            th["lengthscale_structure"],
        )

    @property
    def rating_noise_var(self) -> float:
        """Variance of one new rating around ``μ₀ + q``: render + trainer + white noise."""
        th = self.theta
        return th["image_sd"] ** 2 + th["rater_sd"] ** 2 + th["noise_sd"] ** 2

    @property
    def prior_var(self) -> float:
        """Prior variance of ``μ₀ + q(z)`` at any point."""
        th = self.theta
        offsets = th["provider_sd"] ** 2 + 2 * th["context_sd"] ** 2
        return th["signal_sd"] ** 2 + MEAN_SD**2 + offsets

    def _matern_between(self, xa: np.ndarray, xb: np.ndarray) -> np.ndarray:
        ls = np.array(self.lengthscales)
        a, b = xa / ls, xb / ls
        sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
        return _matern(sq)[0]

    def cross(self, query: Query) -> np.ndarray:
        """``Cov(y_i, μ₀ + q(z_j))``, shape ``(n, N)``."""
        th, d = self.theta, self.design
        rp, rm, rv = th["provider_correlation"], th["mode_correlation"], th["version_correlation"]
        same_p = _same(d.provider, query.provider)
        same_m = (d.mode == query.mode).astype(float)[:, None]
        same_v = (d.version == query.version).astype(float)[:, None]
        corr = (rp + (1 - rp) * same_p) * (rm + (1 - rm) * same_m) * (rv + (1 - rv) * same_v)
        return (
            th["signal_sd"] ** 2 * self._matern_between(d.x, query.x) * corr
            + MEAN_SD**2
            + th["provider_sd"] ** 2 * same_p
            + th["context_sd"] ** 2 * (same_m + same_v)
        )

    def prior_cov(self, query: Query, index: np.ndarray) -> np.ndarray:
        """Prior ``Cov(q(z_a), q(z_b))`` for all ``a`` and the query points in ``index``."""
        th = self.theta
        rp = th["provider_correlation"]
        same_p = _same(query.provider, query.provider[index])
        corr = rp + (1 - rp) * same_p
        return (
            th["signal_sd"] ** 2 * self._matern_between(query.x, query.x[index]) * corr
            + MEAN_SD**2
            + th["provider_sd"] ** 2 * same_p
            + 2 * th["context_sd"] ** 2
        )

    def mean(self, query: Query, cross: np.ndarray | None = None) -> np.ndarray:
        """Posterior mean rating ``E[μ₀ + q(z)]`` (stars, unclipped)."""
        cross = self.cross(query) if cross is None else cross
        return PRIOR_MEAN + cross.T @ self.alpha

    def whiten(self, cross: np.ndarray) -> np.ndarray:
        """``L⁻¹ Cov(y, q(Z))``: the posterior covariance is ``prior − Vᵀ V``."""
        from scipy.linalg import solve_triangular

        return np.asarray(solve_triangular(self.chol, cross, lower=True, check_finite=False))

    def trainer_bias(self, codes: Sequence[int]) -> dict[int, float]:
        """Posterior mean of ``b[r]`` for each trainer code (stars; + is lenient)."""
        tau2 = self.theta["rater_sd"] ** 2
        rater = self.design.rater
        return {int(c): float(tau2 * self.alpha[rater == c].sum()) for c in codes}

    def describe(self) -> dict[str, Any]:
        """The hyperparameters in natural units (stars, unit-cube length-scales)."""
        return {k: round(v, 4) for k, v in self.theta.items()}
