"""The rating predictor: a bootstrap ensemble that gives a mean and an uncertainty.

Notation: ``X`` is the ``n×d`` feature matrix of distinct images (classical features,
the structure block, and for ``classical+clip`` the CLIP embedding), ``t`` their
targets (average debiased stars, :mod:`services.reward.targets`), ``w`` their
weights and ``g`` their render groups.

Ensemble. ``K`` bootstrap resamples *of render groups* (a render's variants are
drawn together, so an out-of-bag image never has a sibling in the bag); on resample
``k`` every member kind is fitted, giving scores ``f_kj(x)``. The raw score is their
mean ``s(x)``, the epistemic variance ``v(x)`` their variance, and the prediction is
``μ(x) = c(s(x))`` with ``c`` the calibration (:mod:`services.reward.calibration`)
fitted on out-of-bag scores.

Member kinds (chosen by grouped cross-validation on BIQ2021, ``docs/benchmarks.md``):

* ``classical``: extremely randomised trees (60 trees, leaves ≥ 2, 30 % of the
  features per split), histogram gradient boosting (200 rounds, rate 0.06, 15
  leaves, L2 1.0; it ignores the image weights, because scikit-learn's weighted
  binning made a fit 40× slower) and RBF kernel ridge regression (``γ = 1/d``, ridge 1) on features
  mapped to normal scores by a quantile transform. Averaging the three beat each
  alone. They are stored as plain arrays where scikit-learn's per-call overhead
  dominated a six-image prediction (tree-by-tree prediction, numpy quantile
  transform, numpy kernel ridge); the trees of both tree members are evaluated
  together as flat arrays (:class:`FlatTrees`), one vectorised step per tree level,
  giving exactly the values scikit-learn's tree-by-tree prediction gives.
* ``classical+clip`` (when CLIP embeddings exist): a 2-hidden-layer MLP (256, 64,
  ReLU) trained in torch (AdamW, full batch) on standardised features; one MLP per
  resample. Inference is plain numpy, so a stored model predicts without torch.

Uncertainty. Bootstrap spread alone ignores rating noise (two trainers disagree by
more than the ensemble does), so the predictive variance is
``s²(x) = v(x) + σ²`` with ``σ² = max(mean(r²) - mean(v_oob), 0.01)``, where ``r``
are out-of-bag residuals of the calibrated prediction and ``v_oob`` their epistemic
variances. Held-out coverage of ``μ ± s`` and ``μ ± 1.96 s`` is reported by
:mod:`services.reward.metrics`.

Models are plain Python objects pickled into the blob store by
:mod:`services.reward.registry`; they are immutable after fitting and ``predict`` is
thread-safe.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from services.reward.calibration import IDENTITY, Calibrator, fit_calibrator

MIN_NOISE_VAR = 0.01
RATING_MIN, RATING_MAX = 1.0, 5.0
CLASSICAL_KIND = "bagged-et-hgb-krr"
MLP_KIND = "bagged-mlp"


class Regressor(Protocol):
    def fit(
        self, X: np.ndarray, y: np.ndarray, w: np.ndarray, groups: np.ndarray | None = None
    ) -> Any: ...

    def predict(self, X: np.ndarray) -> np.ndarray: ...


@dataclass
class RatingModel:
    """A fitted ensemble. ``members`` map an ``n×d`` matrix to ``n`` scores."""

    kind: str
    feature_set: str
    input_dims: int
    members: list[Any]
    noise_var: float
    y_mean: float
    info: dict[str, Any] = field(default_factory=dict)
    calibrator: Calibrator = IDENTITY
    # Out-of-bag (score, target, weight) of the training images: what the calibration
    # was fitted on, kept so it can be refitted or inspected without refitting.
    oob: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def member_predictions(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.input_dims:
            raise ValueError(f"expected n×{self.input_dims} features, got {X.shape}")
        # The kernel-ridge members of one model share one quantile transform: apply it
        # once per call, not once per member.
        transformed: dict[int, np.ndarray] = {}

        def predict(member: Any) -> np.ndarray:
            if isinstance(member, _KernelRidge):
                key = id(member.transform)
                if key not in transformed:
                    transformed[key] = member.transform.transform(X)
                return member.predict_transformed(transformed[key])
            return np.asarray(member.predict(X), dtype=np.float64)

        return np.stack([predict(m) for m in self.members])

    def score(self, X: np.ndarray) -> np.ndarray:
        """The uncalibrated ensemble mean (what the calibration maps to stars)."""
        return np.asarray(self.member_predictions(X).mean(axis=0))

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted mean rating (calibrated, within 1–5) and standard deviation per row."""
        preds = self.member_predictions(X)
        # Models pickled before calibration existed have no such attribute.
        calibrate = getattr(self, "calibrator", IDENTITY)
        mean = calibrate(preds.mean(axis=0))
        std = np.sqrt(preds.var(axis=0) + self.noise_var)
        return mean, std


# --- classical members, stored as arrays ---------------------------------------------


@dataclass
class QuantileNormal:
    """Per-feature quantile transform to standard normal scores (numpy only)."""

    quantiles: np.ndarray  # (q, d), non-decreasing per column
    scores: np.ndarray  # (q,) normal scores of the quantile levels

    @classmethod
    def fit(cls, X: np.ndarray, levels: int = 100) -> QuantileNormal:
        from scipy import stats

        q = max(2, min(levels, len(X)))
        probs = np.linspace(0.0, 1.0, q)
        quantiles = np.quantile(X, probs, axis=0)
        eps = 1e-7
        scores = stats.norm.ppf(np.clip(probs, eps, 1 - eps))
        return cls(np.maximum.accumulate(quantiles, axis=0), scores)

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        out = np.empty_like(X)
        for j in range(X.shape[1]):
            col = self.quantiles[:, j]
            # Average of the forward and backward interpolation, so tied quantiles
            # (a constant stretch of a feature) map to the middle of their range.
            fwd = np.interp(X[:, j], col, self.scores)
            bwd = -np.interp(-X[:, j], -col[::-1], -self.scores[::-1])
            out[:, j] = 0.5 * (fwd + bwd)
        return out


@dataclass(frozen=True)
class FlatTrees:
    """Binary decision trees as flat node arrays, evaluated for all trees at once.

    The nodes of every tree are concatenated; ``left`` and ``right`` are indices into
    the concatenation and a leaf points to itself, so ``depth`` steps of "go to the
    child the row's feature picks" take every (tree, row) pair to its leaf. A row goes
    left when ``x[feature] <= threshold``, or when ``x[feature]`` is NaN and
    ``missing_left`` is set: the rule of scikit-learn's trees and of its histogram
    gradient boosting, compared in the same precision, so the leaves are the same.
    """

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    missing_left: np.ndarray
    value: np.ndarray
    roots: np.ndarray
    depth: int

    @classmethod
    def concatenate(
        cls,
        trees: Sequence[tuple[np.ndarray, ...]],
    ) -> FlatTrees:
        """From per-tree ``(feature, threshold, left, right, missing_left, value, is_leaf)``
        arrays with tree-local child indices; ``depth`` is the deepest leaf's level."""
        parts: list[list[np.ndarray]] = [[] for _ in range(6)]
        roots, start, depth = [], 0, 0
        for feature, threshold, left, right, missing_left, value, is_leaf, tree_depth in trees:
            own = np.arange(start, start + len(feature))
            roots.append(start)
            parts[0].append(np.where(is_leaf, 0, feature))
            parts[1].append(threshold)
            parts[2].append(np.where(is_leaf, own, left + start))
            parts[3].append(np.where(is_leaf, own, right + start))
            parts[4].append(missing_left)
            parts[5].append(value)
            start += len(feature)
            depth = max(depth, int(tree_depth))
        feature, threshold, left, right, missing_left, value = (np.concatenate(p) for p in parts)
        return cls(
            feature.astype(np.intp),
            threshold.astype(np.float64),
            left.astype(np.intp),
            right.astype(np.intp),
            missing_left.astype(bool),
            value.astype(np.float64),
            np.array(roots, dtype=np.intp),
            depth,
        )

    def leaf_values(self, X: np.ndarray) -> np.ndarray:
        """``(trees, rows)``: the value of the leaf each row reaches in each tree."""
        rows = np.arange(X.shape[0])[None, :]
        node = np.repeat(self.roots[:, None], X.shape[0], axis=1)
        for _ in range(self.depth):
            x = X[rows, self.feature[node]]
            go_left = x <= self.threshold[node]
            missing = np.isnan(x)
            if missing.any():
                go_left = np.where(missing, self.missing_left[node], go_left)
            node = np.where(go_left, self.left[node], self.right[node])
        values: np.ndarray = self.value[node]
        return values


class _Trees:
    """Extremely randomised trees, evaluated together as :class:`FlatTrees`."""

    def __init__(self, seed: int, n_trees: int = 60) -> None:
        self.seed = seed
        self.n_trees = n_trees
        self.trees: list[Any] = []

    def fit(
        self, X: np.ndarray, y: np.ndarray, w: np.ndarray, groups: np.ndarray | None = None
    ) -> _Trees:
        from sklearn.ensemble import ExtraTreesRegressor

        forest = ExtraTreesRegressor(
            n_estimators=self.n_trees,
            min_samples_leaf=2,
            max_features=0.3,
            n_jobs=1,
            random_state=self.seed,
        ).fit(X, y, sample_weight=w)
        self.trees = [est.tree_ for est in forest.estimators_]
        return self

    def _flat(self) -> FlatTrees:
        # Built on first use (also for models pickled before it existed) and not
        # pickled; two threads building it at once just build it twice.
        flat: FlatTrees | None = self.__dict__.get("_flat_trees")
        if flat is None:
            flat = FlatTrees.concatenate(
                [
                    (
                        t.feature,
                        t.threshold,
                        t.children_left,
                        t.children_right,
                        t.missing_go_to_left,
                        t.value[:, 0, 0],
                        t.children_left < 0,
                        t.max_depth,
                    )
                    for t in self.trees
                ]
            )
            self.__dict__["_flat_trees"] = flat
        return flat

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_flat_trees"}

    def predict(self, X: np.ndarray) -> np.ndarray:
        # scikit-learn's trees compare float32 features with float64 thresholds.
        X32 = np.ascontiguousarray(X, dtype=np.float32)
        return np.asarray(np.mean(self._flat().leaf_values(X32), axis=0))


class _Boosting:
    """Histogram gradient boosting (scikit-learn)."""

    def __init__(self, seed: int, n: int) -> None:
        self.seed = seed
        self.n = n
        self.model: Any = None

    def fit(
        self, X: np.ndarray, y: np.ndarray, w: np.ndarray, groups: np.ndarray | None = None
    ) -> _Boosting:
        from sklearn.ensemble import HistGradientBoostingRegressor

        self.model = HistGradientBoostingRegressor(
            max_iter=200,
            learning_rate=0.06,
            max_leaf_nodes=15,
            min_samples_leaf=min(10, max(2, self.n // 10)),
            l2_regularization=1.0,
            early_stopping=False,
            random_state=self.seed,
        ).fit(X, y)  # unweighted: scikit-learn bins weighted data ~40× slower
        return self

    def _flat(self) -> FlatTrees | None:
        """The boosted trees as :class:`FlatTrees` (None if some split is categorical)."""
        if "_flat_trees" not in self.__dict__:
            nodes = [p.nodes for (p,) in self.model._predictors]
            flat = None
            if not any(n["is_categorical"].any() for n in nodes):
                flat = FlatTrees.concatenate(
                    [
                        (
                            n["feature_idx"],
                            n["num_threshold"],
                            n["left"],
                            n["right"],
                            n["missing_go_to_left"],
                            n["value"],
                            n["is_leaf"].astype(bool),
                            n["depth"].max(),
                        )
                        for n in nodes
                    ]
                )
            self.__dict__["_flat_trees"] = flat
        result: FlatTrees | None = self.__dict__["_flat_trees"]
        return result

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_flat_trees"}

    def predict(self, X: np.ndarray) -> np.ndarray:
        flat = self._flat()
        if flat is None:
            return np.asarray(self.model.predict(X))
        # As scikit-learn does: the baseline, then each tree's value added in order.
        raw = np.zeros(X.shape[0]) + self.model._baseline_prediction.ravel()
        for value in flat.leaf_values(np.asarray(X, dtype=np.float64)):
            raw += value
        return np.asarray(self.model._loss.link.inverse(raw))


class _KernelRidge:
    """RBF kernel ridge regression on quantile-normal scores (numpy)."""

    def __init__(self, transform: QuantileNormal, ridge: float = 1.0) -> None:
        self.transform = transform
        self.ridge = ridge
        self.support = np.empty((0, 0))
        self.coef = np.empty(0)
        self.offset = 0.0
        self.gamma = 1.0

    def _kernel(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        sq = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * A @ B.T
        return np.asarray(np.exp(-self.gamma * np.maximum(sq, 0.0)))

    def fit(
        self, X: np.ndarray, y: np.ndarray, w: np.ndarray, groups: np.ndarray | None = None
    ) -> _KernelRidge:
        Z = self.transform.transform(X)
        self.gamma = 1.0 / Z.shape[1]
        self.offset = float(np.average(y, weights=w))
        K = self._kernel(Z, Z)
        # Weighted ridge: minimise Σ w (y - f)² + λ‖f‖² ⇔ (K + λ W⁻¹) c = y - ȳ.
        K[np.diag_indices_from(K)] += self.ridge / w
        self.coef = np.linalg.solve(K, y - self.offset)
        self.support = Z
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.predict_transformed(self.transform.transform(X))

    def predict_transformed(self, Z: np.ndarray) -> np.ndarray:
        """``predict`` for rows already mapped by ``self.transform``."""
        return self._kernel(Z, self.support) @ self.coef + self.offset


MemberFactory = Callable[[int, int], Sequence[Regressor]]


def _group_bootstrap(
    X: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    groups: np.ndarray,
    resamples: int,
    seed: int,
    make_members: MemberFactory,
    progress: Callable[[float], None] | None = None,
) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """Fit members on resamples of whole groups; also return out-of-bag mean and variance."""
    rng = np.random.default_rng(seed)
    n = len(y)
    codes = np.unique(groups, return_inverse=True)[1]
    n_groups = int(codes.max()) + 1
    rows_of = [np.flatnonzero(codes == g) for g in range(n_groups)]
    members: list[Any] = []
    oob_sum = np.zeros(n)
    oob_sq = np.zeros(n)
    oob_count = np.zeros(n)
    for k in range(resamples):
        picked = rng.integers(0, n_groups, n_groups)
        idx = np.concatenate([rows_of[g] for g in picked])
        out = np.ones(n, dtype=bool)
        out[idx] = False
        for member in make_members(len(np.unique(idx)), seed + k):
            member.fit(X[idx], y[idx], w[idx], groups[idx])
            members.append(member)
            if out.any():
                p = np.asarray(member.predict(X[out]), dtype=np.float64)
                oob_sum[out] += p
                oob_sq[out] += p * p
                oob_count[out] += 1
        if progress is not None:
            progress((k + 1) / resamples)
    seen = oob_count > 0
    mean = np.full(n, np.nan)
    var = np.full(n, np.nan)
    mean[seen] = oob_sum[seen] / oob_count[seen]
    var[seen] = np.maximum(oob_sq[seen] / oob_count[seen] - mean[seen] ** 2, 0.0)
    return members, mean, var


def _noise_var(
    y: np.ndarray, oob_pred: np.ndarray, oob_var: np.ndarray, w: np.ndarray | None = None
) -> float:
    seen = np.isfinite(oob_pred)
    if seen.sum() < 2:
        return float(max(np.var(y), MIN_NOISE_VAR))
    resid2 = (y[seen] - oob_pred[seen]) ** 2
    return float(max(resid2.mean() - oob_var[seen].mean(), MIN_NOISE_VAR))


def _finish(
    kind: str,
    feature_set: str,
    X: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    members: list[Any],
    oob_mean: np.ndarray,
    oob_var: np.ndarray,
    calibration: str,
    info: dict[str, Any],
) -> RatingModel:
    calibrator = fit_calibrator(oob_mean, y, w, calibration)
    oob_pred = np.where(np.isfinite(oob_mean), calibrator(np.nan_to_num(oob_mean)), np.nan)
    return RatingModel(
        kind=kind,
        feature_set=feature_set,
        input_dims=X.shape[1],
        members=members,
        noise_var=_noise_var(y, oob_pred, oob_var),
        y_mean=float(np.average(y, weights=w)),
        info={**info, "calibration": calibrator.as_dict()},
        calibrator=calibrator,
        oob=(oob_mean, y, w),
    )


def fit_classical(
    X: np.ndarray,
    y: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    resamples: int = 5,
    seed: int = 0,
    feature_set: str = "classical",
    calibration: str = "isotonic",
    progress: Callable[[float], None] | None = None,
) -> RatingModel:
    """Fit the classical bootstrap ensemble (needs scikit-learn only).

    Args:
        X, y: one row per image and its target.
        weights: per-image weights (default 1).
        groups: render group of each image (default: each image its own group).
        calibration: ``isotonic``, ``linear`` or ``none``.
        progress: called with the share of resamples done.

    Raises:
        ValueError: fewer than 5 rows, or ``X`` and ``y`` disagree in length.
    """
    X, y = _check(X, y)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
    g = np.arange(len(y)) if groups is None else np.asarray(groups)
    transform = QuantileNormal.fit(X)

    def make(n: int, s: int) -> list[Regressor]:
        return [_Trees(s), _Boosting(s, n), _KernelRidge(transform)]

    members, oob_mean, oob_var = _group_bootstrap(X, y, w, g, resamples, seed, make, progress)
    return _finish(
        CLASSICAL_KIND,
        feature_set,
        X,
        y,
        w,
        members,
        oob_mean,
        oob_var,
        calibration,
        {"resamples": resamples, "members_per_resample": 3},
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
    """Fits one :class:`NumpyMLP` with torch; ``predict`` works after ``fit``.

    ``pairwise > 0`` adds a ranking term to the weighted squared error: the mean over
    pairs ``(i, j)`` of one render with ``t_i > t_j`` of ``log(1 + exp(-(f_i - f_j)/0.25))``
    (RankNet), times ``pairwise``.
    """

    def __init__(
        self,
        seed: int,
        hidden: tuple[int, int] = (256, 64),
        epochs: int = 300,
        pairwise: float = 0.0,
        weight_decay: float = 0.05,
    ) -> None:
        self.seed = seed
        self.hidden = hidden
        self.epochs = epochs
        self.pairwise = pairwise
        self.weight_decay = weight_decay
        self.net: NumpyMLP | None = None

    def fit(
        self, X: np.ndarray, y: np.ndarray, w: np.ndarray, groups: np.ndarray | None = None
    ) -> _MLPMember:
        import torch

        torch.manual_seed(self.seed)
        mu = X.mean(axis=0).astype(np.float32)
        sigma = (X.std(axis=0) + 1e-6).astype(np.float32)
        xt = torch.from_numpy(((X - mu) / sigma).astype(np.float32))
        offset = float(np.average(y, weights=w))
        yt = torch.from_numpy((y - offset).astype(np.float32))
        wt = torch.from_numpy((w / w.mean()).astype(np.float32))
        hi, lo = _ordered_pairs(y, groups) if self.pairwise > 0 else (None, None)
        dims = [X.shape[1], *self.hidden, 1]
        layers: list[torch.nn.Module] = []
        for i in range(len(dims) - 1):
            layers.append(torch.nn.Linear(dims[i], dims[i + 1]))
            if i < len(dims) - 2:
                layers += [torch.nn.ReLU(), torch.nn.Dropout(0.1)]
        net = torch.nn.Sequential(*layers)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=self.weight_decay)
        net.train()
        for _ in range(self.epochs):
            opt.zero_grad()
            out = net(xt)[:, 0]
            loss = torch.mean(wt * (out - yt) ** 2)
            if hi is not None and lo is not None and len(hi):
                diff = (out[hi] - out[lo]) / 0.25
                loss = loss + self.pairwise * torch.nn.functional.softplus(-diff).mean()
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


def _ordered_pairs(y: np.ndarray, groups: np.ndarray | None) -> tuple[Any, Any]:
    """Index tensors ``(hi, lo)`` of the pairs of one group with ``y[hi] > y[lo]``."""
    import torch

    if groups is None:
        return None, None
    his: list[int] = []
    los: list[int] = []
    codes = np.unique(groups, return_inverse=True)[1]
    for g in np.unique(codes):
        rows = np.flatnonzero(codes == g)
        for a in rows:
            for b in rows:
                if y[a] > y[b]:
                    his.append(int(a))
                    los.append(int(b))
    return torch.tensor(his, dtype=torch.long), torch.tensor(los, dtype=torch.long)


def fit_mlp(
    X: np.ndarray,
    y: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    resamples: int = 5,
    seed: int = 0,
    feature_set: str = "classical+clip",
    epochs: int = 300,
    pairwise: float = 0.0,
    calibration: str = "isotonic",
    progress: Callable[[float], None] | None = None,
) -> RatingModel:
    """Fit the MLP bootstrap ensemble (needs torch for fitting, not for predicting).

    ``pairwise > 0`` trains each MLP with the within-render ranking term as well.

    Raises:
        ValueError: fewer than 5 rows, or ``X`` and ``y`` disagree in length.
        ModuleNotFoundError: torch is not installed.
    """
    X, y = _check(X, y)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
    g = np.arange(len(y)) if groups is None else np.asarray(groups)

    def make(_n: int, s: int) -> list[Regressor]:
        return [_MLPMember(s, epochs=epochs, pairwise=pairwise)]

    members, oob_mean, oob_var = _group_bootstrap(X, y, w, g, resamples, seed, make, progress)
    return _finish(
        MLP_KIND,
        feature_set,
        X,
        y,
        w,
        [m.net for m in members],
        oob_mean,
        oob_var,
        calibration,
        {"resamples": resamples, "hidden": [256, 64], "epochs": epochs, "pairwise": pairwise},
    )


def _check(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if X.ndim != 2 or len(X) != len(y):
        raise ValueError(f"X must be n×d with n = len(y); got {X.shape} and {y.shape}")
    if len(y) < 5:
        raise ValueError(f"need at least 5 labelled images to fit, got {len(y)}")
    return X, y
