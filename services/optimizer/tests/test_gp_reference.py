"""A reference for the GP: with group effects and correlations off and fixed
hyperparameters, our posterior is scikit-learn's ``GaussianProcessRegressor``.

With one provider, one mode, one prompt version, every rating on its own render by
its own trainer, the covariance of :mod:`services.optimizer.gp` reduces to::

    K = s² k₅⸝₂(x, x'; ℓ) + (τ₀² + τ_p² + 2τ_c²) + (τ_g² + τ_r² + σ² + jitter)[i=j]

which is ``ConstantKernel(s²)·Matern(ℓ, ν=5/2) + ConstantKernel(c) + WhiteKernel(w)``
on ``y − 3``. The posterior mean, the variance (scikit-learn's includes the white
term: it predicts a new rating), the log marginal likelihood and its gradient in the
length-scales and signal must agree.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.optimizer import gp

LOCAL = 2  # provider code; any single code will do


def _setup(seed: int) -> tuple[gp.Design, np.ndarray, np.ndarray, dict[str, float]]:
    rng = np.random.default_rng(seed)
    n = 25
    design = gp.Design(
        x=rng.uniform(size=(n, 3)),
        provider=np.full(n, LOCAL),
        mode=np.zeros(n, dtype=int),
        version=np.zeros(n, dtype=int),
        image=np.arange(n),  # every rating its own render…
        rater=np.arange(n),  # …and its own trainer: those effects act as white noise
    )
    ratings = rng.integers(1, 6, n).astype(float)
    centre = np.array([h.to_t(h.centre) for h in gp.HYPERPARAMETERS])
    t = centre + rng.normal(0, 0.4, gp.N_HYPER)  # fixed, away from the prior's centre
    return design, ratings, t, gp._natural(t)


def _sklearn(th: dict[str, float]) -> tuple[object, float]:
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    lengthscales = [th["lengthscale_strength"], th["lengthscale_guidance"],
                    th["lengthscale_structure"]]
    constant = gp.MEAN_SD**2 + th["provider_sd"] ** 2 + 2 * th["context_sd"] ** 2
    white = th["image_sd"] ** 2 + th["rater_sd"] ** 2 + th["noise_sd"] ** 2 + gp.JITTER
    kernel = (
        ConstantKernel(th["signal_sd"] ** 2) * Matern(length_scale=lengthscales, nu=2.5)
        + ConstantKernel(constant)
        + WhiteKernel(white)
    )
    return kernel, white


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_posterior_matches_scikit_learn(seed: int) -> None:
    from sklearn.gaussian_process import GaussianProcessRegressor

    design, ratings, t, th = _setup(seed)
    kernel, white = _sklearn(th)
    reference = GaussianProcessRegressor(kernel, alpha=0.0, optimizer=None, normalize_y=False)
    reference.fit(design.x, ratings - gp.PRIOR_MEAN)

    ours = gp.Posterior(design, ratings, t)
    xq = np.random.default_rng(seed + 100).uniform(size=(40, 3))
    query = gp.Query(xq, np.full(len(xq), LOCAL), mode=0, version=0)
    cross = ours.cross(query)
    mean = ours.mean(query, cross)
    w = ours.whiten(cross)
    var = ours.prior_var - np.einsum("ij,ij->j", w, w)

    ref_mean, ref_sd = reference.predict(xq, return_std=True)
    np.testing.assert_allclose(mean, gp.PRIOR_MEAN + ref_mean, rtol=0, atol=1e-8)
    # scikit-learn's variance is that of a new rating: the model's plus the white term.
    np.testing.assert_allclose(var + white, ref_sd**2, rtol=1e-7, atol=1e-9)
    assert white == pytest.approx(ours.rating_noise_var + gp.JITTER)


@pytest.mark.parametrize("seed", [0, 3])
def test_marginal_likelihood_and_gradient_match_scikit_learn(seed: int) -> None:
    from sklearn.gaussian_process import GaussianProcessRegressor

    design, ratings, t, th = _setup(seed)
    kernel, _ = _sklearn(th)
    reference = GaussianProcessRegressor(kernel, alpha=0.0, optimizer=None, normalize_y=False)
    reference.fit(design.x, ratings - gp.PRIOR_MEAN)
    ref_lml, ref_grad = reference.log_marginal_likelihood(
        reference.kernel_.theta, eval_gradient=True
    )

    terms = gp._Terms(design)
    value, grad = gp.neg_log_posterior(t, terms, ratings - gp.PRIOR_MEAN)
    centre = np.array([h.to_t(h.centre) for h in gp.HYPERPARAMETERS])
    spread = np.array([h.spread for h in gp.HYPERPARAMETERS])
    z = (t - centre) / spread
    nll = value - 0.5 * float(z @ z)  # without the hyperprior
    nll_grad = grad - z / spread
    assert -nll == pytest.approx(float(ref_lml), rel=1e-9, abs=1e-9)

    # scikit-learn's θ is (log s², log ℓ₁..₃, log c, log w); ours t₀ = log s, t₁..₃ = log ℓ.
    names = [h.name for h in gp.HYPERPARAMETERS]
    assert -nll_grad[names.index("signal_sd")] == pytest.approx(2 * ref_grad[0], rel=1e-6)
    for k, name in enumerate(("lengthscale_strength", "lengthscale_guidance",
                              "lengthscale_structure")):
        assert -nll_grad[names.index(name)] == pytest.approx(ref_grad[1 + k], rel=1e-6)
    # The white term's gradient: d/d log σ = (2σ²/w) · d/d log w.
    sigma2 = th["noise_sd"] ** 2
    white = math.exp(reference.kernel_.theta[-1])
    assert -nll_grad[names.index("noise_sd")] == pytest.approx(
        2 * sigma2 / white * ref_grad[-1], rel=1e-6
    )
