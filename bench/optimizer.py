"""Optimizer benchmark (`make bench-optimizer`, i.e. `python -m bench.optimizer`).

Simulated trainers (``bench/_optimizer_sim.py``: hidden quality surfaces, render
difficulty, trainer bias and inconsistency, integer stars) rate two variants per
round. Compared on the same worlds (same surfaces, renders, trainers, seeds):

    random   uniform random search, best rating recommended
    seeds    the seeds' loop: scikit-optimize GP+EI, each rating told independently,
             option A always Leonardo, B always Stable Diffusion
    tpe      Optuna's TPE sampler
    ours     the optimizer service over its real HTTP API (fresh uvicorn + SQLite
             per repetition), recommendation from GET /ml/status
    exact    the same model in-process, fed the noise-free quality (real-valued):
             the limit of what better ratings could buy

Measures: regret (best achievable quality minus the true quality of the
recommendation) after 5, 10, 20, 25, 30, 50 rounds (mean, median, quartiles),
rounds needed to come within 0.5 and 0.25 stars, and suggest latency at 50 … 2,000
stored ratings. Prints tables, writes ``bench/results/optimizer.json`` and
``docs/img/optimizer_regret.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "optimizer.json"
PLOT = REPO / "docs" / "img" / "optimizer_regret.png"
CHECKPOINTS = (5, 10, 20, 25, 30, 50)
THRESHOLDS = (0.5, 0.25)
METHODS = ("random", "seeds", "tpe", "ours", "exact")
LABELS = {
    "random": "random search",
    "seeds": "seeds' loop (skopt GP+EI)",
    "tpe": "Optuna TPE",
    "ours": "ours (HTTP)",
    "exact": "ours, noise-free ratings",
}
# Benchmark-only reductions (documented in docs/benchmarks.md): they keep 30
# repetitions x 4 surfaces x 5 methods inside ~20 minutes on 2 cores.
SEEDS_ACQ_POINTS = 2000
OURS_BENCH_SETTINGS: dict[str, Any] = {"candidate_points": 256}
# The benchmark measures what the model recommends after each rating, so every read
# waits for the background fit of that rating (by default a suggestion waits 1 s and
# a status read not at all, then they use the previous model); the model is the same.
OURS_SERVICE_SETTINGS: dict[str, Any] = {"fit_wait_seconds": 600.0,
                                         "status_fit_wait_seconds": 600.0}
QUICK = {"repetitions": 2, "rounds": 25}
QUICK_RESULTS = REPO / "bench" / "results" / "optimizer_quick.json"


def run_repetition(kind: str, seed: int, rounds: int) -> dict[str, Any]:
    """Every method on one world; regret after each round, and seconds spent."""
    from bench._optimizer_http import optimizer_service
    from bench._optimizer_methods import TPE, OursHTTP, OursInProcess, RandomSearch, SeedsLoop
    from bench._optimizer_sim import make_world

    world = make_world(kind, seed, rounds)
    out: dict[str, Any] = {"kind": kind, "seed": seed, "regret": {}, "seconds": {}}

    def drive(method: Any, exact: bool = False) -> list[float]:
        regrets = []
        for t in range(rounds):
            points = method.ask(t)
            if exact:
                ratings = [world.surface.quality(p, u) for p, u in points]
            else:
                ratings = [world.rate(t, i, p, u) for i, (p, u) in enumerate(points)]
            method.tell(t, points, ratings, world.rounds[t].trainer.name)
            provider, u = method.recommend()
            regrets.append(round(world.regret(provider, u), 5))
        return regrets

    for name in METHODS:
        start = time.perf_counter()
        if name == "ours":
            with optimizer_service(
                seed=seed, **OURS_BENCH_SETTINGS, **OURS_SERVICE_SETTINGS
            ) as client:
                ours = OursHTTP(client, seed)
                out["regret"][name] = drive(ours)
                out["final_status"] = {
                    k: ours.last_status.get(k)
                    for k in ("posterior_convergence", "predicted_rating_interval", "model")
                }
        elif name == "exact":
            exact = OursInProcess(seed, name="exact", **OURS_BENCH_SETTINGS)
            out["regret"][name] = drive(exact, exact=True)
        else:
            method = {
                "random": lambda: RandomSearch(seed),
                "seeds": lambda: SeedsLoop(seed, SEEDS_ACQ_POINTS, fast=True),
                "tpe": lambda: TPE(seed),
            }[name]()
            out["regret"][name] = drive(method)
        out["seconds"][name] = round(time.perf_counter() - start, 2)
    return out


def _job(args: tuple[str, int, int]) -> dict[str, Any]:
    return run_repetition(*args)


def _rounds_to(curve: list[float], threshold: float) -> float:
    for t, regret in enumerate(curve, start=1):
        if regret <= threshold:
            return float(t)
    return math.inf


def _stats(values: np.ndarray) -> dict[str, float]:
    q1, med, q3 = np.percentile(values, [25, 50, 75])
    return {
        "mean": round(float(values.mean()), 4),
        "median": round(float(med), 4),
        "q1": round(float(q1), 4),
        "q3": round(float(q3), 4),
    }


def summarise(reps: list[dict[str, Any]], rounds: int) -> dict[str, Any]:
    """Per surface and method: regret statistics at the checkpoints, rounds-to-threshold."""
    kinds = sorted({r["kind"] for r in reps}, key=lambda k: [r["kind"] for r in reps].index(k))
    surfaces: dict[str, Any] = {}
    for kind in [*kinds, "all"]:
        chosen = [r for r in reps if kind in ("all", r["kind"])]
        per_method: dict[str, Any] = {}
        for m in METHODS:
            curves = np.array([r["regret"][m] for r in chosen])
            entry: dict[str, Any] = {
                "regret": {
                    str(c): _stats(curves[:, c - 1]) for c in CHECKPOINTS if c <= rounds
                },
                "mean_curve": [round(float(v), 4) for v in curves.mean(axis=0)],
                "seconds_per_repetition": round(
                    float(np.mean([r["seconds"][m] for r in chosen])), 2
                ),
            }
            for th in THRESHOLDS:
                hits = np.array([_rounds_to(list(c), th) for c in curves])
                reached = np.isfinite(hits)
                median = float(np.median(hits))
                entry[f"rounds_to_{th}"] = {
                    "median": median if math.isfinite(median) else None,
                    "reached_fraction": round(float(reached.mean()), 3),
                }
            per_method[m] = entry
        surfaces[kind] = {"repetitions": len(chosen), "methods": per_method}
    return surfaces


def goals(surfaces: dict[str, Any], rounds: int) -> dict[str, Any]:
    """The issue's goals, checked on mean regret."""
    out: dict[str, Any] = {}
    budget = "25" if rounds >= 25 else str(max(c for c in CHECKPOINTS if c <= rounds))
    for kind, data in surfaces.items():
        m = data["methods"]
        mean = {k: m[k]["regret"][budget]["mean"] for k in METHODS}
        worse_than_random = [
            c
            for c, s in m["ours"]["regret"].items()
            if s["mean"] > m["random"]["regret"][c]["mean"]
        ]
        out[kind] = {
            "budget_rounds": int(budget),
            "ours_over_seeds": round(mean["ours"] / max(mean["seeds"], 1e-9), 3),
            "half_of_seeds": mean["ours"] <= 0.5 * mean["seeds"],
            "ahead_of_tpe": mean["ours"] < mean["tpe"],
            "checkpoints_worse_than_random": worse_than_random,
            "gap_to_noise_free": round(mean["ours"] - mean["exact"], 4),
        }
    return out


def print_tables(surfaces: dict[str, Any], goal: dict[str, Any], rounds: int) -> None:
    cps = [c for c in CHECKPOINTS if c <= rounds]
    for kind, data in surfaces.items():
        print(f"\n## {kind} ({data['repetitions']} repetitions): regret mean / median [q1, q3]")
        head = f"{'method':<28}" + "".join(f"{'@' + str(c):>20}" for c in cps)
        print(head + f"{'to 0.5':>9}{'to 0.25':>9}{'s/rep':>7}")
        for m in METHODS:
            e = data["methods"][m]
            cells = "".join(
                f"{e['regret'][str(c)]['mean']:>6.2f}/{e['regret'][str(c)]['median']:.2f}"
                f" [{e['regret'][str(c)]['q1']:.1f},{e['regret'][str(c)]['q3']:.1f}]"
                for c in cps
            )
            to = "".join(
                f"{_fmt_rounds(e[f'rounds_to_{th}'], rounds):>9}" for th in THRESHOLDS
            )
            print(f"{LABELS[m]:<28}{cells}{to}{e['seconds_per_repetition']:>7.1f}")
        g = goal[kind]
        print(
            f"goals @{g['budget_rounds']}: ours/seeds = {g['ours_over_seeds']:.2f} "
            f"(≤ 0.5: {g['half_of_seeds']}), ahead of TPE: {g['ahead_of_tpe']}, "
            f"checkpoints worse than random: {g['checkpoints_worse_than_random'] or 'none'}, "
            f"gap to noise-free: {g['gap_to_noise_free']:+.2f}"
        )


def _fmt_rounds(entry: dict[str, Any], rounds: int) -> str:
    if entry["median"] is None:
        return f">{rounds}"
    return f"{entry['median']:.0f}"


def markdown(result: dict[str, Any]) -> str:
    """The results as Markdown tables (regret mean / median, rounds-to, goals, latency)."""
    rounds = result["rounds"]
    cps = [c for c in CHECKPOINTS if c <= rounds]
    lines = []
    for kind, data in result["surfaces"].items():
        lines += [
            f"**{kind}** ({data['repetitions']} repetitions): regret in stars, "
            "mean / median [q1–q3]",
            "",
            "| method | " + " | ".join(f"@{c}" for c in cps) + " | rounds to 0.5 | to 0.25 |",
            "|---|" + "---:|" * (len(cps) + 2),
        ]
        for m in METHODS:
            e = data["methods"][m]
            cells = [
                f"{e['regret'][str(c)]['mean']:.2f} / {e['regret'][str(c)]['median']:.2f} "
                f"[{e['regret'][str(c)]['q1']:.2f}–{e['regret'][str(c)]['q3']:.2f}]"
                for c in cps
            ]
            to = [
                f"{_fmt_rounds(e[f'rounds_to_{th}'], rounds)} "
                f"({100 * e[f'rounds_to_{th}']['reached_fraction']:.0f} %)"
                for th in THRESHOLDS
            ]
            name = f"**{LABELS[m]}**" if m == "ours" else LABELS[m]
            lines.append(f"| {name} | " + " | ".join(cells + to) + " |")
        lines.append("")
    lines += [
        "| surface | ours / seeds @25 | ≤ ½ seeds | ahead of TPE @25 "
        "| checkpoints worse than random | ours − noise-free @25 |",
        "|---|---:|---|---|---|---:|",
    ]
    for kind, g in result["goals"].items():
        worse = ", ".join(g["checkpoints_worse_than_random"]) or "none"
        lines.append(
            f"| {kind} | {g['ours_over_seeds']:.2f} | {'yes' if g['half_of_seeds'] else 'no'} "
            f"| {'yes' if g['ahead_of_tpe'] else 'no'} | {worse} "
            f"| {g['gap_to_noise_free']:+.2f} |"
        )
    if result.get("latency"):
        lines += [
            "",
            "| stored ratings | suggest after a new rating (refit) p50 / p95 "
            "| suggest, cached model p50 / p95 | status p50 / p95 |",
            "|---:|---:|---:|---:|",
        ]
        for size, lat in result["latency"].items():
            cells = [
                f"{lat[k]['p50_ms']:.0f} / {lat[k]['p95_ms']:.0f} ms"
                for k in ("suggest_cold", "suggest_warm", "status_after_suggest")
            ]
            lines.append(f"| {size} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(surfaces: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [k for k in surfaces if k != "all"]
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.2 * len(kinds), 3.8), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, kind in zip(axes, kinds, strict=True):
        for m in METHODS:
            curve = surfaces[kind]["methods"][m]["mean_curve"]
            style = "--" if m == "exact" else "-"
            ax.plot(range(1, len(curve) + 1), curve, style, label=LABELS[m], lw=1.8)
        ax.set_title(f"{kind} ({surfaces[kind]['repetitions']} reps)")
        ax.set_xlabel("rounds (experiments, 2 ratings each)")
        ax.axhline(0.25, color="grey", lw=0.6, ls=":")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean regret of the recommendation (stars)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    from bench._optimizer_sim import SURFACES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=30, help="per surface")
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--surfaces", default=",".join(SURFACES))
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--latency-only", action="store_true",
                        help="re-measure suggest latency into the existing results file")
    parser.add_argument("--quick", action="store_true",
                        help="2 repetitions per surface, 25 rounds, no latency, no plot; "
                        "writes bench/results/optimizer_quick.json (a before/after check)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=PLOT)
    args = parser.parse_args(argv)
    if args.quick:
        args.repetitions, args.rounds = QUICK["repetitions"], QUICK["rounds"]
        args.skip_latency = True
    if args.out is None:
        args.out = QUICK_RESULTS if args.quick else RESULTS
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

    started = time.perf_counter()
    if args.latency_only:
        from bench._optimizer_latency import measure

        result = json.loads(args.out.read_text())
        result["latency"] = measure()
        result["latency_command"] = ".venv/bin/python -m bench.optimizer --latency-only"
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        args.out.with_suffix(".md").write_text(markdown(result))
        print(f"\nupdated the latency in {args.out}")
        return 0
    jobs = [
        (kind, seed, args.rounds)
        for seed in range(args.repetitions)
        for kind in args.surfaces.split(",")
    ]
    print(f"{len(jobs)} repetitions x {len(METHODS)} methods, {args.rounds} rounds, "
          f"{args.workers} workers", flush=True)
    reps: list[dict[str, Any]] = []
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for i, rep in enumerate(pool.map(_job, jobs), start=1):
            reps.append(rep)
            if i % 10 == 0 or i == len(jobs):
                print(f"  {i}/{len(jobs)} done ({time.perf_counter() - started:.0f} s)", flush=True)
    surfaces = summarise(reps, args.rounds)
    goal = goals(surfaces, args.rounds)
    print_tables(surfaces, goal, args.rounds)

    latency = None
    if not args.skip_latency:
        from bench._optimizer_latency import measure

        latency = measure()
    if not args.quick:
        plot(surfaces, args.plot)
    result = {
        "command": "make bench-optimizer  # .venv/bin/python -m bench.optimizer "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "rounds": args.rounds,
        "repetitions_per_surface": args.repetitions,
        "benchmark_settings": {
            "ours": OURS_BENCH_SETTINGS,
            "ours_service": OURS_SERVICE_SETTINGS,
            "seeds_acquisition_points": SEEDS_ACQ_POINTS,
        },
        "wall_seconds": round(time.perf_counter() - started, 1),
        "goals": goal,
        "surfaces": surfaces,
        "latency": latency,
        "final_status_example": reps[0].get("final_status"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(result))
    print(f"\nwrote {args.out}{'' if args.quick else ' and ' + str(args.plot)} "
          f"in {result['wall_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
