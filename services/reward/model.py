"""The rating predictor: a bootstrap ensemble that gives a mean and an uncertainty.

Notation: ``X`` is the ``n×d`` feature matrix (classical features, the structure
block, and for ``classical+clip`` the CLIP embedding), ``y`` the 1–5 ratings.

Ensemble. ``K`` bootstrap resamples of the training set; on resample ``k`` every
member kind is fitted, giving predictions ``f_kj(x)``. The prediction is the mean
``μ(x)`` over all members and the epistemic variance ``v(x)`` their variance.

Member kinds (chosen by cross-validation on BIQ2021, see ``docs/benchmarks.md``):

* ``classical``: extremely randomised trees (100 trees, leaves ≥ 2, 30 % of the
  features per split), histogram gradient boosting (300 rounds, rate 0.04, 15
  leaves, L2 1.0) and an RBF support-vector regressor (C 1, ε 0.1) on features
  mapped to normal scores by a quantile transform. Averaging the three beat each
  alone at every training-set size tried.
* ``classical+clip`` (when CLIP embeddings exist): a 2-hidden-layer MLP (256, 64,
  ReLU) trained in torch (AdamW, full batch) on standardised features; one MLP per
  resample. Inference is plain numpy, so a stored model predicts without torch.

Uncertainty. Bootstrap spread alone ignores rating noise (two trainers disagree by
more than the ensemble does), so the predictive variance is
``s²(x) = v(x) + σ²`` with ``σ² = max(mean(r²) - mean(v_oob), 0.01)``, where ``r``
are out-of-bag residuals (each training image predicted only by members that did not
see it) and ``v_oob`` their epistemic variances. Held-out coverage of ``μ ± s`` and
``μ ± 1.96 s`` is reported by :mod:`services.reward.metrics`.

Models are plain Python objects pickled into the blob store by
:mod:`services.reward.registry`; they are immutable after fitting and ``predict`` is
thread-safe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

MIN_NOISE_VAR = 0.01
RATING_MIN, RATING_MAX = 1.0, 5.0
CLASSICAL_KIND = "bagged-et-hgb-svr"
MLP_KIND = "bagged-mlp"


class Regressor(Protocol):
    def fit(self, X: np.ndarray, y: np.ndarray) -> Any: ...

    def predict(self, X: np.ndarray) -> np.ndarray: ...


@dataclass
class RatingModel:
    """A fitted ensemble. ``members`` map an ``n×d`` matrix to ``n`` predictions."""

    kind: str
    feature_set: str
    input_dims: int
    members: list[Any]
    noise_var: float
    y_mean: float
    info: dict[str, Any] = field(default_factory=dict)

    def member_predictions(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.input_dims:
            raise ValueError(f"expected n×{self.input_dims} features, got {X.shape}")
        return np.stack([np.asarray(m.predict(X), dtype=np.float64) for m in self.members])

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted mean rating (clipped to 1–5) and standard deviation per row."""
        preds = self.member_predictions(X)
        mean = np.clip(preds.mean(axis=0), RATING_MIN, RATING_MAX)
        std = np.sqrt(preds.var(axis=0) + self.noise_var)
        return mean, std


def _classical_members(n: int, seed: int) -> list[Regressor]:
    from sklearn.ensemble import ExtraTreesRegressor, HistGradientBoostingRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import QuantileTransformer
    from sklearn.svm import SVR

    return [
        ExtraTreesRegressor(
            n_estimators=100, min_samples_leaf=2, max_features=0.3, n_jobs=1, random_state=seed
        ),
        HistGradientBoostingRegressor(
            max_iter=300,
            learning_rate=0.04,
            max_leaf_nodes=15,
            min_samples_leaf=min(10, max(2, n // 10)),
            l2_regularization=1.0,
            early_stopping=False,
            random_state=seed,
        ),
        make_pipeline(
            QuantileTransformer(
                n_quantiles=max(2, min(100, n)), output_distribution="normal", random_state=seed
            ),
            SVR(C=1.0, gamma="scale", epsilon=0.1),
        ),
    ]


def _bootstrap_fit(
    X: np.ndarray,
    y: np.ndarray,
    resamples: int,
    seed: int,
    make_members: Any,
) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """Fit members on bootstrap resamples; also return out-of-bag mean and variance."""
    rng = np.random.default_rng(seed)
    n = len(y)
    members: list[Any] = []
    oob_sum = np.zeros(n)
    oob_sq = np.zeros(n)
    oob_count = np.zeros(n)
    for k in range(resamples):
        idx = rng.integers(0, n, n)
        out = np.ones(n, dtype=bool)
        out[idx] = False
        for member in make_members(len(np.unique(idx)), seed + k):
            member.fit(X[idx], y[idx])
            members.append(member)
            if out.any():
                p = np.asarray(member.predict(X[out]), dtype=np.float64)
                oob_sum[out] += p
                oob_sq[out] += p * p
                oob_count[out] += 1
    seen = oob_count > 0
    mean = np.full(n, np.nan)
    var = np.full(n, np.nan)
    mean[seen] = oob_sum[seen] / oob_count[seen]
    var[seen] = np.maximum(oob_sq[seen] / oob_count[seen] - mean[seen] ** 2, 0.0)
    return members, mean, var


def _noise_var(y: np.ndarray, oob_mean: np.ndarray, oob_var: np.ndarray) -> float:
    seen = np.isfinite(oob_mean)
    if seen.sum() < 2:
        return float(max(np.var(y), MIN_NOISE_VAR))
    resid2 = (y[seen] - oob_mean[seen]) ** 2
    return float(max(resid2.mean() - oob_var[seen].mean(), MIN_NOISE_VAR))


def fit_classical(
    X: np.ndarray,
    y: np.ndarray,
    *,
    resamples: int = 5,
    seed: int = 0,
    feature_set: str = "classical",
) -> RatingModel:
    """Fit the classical bootstrap ensemble (needs scikit-learn only).

    Raises:
        ValueError: fewer than 5 rows, or ``X`` and ``y`` disagree in length.
    """
    X, y = _check(X, y)
    members, oob_mean, oob_var = _bootstrap_fit(X, y, resamples, seed, _classical_members)
    return RatingModel(
        kind=CLASSICAL_KIND,
        feature_set=feature_set,
        input_dims=X.shape[1],
        members=members,
        noise_var=_noise_var(y, oob_mean, oob_var),
        y_mean=float(y.mean()),
        info={"resamples": resamples, "members_per_resample": 3},
    )


@dataclass
class NumpyMLP:
    """A trained MLP as numpy arrays: standardise, (Linear, ReLU)×2, Linear, + offset."""

    mu: np.ndarray
    sigma: np.ndarray
    weights: list[np.ndarray]
    biases: list[np.ndarray]
    offset: float

    def predict(self, X: np.ndarray) -> np.ndarray:
        h = (np.asarray(X, dtype=np.float32) - self.mu) / self.sigma
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = h @ w + b
            if i < len(self.weights) - 1:
                h = np.maximum(h, 0.0)
        return h[:, 0].astype(np.float64) + self.offset


class _MLPMember:
    """Fits one :class:`NumpyMLP` with torch; ``predict`` works after ``fit``."""

    def __init__(self, seed: int, hidden: tuple[int, int] = (256, 64), epochs: int = 300) -> None:
        self.seed = seed
        self.hidden = hidden
        self.epochs = epochs
        self.net: NumpyMLP | None = None

    def fit(self, X: np.ndarray, y: np.ndarray) -> _MLPMember:
        import torch

        torch.manual_seed(self.seed)
        mu = X.mean(axis=0).astype(np.float32)
        sigma = (X.std(axis=0) + 1e-6).astype(np.float32)
        xt = torch.from_numpy(((X - mu) / sigma).astype(np.float32))
        offset = float(y.mean())
        yt = torch.from_numpy((y - offset).astype(np.float32))
        dims = [X.shape[1], *self.hidden, 1]
        layers: list[torch.nn.Module] = []
        for i in range(len(dims) - 1):
            layers.append(torch.nn.Linear(dims[i], dims[i + 1]))
            if i < len(dims) - 2:
                layers += [torch.nn.ReLU(), torch.nn.Dropout(0.1)]
        net = torch.nn.Sequential(*layers)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.05)
        net.train()
        for _ in range(self.epochs):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(net(xt)[:, 0], yt)
            loss.backward()
            opt.step()
        linears = [m for m in net if isinstance(m, torch.nn.Linear)]
        self.net = NumpyMLP(
            mu,
            sigma,
            [m.weight.detach().numpy().T.copy() for m in linears],
            [m.bias.detach().numpy().copy() for m in linears],
            offset,
        )
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.net is None:
            raise RuntimeError("fit the member before predicting")
        return self.net.predict(X)


def fit_mlp(
    X: np.ndarray,
    y: np.ndarray,
    *,
    resamples: int = 5,
    seed: int = 0,
    feature_set: str = "classical+clip",
    epochs: int = 300,
) -> RatingModel:
    """Fit the MLP bootstrap ensemble (needs torch for fitting, not for predicting).

    Raises:
        ValueError: fewer than 5 rows, or ``X`` and ``y`` disagree in length.
        ModuleNotFoundError: torch is not installed.
    """
    X, y = _check(X, y)

    def make(_n: int, s: int) -> list[_MLPMember]:
        return [_MLPMember(s, epochs=epochs)]

    members, oob_mean, oob_var = _bootstrap_fit(X, y, resamples, seed, make)
    return RatingModel(
        kind=MLP_KIND,
        feature_set=feature_set,
        input_dims=X.shape[1],
        members=[m.net for m in members],
        noise_var=_noise_var(y, oob_mean, oob_var),
        y_mean=float(y.mean()),
        info={"resamples": resamples, "hidden": [256, 64], "epochs": epochs},
    )


def _check(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if X.ndim != 2 or len(X) != len(y):
        raise ValueError(f"X must be n×d with n = len(y); got {X.shape} and {y.shape}")
    if len(y) < 5:
        raise ValueError(f"need at least 5 labelled images to fit, got {len(y)}")
    return X, y
