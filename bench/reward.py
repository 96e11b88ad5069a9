"""Reward model on real human judgements with whole-star labels: ``make bench-reward``.

Data: ``../shared/data/biq2021-dev`` (1,500 photos with a mean opinion score). The
labels the model learns from are what the product receives: whole stars,
``round(1 + 4·MOS)``. Every number goes through the service's own training code
(:mod:`services.reward.learning`: targets, ensemble, calibration, scoring).

Protocol. BIQ2021 has no renders, so photos are put in random "renders" of 4 within
their sub-collection (seeded); folds and bootstrap resamples keep a render whole, so
no image (and no render) is on both sides of a split. 5-fold cross-validation; every
photo is predicted once, by the model of the fold that did not see it. Reported
against the whole stars (what the service's held-out figures show) and against the
continuous MOS on the 1–5 scale (the quality the stars round).

Sections (``--only`` picks some):

* ``cv``: the service's recipe, with each calibration (isotonic, linear, none).
* ``curve``: learning curve, training on the first 250, 500, 1,000 and all (≈1,200)
  photos of each training fold.
* ``ranking``: ranking-aware training: the MLP with a pairwise (RankNet) term
  within renders against the same MLP on squared error alone, and against the
  service's ensemble.
* ``bias``: several trainers: 5 simulated trainers with strictness −0.6…+0.6 stars
  and noise 0.4 rate each photo twice; the model with and without trainer-bias
  modelling.
* ``bestofn``: best-of-N replay: from the cross-validated predictions, the expected
  rating gain of the model's pick over a random pick among N = 4 photos of a
  "render", with a 95 % bootstrap interval, for renders drawn within a
  sub-collection and across the whole set.

Writes ``bench/results/reward.json`` and ``docs/img/reward_learning_curve.png``.
``--quick`` runs 2 folds of fewer sizes (a smoke test, nothing written).
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
from scipy import stats  # noqa: E402

from bench import _reward_data  # noqa: E402
from services.reward.calibration import fit_calibrator  # noqa: E402
from services.reward.learning import FitOptions, TrainingTable, fit_candidates, score  # noqa: E402
from services.reward.metrics import best_of_n  # noqa: E402
from services.reward.model import fit_mlp  # noqa: E402
from services.reward.targets import image_targets  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "reward.json"
PLOT = REPO / "docs" / "img" / "reward_learning_curve.png"
FOLDS = 5
GROUP = 4
SIZES = (250, 500, 1000, 0)  # 0: the whole training fold
SECTIONS = ("cv", "curve", "ranking", "bias", "bestofn")


def whole_stars(mos_1_5: np.ndarray) -> np.ndarray:
    return np.clip(np.round(mos_1_5), 1, 5)


def renders(subsets: np.ndarray, seed: int, within_subset: bool = True) -> np.ndarray:
    """Random groups of ``GROUP`` photos (within a sub-collection by default)."""
    rng = np.random.default_rng(seed)
    out = np.empty(len(subsets), dtype=object)
    pools = (
        [np.flatnonzero(subsets == s) for s in np.unique(subsets)]
        if within_subset
        else [np.arange(len(subsets))]
    )
    for pool in pools:
        order = rng.permutation(pool)
        for k, i in enumerate(order):
            out[i] = f"{subsets[pool[0]] if within_subset else 'all'}-{k // GROUP}"
    return out.astype(str)


def folds_of(groups: np.ndarray, k: int, seed: int) -> np.ndarray:
    names = np.unique(groups)
    fold_of = dict(zip(names, np.random.default_rng(seed).permutation(len(names)) % k, strict=True))
    return np.array([fold_of[g] for g in groups])


def table_for(
    ds: Any,
    groups: np.ndarray,
    y: np.ndarray,
    raters: list[str] | None = None,
    rows: np.ndarray | None = None,
) -> TrainingTable:
    rows = np.arange(len(y)) if rows is None else rows
    return TrainingTable(
        images=[ds.images[i] for i in rows],
        groups=[str(groups[i]) for i in rows],
        raters=raters if raters is not None else ["biq"] * len(rows),
        y=y,
        classical=ds.X[rows],
    )


def summarise(
    pred: np.ndarray, stars: np.ndarray, mos: np.ndarray, groups: np.ndarray
) -> dict[str, Any]:
    table_rows = np.arange(len(stars))
    fake = TrainingTable(
        [str(i) for i in table_rows],
        [str(g) for g in groups],
        ["biq"] * len(stars),
        stars,
        np.zeros((len(stars), 1)),
    )
    m = score(fake, np.ones(len(stars), bool), pred).as_dict()
    return {
        "srcc": m["srcc"],
        "srcc_mos": float(stats.spearmanr(pred, mos)[0]),
        "plcc": m["plcc"],
        "mae": m["mae"],
        "within_05": m["within_05"],
        "pair_accuracy": m["pair_accuracy"],
        "n_pairs": m["n_pairs"],
        "pred_min": m["pred_min"],
        "pred_max": m["pred_max"],
        "pred_p01": float(np.percentile(pred, 1)),
        "pred_p99": float(np.percentile(pred, 99)),
        "best_of_n_gain": m["best_of_n_gain"],
    }


def cross_validate(
    ds: Any,
    stars: np.ndarray,
    groups: np.ndarray,
    folds: np.ndarray,
    n_folds: int,
    options: FitOptions,
    size: int = 0,
    raters: list[str] | None = None,
    y_rows: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray], list[float]]:
    """Out-of-fold predictions (isotonic, linear, none calibrations) and fit times."""
    n = len(stars)
    preds = {kind: np.full(n, np.nan) for kind in ("isotonic", "linear", "none")}
    fit_s = []
    for k in range(n_folds):
        test = folds == k
        train_idx = np.flatnonzero(~test)
        if size:
            train_idx = np.random.default_rng(100 + k).permutation(train_idx)[:size]
        train = np.zeros(n, bool)
        train[train_idx] = True
        table = table_for(ds, groups, stars, raters)
        t0 = time.perf_counter()
        model = fit_candidates(table, train, options)["classical"]
        fit_s.append(time.perf_counter() - t0)
        assert model.oob is not None
        raw = model.score(ds.X[test])
        for kind in preds:
            preds[kind][test] = fit_calibrator(*model.oob, kind=kind)(raw)
        print(f"    fold {k}: {train.sum()} labels, fit {fit_s[-1]:.1f} s", flush=True)
    return preds["isotonic"], preds, fit_s


def section_cv(
    ds: Any,
    stars: np.ndarray,
    mos: np.ndarray,
    groups: np.ndarray,
    folds: np.ndarray,
    n_folds: int,
    resamples: int,
) -> dict[str, Any]:
    _, preds, fit_s = cross_validate(
        ds, stars, groups, folds, n_folds, FitOptions(resamples=resamples)
    )
    out = {kind: summarise(p, stars, mos, groups) for kind, p in preds.items()}
    for kind, row in out.items():
        _print_row(f"calibration {kind}", row)
    return {"by_calibration": out, "fit_s": fit_s, "oof_isotonic": preds["isotonic"].tolist()}


def section_curve(
    ds: Any,
    stars: np.ndarray,
    mos: np.ndarray,
    groups: np.ndarray,
    folds: np.ndarray,
    n_folds: int,
    resamples: int,
    sizes: tuple[int, ...],
) -> list[dict[str, Any]]:
    rows = []
    for size in sizes:
        pred, _, fit_s = cross_validate(
            ds, stars, groups, folds, n_folds, FitOptions(resamples=resamples), size=size
        )
        labels = size or int(np.mean([np.sum(folds != k) for k in range(n_folds)]))
        row = {
            "labels": labels,
            "fit_s": float(np.mean(fit_s)),
            **summarise(pred, stars, mos, groups),
        }
        _print_row(f"{labels} labels", row)
        rows.append(row)
    return rows


def section_ranking(
    ds: Any,
    stars: np.ndarray,
    mos: np.ndarray,
    groups: np.ndarray,
    folds: np.ndarray,
    n_folds: int,
    resamples: int,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    n = len(stars)
    for name, pairwise in (("MLP, squared error", 0.0), ("MLP, squared error + pairwise", 1.0)):
        pred = np.full(n, np.nan)
        for k in range(n_folds):
            train = folds != k
            t = image_targets(
                [ds.images[i] for i in np.flatnonzero(train)],
                ["biq"] * int(train.sum()),
                stars[train],
                list(groups[train]),
            )
            model = fit_mlp(
                ds.X[train],
                t.target,
                weights=t.weight,
                groups=groups[train],
                resamples=resamples,
                epochs=200,
                pairwise=pairwise,
                feature_set="classical",
                seed=k,
            )
            pred[folds == k] = model.predict(ds.X[folds == k])[0]
        out[name] = summarise(pred, stars, mos, groups)
        _print_row(name, out[name])
    return out


def section_bias(
    ds: Any, mos: np.ndarray, groups: np.ndarray, folds: np.ndarray, n_folds: int, resamples: int
) -> dict[str, Any]:
    """Each photo rated by 2 of 5 simulated trainers of different strictness."""
    rng = np.random.default_rng(7)
    strictness = np.array([-0.6, -0.3, 0.0, 0.3, 0.6])
    n = len(mos)
    img_rows = np.repeat(np.arange(n), 2)
    who = np.concatenate([rng.choice(5, 2, replace=False) for _ in range(n)])
    # Trainers do not rate at random: the strict ones see the better photos more often,
    # so an image's average rating confounds quality and strictness unless modelled.
    stars = whole_stars(mos[img_rows] + strictness[who] + rng.normal(0, 0.4, len(who)))
    raters = [f"t{w}" for w in who]
    out: dict[str, Any] = {
        "strictness": strictness.tolist(),
        "noise_sd": 0.4,
        "ratings_per_photo": 2,
    }
    for name, rater_sd in (("trainer bias modelled", 0.4), ("plain average of ratings", 1e-6)):
        pred = np.full(n, np.nan)
        biases: dict[str, float] = {}
        for k in range(n_folds):
            test_img = folds == k
            train_rows = ~test_img[img_rows]
            table = TrainingTable(
                [ds.images[i] for i in img_rows],
                [str(groups[i]) for i in img_rows],
                raters,
                stars,
                ds.X[img_rows],
            )
            model = fit_candidates(
                table, train_rows, FitOptions(resamples=resamples, rater_sd=rater_sd)
            )["classical"]
            pred[test_img] = model.predict(ds.X[test_img])[0]
            biases = model.info["trainer_biases"]
        truth = np.clip(mos, 1, 5)
        row = {
            "srcc_mos": float(stats.spearmanr(pred, mos)[0]),
            "mae_mos": float(np.mean(np.abs(pred - truth))),
            "within_05_mos": float(np.mean(np.abs(pred - truth) <= 0.5)),
            "estimated_biases_last_fold": biases,
        }
        out[name] = row
        print(
            f"  {name:32s} SRCC(MOS) {row['srcc_mos']:.3f}  MAE(MOS) {row['mae_mos']:.3f}  "
            f"±0.5(MOS) {row['within_05_mos']:.3f}  biases {biases}",
            flush=True,
        )
    return out


def section_bestofn(
    pred: np.ndarray, stars: np.ndarray, mos: np.ndarray, subsets: np.ndarray
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, within in (
        ("renders within a sub-collection", True),
        ("renders across the set", False),
    ):
        gains_s, gains_m = [], []
        for seed in range(20):  # average over 20 random groupings
            g = renders(subsets, seed=500 + seed, within_subset=within)
            gains_s.append(best_of_n(stars, pred, list(g), seed=seed))
            gains_m.append(best_of_n(mos, pred, list(g), seed=seed))
        row = {
            "n": GROUP,
            "groupings": 20,
            "sets_per_grouping": gains_s[0].sets,
            "gain_stars": float(np.mean([b.gain for b in gains_s])),
            "gain_stars_low": float(np.mean([b.low for b in gains_s])),
            "gain_stars_high": float(np.mean([b.high for b in gains_s])),
            "oracle_stars": float(np.mean([b.oracle for b in gains_s])),
            "gain_mos": float(np.mean([b.gain for b in gains_m])),
            "gain_mos_low": float(np.mean([b.low for b in gains_m])),
            "gain_mos_high": float(np.mean([b.high for b in gains_m])),
            "oracle_mos": float(np.mean([b.oracle for b in gains_m])),
        }
        out[name] = row
        print(
            f"  {name:34s} gain {row['gain_stars']:+.3f} stars "
            f"[{row['gain_stars_low']:+.3f}, {row['gain_stars_high']:+.3f}] (oracle "
            f"{row['oracle_stars']:+.3f}); on MOS {row['gain_mos']:+.3f} "
            f"[{row['gain_mos_low']:+.3f}, {row['gain_mos_high']:+.3f}] "
            f"(oracle {row['oracle_mos']:+.3f})",
            flush=True,
        )
    return out


def _print_row(label: str, r: dict[str, Any]) -> None:
    pair = r["pair_accuracy"]
    print(
        f"  {label:34s} SRCC {r['srcc']:.3f} (MOS {r['srcc_mos']:.3f})  PLCC {r['plcc']:.3f}  "
        f"MAE {r['mae']:.3f}  ±0.5 {r['within_05']:.3f}  "
        f"pairs {pair if pair is None else round(pair, 3)}  "
        f"span {r['pred_min']:.2f}–{r['pred_max']:.2f}",
        flush=True,
    )


def plot(curve: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    n = [r["labels"] for r in curve]
    for ax, keys, title in zip(
        axes,
        (("srcc", "srcc_mos"), ("mae",), ("within_05", "pair_accuracy")),
        ("SRCC (whole stars; MOS)", "MAE, stars", "within ±0.5; within-render pairs"),
        strict=True,
    ):
        for key in keys:
            ax.plot(n, [r[key] for r in curve], marker="o", label=key)
        ax.set_xlabel("labelled photos (whole stars)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Reward model on BIQ2021 dev, 5-fold CV grouped by render")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resamples", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="*", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--refresh-features", action="store_true")
    args = parser.parse_args()
    n_folds = 2 if args.quick else FOLDS
    sizes = (250, 0) if args.quick else SIZES
    started = time.perf_counter()

    ds = _reward_data.load(refresh=args.refresh_features)
    mos = ds.y
    stars = whole_stars(mos)
    groups = renders(ds.subsets, seed=0)
    folds = folds_of(groups, n_folds, seed=0)
    timing = {
        "extract_ms_median": float(np.median(ds.extract_s) * 1e3),
        "extract_ms_p95": float(np.percentile(ds.extract_s, 95) * 1e3),
        "decode_ms_median": float(np.median(ds.decode_s) * 1e3),
    }
    counts = {int(s): int(np.sum(stars == s)) for s in range(1, 6)}
    print(
        f"BIQ2021 dev: {len(stars)} photos, {ds.X.shape[1]} features ({ds.version}); "
        f"whole stars {counts}; {len(np.unique(groups))} renders of {GROUP}"
    )
    result: dict[str, Any] = {
        "command": ".venv/bin/python -m bench.reward" + (" --quick" if args.quick else ""),
        "dataset": str(_reward_data.DATASET),
        "feature_version": ds.version,
        "labels": "whole stars = clip(round(1 + 4·MOS), 1, 5)",
        "star_counts": counts,
        "protocol": {
            "folds": n_folds,
            "render_size": GROUP,
            "resamples": args.resamples,
            "grouping": "random renders of 4 within sub-collection; folds keep renders whole",
        },
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_at_start": os.getloadavg(),
        },
        "timing_features": timing,
    }
    # The ceiling: the MOS itself, rounded, against the whole stars.
    result["ceiling_srcc_mos_vs_stars"] = float(stats.spearmanr(mos, stars)[0])
    oof = None
    if "cv" in args.only:
        print("Cross-validation, service recipe, by calibration:")
        result["cv"] = section_cv(ds, stars, mos, groups, folds, n_folds, args.resamples)
        oof = np.array(result["cv"].pop("oof_isotonic"))
    if "curve" in args.only:
        print("Learning curve (isotonic calibration):")
        result["learning_curve"] = section_curve(
            ds, stars, mos, groups, folds, n_folds, args.resamples, sizes
        )
    if "ranking" in args.only:
        print("Ranking-aware training:")
        result["ranking"] = section_ranking(ds, stars, mos, groups, folds, n_folds, args.resamples)
    if "bias" in args.only:
        print("Several trainers (simulated strictness):")
        result["trainer_bias"] = section_bias(ds, mos, groups, folds, n_folds, args.resamples)
    if "bestofn" in args.only and oof is not None:
        print("Best-of-N replay (N = 4), from the cross-validated predictions:")
        result["best_of_n"] = section_bestofn(oof, stars, mos, ds.subsets)
    result["elapsed_s"] = time.perf_counter() - started
    if not args.quick:
        out = (
            RESULTS
            if set(args.only) == set(SECTIONS)
            else RESULTS.with_name("reward." + "-".join(args.only) + ".json")
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        if "learning_curve" in result:
            plot(result["learning_curve"], PLOT)
        print(f"wrote {out.relative_to(REPO)}")
    print(f"elapsed {result['elapsed_s']:.0f} s")


if __name__ == "__main__":
    main()
