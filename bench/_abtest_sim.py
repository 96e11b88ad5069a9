"""Synthetic rating streams and the rules run on them, for ``bench/abtest.py``.

World (per simulated test): six trainers with a leniency ``b_t ~ N(0, trainer_sd)``;
each experiment is a render with a difficulty ``r ~ N(0, render_sd)``; a rating is::

    clip(round(base + delta * [challenger] + r + b_t + e), 1, 5),   e ~ N(0, noise_sd)

In the paired design both variants of an experiment share ``r`` and the trainer;
unpaired samples each get their own render and a random trainer. The defaults
give ratings whose spread is about one star (printed by the benchmark).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from services.evolution.ab_test import (
    PROMOTE,
    ROLLBACK,
    DecisionRule,
    MonitorRule,
    decide_batch,
    monitor_batch,
)

TRAINERS = 6


@dataclass(frozen=True)
class World:
    base: float = 3.2
    render_sd: float = 0.7
    trainer_sd: float = 0.35
    noise_sd: float = 0.5


def _rate(latent: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(latent), 1, 5)


def _trainer_bias(world: World, sims: int, n: int, rng: np.random.Generator) -> np.ndarray:
    bias = rng.normal(0.0, world.trainer_sd, (sims, TRAINERS))
    who = rng.integers(0, TRAINERS, (sims, n))
    return np.take_along_axis(bias, who, axis=1)


def paired_stream(world: World, delta: float, sims: int, n: int, rng: np.random.Generator
                  ) -> tuple[np.ndarray, float]:
    """``sims x n`` paired differences challenger - champion, and the ratings' sd."""
    common = world.base + rng.normal(0.0, world.render_sd, (sims, n)) \
        + _trainer_bias(world, sims, n, rng)
    champion = _rate(common + rng.normal(0.0, world.noise_sd, (sims, n)))
    challenger = _rate(common + delta + rng.normal(0.0, world.noise_sd, (sims, n)))
    return challenger - champion, float(np.concatenate([champion, challenger]).std())


def unpaired_ratings(world: World, delta: float, sims: int, n: int, rng: np.random.Generator
                     ) -> np.ndarray:
    """``sims x n`` ratings, each from its own render and a random trainer."""
    latent = world.base + delta + rng.normal(0.0, world.render_sd, (sims, n)) \
        + _trainer_bias(world, sims, n, rng) + rng.normal(0.0, world.noise_sd, (sims, n))
    return _rate(latent)


def ours(diffs: np.ndarray, rule: DecisionRule, budgets: tuple[int, ...]) -> dict[str, Any]:
    """Run the service's decision pair by pair; promotion/rollback rates by each budget."""
    sims, cap = diffs.shape
    state = np.zeros(sims, dtype=np.int64)
    decided_at = np.full(sims, min(cap, rule.max_pairs), dtype=np.float64)
    totals, squares = np.cumsum(diffs, axis=1), np.cumsum(diffs * diffs, axis=1)
    promoted: dict[str, float] = {}
    rolled: dict[str, float] = {}
    for n in range(1, cap + 1):
        running = state == 0
        if running.any():
            codes, _ = decide_batch(np.full(sims, n), totals[:, n - 1], squares[:, n - 1],
                                    rule, rule.is_look(n))
            newly = running & (codes != 0)
            state[newly] = codes[newly]
            decided_at[newly] = n
        if n in budgets:
            promoted[str(n)] = round(float((state == PROMOTE).mean()), 4)
            rolled[str(n)] = round(float((state == ROLLBACK).mean()), 4)
    return {"promoted": promoted, "rolled_back": rolled,
            "mean_pairs": round(float(decided_at.mean()), 2)}


def threshold_paired(diffs: np.ndarray, budgets: tuple[int, ...]) -> dict[str, float]:
    """Seeds' threshold on paired data: promote if the mean difference after N pairs > 0.1."""
    return {str(n): round(float((diffs[:, :n].mean(axis=1) > 0.1).mean()), 4) for n in budgets}


def threshold_unpaired(world: World, delta: float, sims: int, budgets: tuple[int, ...],
                       rng: np.random.Generator) -> dict[str, float]:
    """Seeds' threshold with N ratings per arm, every rating from a different render."""
    cap = max(budgets)
    champion = unpaired_ratings(world, 0.0, sims, cap, rng)
    challenger = unpaired_ratings(world, delta, sims, cap, rng)
    return {str(n): round(float(
        (challenger[:, :n].mean(axis=1) > champion[:, :n].mean(axis=1) + 0.1).mean()), 4)
        for n in budgets}


def seed_rule(world: World, delta: float, sims: int, rng: np.random.Generator
              ) -> dict[str, float]:
    """Seed 003: 5 samples (3 champion, 2 challenger, alternating), promote if avg > +0.1."""
    champion = unpaired_ratings(world, 0.0, sims, 3, rng)
    challenger = unpaired_ratings(world, delta, sims, 2, rng)
    promoted = challenger.mean(axis=1) > champion.mean(axis=1) + 0.1
    return {"all": round(float(promoted.mean()), 4)}


def monitor_rates(world: World, rule: MonitorRule, sims: int, rng: np.random.Generator,
                  reference_pairs: int = 15) -> dict[str, Any]:
    """How often the service's monitor rolls back a promoted version, by its true change.

    Reference: the old champion's ratings in ``reference_pairs`` paired experiments;
    then up to ``max_samples`` unpaired ratings of the promoted version, checked one by one.
    """
    out: dict[str, float] = {}
    for change in (-1.0, -0.5, -0.3, 0.0, 0.3):
        reference = unpaired_ratings(world, 0.0, sims, reference_pairs, rng)
        new = unpaired_ratings(world, change, sims, rule.max_samples, rng)
        s0, q0 = reference.sum(axis=1), (reference**2).sum(axis=1)
        s1, q1 = np.cumsum(new, axis=1), np.cumsum(new**2, axis=1)
        state = np.zeros(sims, dtype=np.int64)
        for n in range(1, rule.max_samples + 1):
            running = state == 0
            codes, _ = monitor_batch(np.full(sims, n), s1[:, n - 1], q1[:, n - 1],
                                     np.full(sims, reference_pairs), s0, q0, rule)
            state[running & (codes != 0)] = codes[running & (codes != 0)]
        out[f"{change:+.1f}"] = round(float((state == ROLLBACK).mean()), 4)
    return {"reference_pairs": reference_pairs, "rolled_back": out}
