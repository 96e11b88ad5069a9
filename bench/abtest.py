"""Does the prompt A/B rule promote by noise? Our paired Bayesian rule against the seeds' rule.

Run with ``make bench-abtest`` (``.venv/bin/python -m bench.abtest``); options:
``--sims`` (simulated tests per scenario), ``--seed``, ``--quick``.

Synthetic rating streams (see :mod:`bench._abtest_sim`): every experiment is a
render with its own difficulty, rated by one of six trainers with their own
leniency, on a 1-5 integer scale. A challenger prompt is ``delta`` stars better
than the champion on the latent scale (0: no better; +0.3; +0.5).

Rules compared, at budgets of 10, 20 and 40 pairs (an experiment = one pair =
two ratings):

* **ours**: :func:`services.evolution.ab_test.decide_batch` with the service's
  default :class:`~services.evolution.ab_test.DecisionRule` (the very function
  the service calls), paired design, decided pair by pair;
* **seeds' rule**: 5 samples, alternating champion/challenger as in seed 003
  (samples 11, 13, 15 champion; 12, 14 challenger; each a different render),
  promote if the challenger's average is more than 0.1 higher;
* **seeds' threshold, N pairs / N per arm**: the same "+0.1" threshold given our
  budget, paired or unpaired, to show that the threshold, not only the sample
  size, is the problem;
* **ours, promotion checked after every pair, up to 40**: the same posterior without
  looks, to show why promotion is only checked at the looks.

Also reported: the post-promotion monitor (false rollback of a good version,
detection of a degraded one) and the sensitivity of our rule to the per-rating
noise. Results: printed table, ``bench/results/abtest.json``,
``docs/img/abtest.png``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from bench._abtest_sim import (
    World,
    monitor_rates,
    ours,
    paired_stream,
    seed_rule,
    threshold_paired,
    threshold_unpaired,
)
from services.evolution.ab_test import DecisionRule, MonitorRule

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "abtest.json"
FIGURE = ROOT / "docs" / "img" / "abtest.png"
BUDGETS = (10, 20, 40)
EFFECTS = (0.0, 0.3, 0.5)
NOISES = (0.35, 0.5, 0.65, 0.8)


def _pct(x: float) -> str:
    return f"{100 * x:5.1f}%"


def run(sims: int, seed: int) -> dict[str, Any]:
    world = World()
    rule = DecisionRule()
    no_looks = replace(rule, looks=tuple(range(rule.min_pairs, 41)), max_pairs=40)
    rows: dict[str, dict[str, dict[str, float]]] = {}
    extra: dict[str, Any] = {}
    rng = np.random.default_rng(seed)
    for effect in (*EFFECTS, -0.3):
        key = f"{effect:+.1f}"
        diffs, ratings_sd = paired_stream(world, effect, sims, 40, rng)
        extra.setdefault("observed_rating_sd", {})[key] = round(ratings_sd, 3)
        extra.setdefault("paired_difference_sd", {})[key] = round(float(diffs.std()), 3)
        our = ours(diffs, rule, BUDGETS)
        rows.setdefault("ours", {})[key] = our["promoted"]
        extra.setdefault("ours_rolled_back", {})[key] = our["rolled_back"]
        extra.setdefault("ours_mean_pairs_to_decision", {})[key] = our["mean_pairs"]
        rows.setdefault("ours_every_pair_to_40", {})[key] = ours(diffs, no_looks,
                                                                BUDGETS)["promoted"]
        rows.setdefault("seed_threshold_paired", {})[key] = threshold_paired(diffs, BUDGETS)
        rows.setdefault("seed_threshold_unpaired", {})[key] = threshold_unpaired(
            world, effect, sims, BUDGETS, rng)
        rows.setdefault("seed_rule_5_samples", {})[key] = seed_rule(world, effect, sims, rng)
    sensitivity = {}
    for noise in NOISES:
        noisy = replace(world, noise_sd=noise)
        entry = {}
        for effect in EFFECTS:
            diffs, _ = paired_stream(noisy, effect, sims, 40, rng)
            entry[f"{effect:+.1f}"] = ours(diffs, rule, (20,))["promoted"]["20"]
        sensitivity[f"{noise:.2f}"] = entry
    monitor = monitor_rates(world, MonitorRule(), sims, rng)
    return {
        "world": asdict(world),
        "rule": asdict(rule),
        "monitor_rule": asdict(MonitorRule()),
        "sims_per_scenario": sims,
        "seed": seed,
        "budgets_pairs": list(BUDGETS),
        "promotion_rate": rows,
        "details": extra,
        "sensitivity_noise_sd_power_at_20": sensitivity,
        "monitor": monitor,
    }


LABELS = {
    "ours": "ours (paired, Bayesian, looks 15/20)",
    "ours_every_pair_to_40": "ours without looks (every pair, max 40)",
    "seed_threshold_paired": "seeds' +0.1 threshold, N pairs",
    "seed_threshold_unpaired": "seeds' +0.1 threshold, N per arm unpaired",
    "seed_rule_5_samples": "seeds' rule as written (5 samples)",
}


def table(result: dict[str, Any]) -> str:
    lines = []
    head = f"{'rule':44s} {'budget':>6s} {'false promo':>11s} {'power +0.3':>10s} " \
           f"{'power +0.5':>10s} {'promo if -0.3':>13s}"
    lines += [head, "-" * len(head)]
    for name, label in LABELS.items():
        per = result["promotion_rate"][name]
        for budget in (["5 smp"] if name == "seed_rule_5_samples" else
                       [str(b) for b in BUDGETS]):
            key = "all" if budget == "5 smp" else budget
            lines.append(f"{label:44s} {budget:>6s} {_pct(per['+0.0'][key]):>11s} "
                         f"{_pct(per['+0.3'][key]):>10s} {_pct(per['+0.5'][key]):>10s} "
                         f"{_pct(per['-0.3'][key]):>13s}")
    lines.append("")
    lines.append("our rule, mean pairs to a decision: " + ", ".join(
        f"delta {k}: {v:.1f}" for k, v in result["details"]["ours_mean_pairs_to_decision"].items()))
    lines.append("observed rating sd: " + ", ".join(
        f"{k}: {v}" for k, v in result["details"]["observed_rating_sd"].items())
        + "; paired difference sd: " + ", ".join(
        f"{k}: {v}" for k, v in result["details"]["paired_difference_sd"].items()))
    lines.append("")
    lines.append("sensitivity (our rule, by 20 pairs) per-rating noise sd -> "
                 "false promo / power +0.3 / power +0.5")
    for noise, entry in result["sensitivity_noise_sd_power_at_20"].items():
        lines.append(f"  noise {noise}: {_pct(entry['+0.0'])} / {_pct(entry['+0.3'])} / "
                     f"{_pct(entry['+0.5'])}")
    lines.append("")
    lines.append("post-promotion monitor (rolled back within its window) by true change of the "
                 "promoted version: " + ", ".join(
                     f"{k}: {_pct(v)}" for k, v in result["monitor"]["rolled_back"].items()))
    return "\n".join(lines)


def figure(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    effects = ["+0.0", "+0.3", "+0.5"]
    styles = {"ours": "-o", "seed_threshold_paired": "--s", "seed_threshold_unpaired": ":^"}
    for name, style in styles.items():
        per = result["promotion_rate"][name]
        ax.plot(effects, [per[e]["20"] for e in effects], style, label=LABELS[name] + ", 20")
    seed5 = result["promotion_rate"]["seed_rule_5_samples"]
    ax.plot(effects, [seed5[e]["all"] for e in effects], "-.x", label=LABELS["seed_rule_5_samples"])
    ax.axhline(0.05, color="grey", lw=0.8)
    ax.axhline(0.80, color="grey", lw=0.8)
    ax.set_xlabel("true advantage of the challenger (stars)")
    ax.set_ylabel("promoted")
    ax.set_ylim(0, 1)
    ax.set_title("Promotion rate of a challenger prompt (goals: <= 5 % at +0, >= 80 % at +0.5)")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--quick", action="store_true", help="2000 sims, no files written")
    args = parser.parse_args(argv)
    sims = 2000 if args.quick else args.sims
    started = time.perf_counter()
    result = run(sims, args.seed)
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["command"] = "make bench-abtest  (.venv/bin/python -m bench.abtest)"
    result["python"] = platform.python_version()
    print(table(result))
    print(f"\n{sims} simulated tests per scenario, {result['seconds']} s")
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
        figure(result, FIGURE)
        print(f"wrote {RESULTS.relative_to(ROOT)} and {FIGURE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
