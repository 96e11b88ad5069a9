"""Reward model on real human judgements (BIQ2021 dev subset): ``make bench-reward``.

What it measures, on ``../shared/data/biq2021-dev`` (1,500 photos, MOS on 1–5):

1. CPU feature-extraction time per image (classical vector, decode excluded and
   included), from the run that extracted the features (cached under ``data/bench``).
2. Model selection: single regressors and their average at 200 and 1,000 labels.
3. Learning curve at 50, 100, 200, 500 and 1,000 labels: the service's model
   (:func:`services.reward.model.fit_classical`) on the full classical feature set and
   on one feature (log variance of the Laplacian), SRCC, PLCC, MAE, within ±0.5 and
   the coverage of the 68 %/95 % intervals.

Protocol: for each repeat a random 500-image test set is held out; the training
set is the first ``n`` of a random permutation of the other 1,000. Nothing about
the test images is used in training (features are per image, no fitting on them).

Writes ``bench/results/reward.json`` and ``docs/img/reward_learning_curve.png``.
``--quick`` runs 2 repeats and fewer sizes (for smoke tests).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # shared 2-core machine: no oversubscription

import numpy as np  # noqa: E402

from bench import _reward_data  # noqa: E402
from services.reward.metrics import evaluate  # noqa: E402
from services.reward.model import fit_classical  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "reward.json"
PLOT = REPO / "docs" / "img" / "reward_learning_curve.png"
SIZES = (50, 100, 200, 500, 1000)
TEST_SIZE = 500
BASELINE_FEATURE = "laplacian_var"


def splits(n_total: int, repeats: int) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for r in range(repeats):
        perm = np.random.default_rng(1000 + r).permutation(n_total)
        out.append((perm[:TEST_SIZE], perm[TEST_SIZE:]))
    return out


def candidates() -> dict[str, Any]:
    from sklearn.ensemble import ExtraTreesRegressor, HistGradientBoostingRegressor
    from sklearn.linear_model import RidgeCV
    from sklearn.neighbors import KNeighborsRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import QuantileTransformer, StandardScaler
    from sklearn.svm import SVR

    def qt() -> QuantileTransformer:
        return QuantileTransformer(n_quantiles=100, output_distribution="normal", random_state=0)

    return {
        "ridge (quantile)": lambda: make_pipeline(qt(), RidgeCV(alphas=np.logspace(-2, 3, 12))),
        "kNN-15 (standardised)": lambda: make_pipeline(
            StandardScaler(), KNeighborsRegressor(15, weights="distance")
        ),
        "SVR-RBF (quantile)": lambda: make_pipeline(qt(), SVR(C=1.0, epsilon=0.1)),
        "gradient boosting": lambda: HistGradientBoostingRegressor(
            max_iter=300,
            learning_rate=0.04,
            max_leaf_nodes=15,
            min_samples_leaf=10,
            l2_regularization=1.0,
            early_stopping=False,
            random_state=0,
        ),
        "extra trees": lambda: ExtraTreesRegressor(
            300, min_samples_leaf=2, max_features=0.3, n_jobs=1, random_state=0
        ),
    }


class Average:
    def __init__(self, *models: Any) -> None:
        self.models = models

    def fit(self, X: np.ndarray, y: np.ndarray) -> Average:
        for m in self.models:
            m.fit(X, y)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.mean([m.predict(X) for m in self.models], axis=0)


def model_selection(
    X: np.ndarray, y: np.ndarray, repeats: int, sizes: tuple[int, ...]
) -> list[dict[str, Any]]:
    makers = candidates()
    makers["average(ET, GB, SVR)"] = lambda: Average(
        makers["extra trees"](), makers["gradient boosting"](), makers["SVR-RBF (quantile)"]()
    )
    rows = []
    for n in sizes:
        for name, make in makers.items():
            scores = []
            for test, pool in splits(len(y), repeats):
                train = pool[:n]
                pred = make().fit(X[train], y[train]).predict(X[test])
                scores.append(evaluate(y[test], pred).as_dict())
            rows.append({"n": n, "model": name, **_mean(scores)})
            print(
                f"  selection n={n:5d} {name:24s} SRCC {rows[-1]['srcc']:.3f}  "
                f"MAE {rows[-1]['mae']:.3f}",
                flush=True,
            )
    return rows


def learning_curve(
    X: np.ndarray, y: np.ndarray, repeats: int, sizes: tuple[int, ...], resamples: int
) -> list[dict[str, Any]]:
    rows = []
    for n in sizes:
        scores = []
        fit_s = []
        for r, (test, pool) in enumerate(splits(len(y), repeats)):
            train = pool[:n]
            t0 = time.perf_counter()
            model = fit_classical(X[train], y[train], resamples=resamples, seed=r)
            fit_s.append(time.perf_counter() - t0)
            mean, std = model.predict(X[test])
            scores.append(evaluate(y[test], mean, std).as_dict())
        rows.append({"n": n, "fit_s": float(np.mean(fit_s)), **_mean(scores)})
    return rows


def _mean(scores: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [k for k in scores[0] if k != "n"]
    out: dict[str, Any] = {"repeats": len(scores), "n_test": scores[0]["n"]}
    for k in keys:
        values = np.array([s[k] for s in scores], dtype=float)
        out[k] = float(values.mean())
        out[k + "_sd"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return out


def plot(curves: dict[str, list[dict[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for label, rows in curves.items():
        n = [r["n"] for r in rows]
        for ax, key, title in zip(
            axes,
            ("srcc", "mae", "within_05"),
            ("SRCC (higher is better)", "MAE, stars", "share within ±0.5 stars"),
            strict=True,
        ):
            ax.errorbar(
                n,
                [r[key] for r in rows],
                yerr=[r[key + "_sd"] for r in rows],
                marker="o",
                capsize=3,
                label=label,
            )
            ax.set_xscale("log")
            ax.set_xlabel("labelled images")
            ax.set_title(title)
            ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Reward model on BIQ2021 dev (500 held-out photos per repeat)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--resamples", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--refresh-features", action="store_true")
    args = parser.parse_args()
    repeats = 2 if args.quick else args.repeats
    sizes = (50, 200) if args.quick else SIZES
    started = time.perf_counter()

    ds = _reward_data.load(refresh=args.refresh_features)
    X, y = ds.X, ds.y
    j = ds.names.index(BASELINE_FEATURE)
    X_base = np.log(X[:, [j]] + 1e-8)
    timing = {
        "extract_ms_median": float(np.median(ds.extract_s) * 1e3),
        "extract_ms_mean": float(np.mean(ds.extract_s) * 1e3),
        "extract_ms_p95": float(np.percentile(ds.extract_s, 95) * 1e3),
        "decode_ms_median": float(np.median(ds.decode_s) * 1e3),
        "images": len(ds.images),
    }
    print(
        f"BIQ2021 dev: {len(y)} images, {X.shape[1]} features ({ds.version}); "
        f"extraction {timing['extract_ms_median']:.1f} ms/image median "
        f"(p95 {timing['extract_ms_p95']:.1f}), JPEG decode {timing['decode_ms_median']:.1f} ms"
    )
    zero_shot = evaluate(y, X[:, j]).as_dict()  # no training: rank by sharpness alone

    print("Model selection (point predictions):")
    selection = model_selection(
        X, y, repeats=min(repeats, 3), sizes=(200,) if args.quick else (200, 1000)
    )
    print("Learning curve:")
    full = learning_curve(X, y, repeats, sizes, args.resamples)
    base = learning_curve(X_base, y, repeats, sizes, args.resamples)

    header = (
        f"{'labels':>6} | {'set':<22} | {'SRCC':>5} {'PLCC':>5} {'MAE':>5} "
        f"{'±0.5':>5} | {'cov68':>5} {'cov95':>5} | {'fit s':>5}"
    )
    print(header)
    print("-" * len(header))
    for label, rows in (("full (148 features)", full), ("baseline (Laplacian var)", base)):
        for r in rows:
            print(
                f"{r['n']:>6} | {label:<22} | {r['srcc']:.3f} {r['plcc']:.3f} {r['mae']:.3f} "
                f"{r['within_05']:.3f} | {r['coverage_68']:.3f} {r['coverage_95']:.3f} | "
                f"{r['fit_s']:5.1f}"
            )
    print(f"zero-shot Laplacian variance (no training): SRCC {zero_shot['srcc']:.3f}")

    result = {
        "command": ".venv/bin/python -m bench.reward" + (" --quick" if args.quick else ""),
        "dataset": str(_reward_data.DATASET.relative_to(REPO.parent)),
        "feature_version": ds.version,
        "feature_dims": int(X.shape[1]),
        "protocol": {
            "test_size": TEST_SIZE,
            "repeats": repeats,
            "sizes": list(sizes),
            "resamples": args.resamples,
            "rating_scale": "rating_1_5",
        },
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "timing": timing,
        "zero_shot_laplacian": zero_shot,
        "model_selection": selection,
        "learning_curve": {"full": full, "baseline_laplacian_var": base},
        "elapsed_s": time.perf_counter() - started,
    }
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
        plot({"full classical set": full, "baseline: variance of the Laplacian": base}, PLOT)
        print(f"wrote {RESULTS.relative_to(REPO)} and {PLOT.relative_to(REPO)}")
    print(f"elapsed {result['elapsed_s']:.0f} s")


if __name__ == "__main__":
    main()
