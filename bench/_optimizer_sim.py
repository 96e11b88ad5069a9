"""Simulated trainers and hidden quality surfaces for ``bench/optimizer.py``.

A *surface* is the true expected rating ``q(p, u)`` of provider ``p`` at the unit-cube
point ``u`` (strength, guidance, structure scaled to ``[0, 1]``). A rating of one
variant in round ``t`` by trainer ``k`` is::

    clip(round(q(p, u) + d_t + b_k + e), 1, 5)

    d_t ~ N(0, RENDER_SD²)   render difficulty, shared by both variants of the round
    b_k ~ N(0, 0.4²)         trainer k's bias, fixed for the repetition
    e ~ N(0, s_k²)           trainer k's inconsistency (s_k = 0.3, 0.4, 0.5)

Each round is one experiment: one render, one trainer (drawn at random), two
variants. Everything is drawn from a seeded ``numpy`` generator, so a repetition is
reproducible and every method sees the same surfaces, renders and trainers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PROVIDERS = ("leonardo", "stablediffusion")
SURFACES = ("narrow", "broad", "provider", "boundary")
RENDER_SD = 0.45
TRAINER_BIAS_SD = 0.4
TRAINER_NOISE_SD = (0.3, 0.4, 0.5)


@dataclass(frozen=True)
class Bump:
    centre: np.ndarray
    width: float
    height: float


@dataclass(frozen=True)
class Surface:
    """``q(p, u) = base[p] + Σ bumps[p]`` (Gaussian bumps), clipped to [1, 5]."""

    kind: str
    base: dict[str, float]
    bumps: dict[str, tuple[Bump, ...]]
    best: float

    def quality(self, provider: str, u: np.ndarray) -> float:
        u = np.clip(np.asarray(u, dtype=float), 0.0, 1.0)
        value = self.base[provider]
        for bump in self.bumps[provider]:
            d2 = float(((u - bump.centre) ** 2).sum())
            value += bump.height * np.exp(-d2 / (2 * bump.width**2))
        return float(min(max(value, 1.0), 5.0))


def _best(base: dict[str, float], bumps: dict[str, tuple[Bump, ...]], kind: str) -> float:
    """The best achievable quality: at a bump's centre projected into the box, refined by
    a dense local search (exact for one bump, a tight bound for two concentric ones)."""
    surface = Surface(kind, base, bumps, 0.0)
    best = -np.inf
    rng = np.random.default_rng(0)
    for p in PROVIDERS:
        for bump in bumps[p]:
            start = np.clip(bump.centre, 0.0, 1.0)
            local = np.clip(start + rng.normal(0, 0.01, size=(200, 3)), 0, 1)
            best = max(best, max(surface.quality(p, u) for u in [start, *local]))
    return float(best)


def make_surface(kind: str, rng: np.random.Generator) -> Surface:
    """One random instance of a surface shape (optimum location, better provider)."""
    better, worse = rng.permutation(PROVIDERS)
    if kind == "narrow":
        c = rng.uniform(0.15, 0.85, 3)
        shape = (Bump(c, 0.35, 1.2), Bump(c, 0.1, 2.2))
        base = {better: 1.4, worse: 1.2}
        bumps = {better: shape, worse: shape}
    elif kind == "broad":
        c = rng.uniform(0.15, 0.85, 3)
        base = {better: 1.6, worse: 1.4}
        bumps = {better: (Bump(c, 0.35, 3.2),), worse: (Bump(c, 0.35, 3.2),)}
    elif kind == "provider":
        base = {better: 1.5, worse: 1.5}
        bumps = {
            better: (Bump(rng.uniform(0.15, 0.85, 3), 0.22, 3.3),),
            worse: (Bump(rng.uniform(0.15, 0.85, 3), 0.22, 2.5),),
        }
    elif kind == "boundary":
        c = rng.uniform(0.2, 0.8, 3)
        dims = rng.choice(3, size=int(rng.integers(1, 3)), replace=False)
        for d in dims:
            c[d] = -0.12 if rng.random() < 0.5 else 1.12
        base = {better: 1.5, worse: 1.3}
        bumps = {better: (Bump(c, 0.3, 3.5),), worse: (Bump(c, 0.3, 3.5),)}
    else:
        raise ValueError(f"unknown surface {kind!r}")
    return Surface(kind, base, bumps, _best(base, bumps, kind))


@dataclass(frozen=True)
class Trainer:
    name: str
    bias: float
    noise_sd: float


@dataclass(frozen=True)
class Round:
    """What the world draws for one experiment, before any method acts."""

    trainer: Trainer
    render_offset: float
    noise: tuple[float, float]


@dataclass(frozen=True)
class World:
    """One repetition: a surface, trainers, and the draws of every round."""

    surface: Surface
    trainers: tuple[Trainer, ...]
    rounds: tuple[Round, ...]

    def rate(self, t: int, variant: int, provider: str, u: np.ndarray) -> int:
        r = self.rounds[t]
        noisy = self.surface.quality(provider, u) + r.render_offset + r.trainer.bias
        return int(min(max(round(noisy + r.noise[variant]), 1), 5))

    def regret(self, provider: str, u: np.ndarray) -> float:
        return max(self.surface.best - self.surface.quality(provider, u), 0.0)


def make_world(kind: str, seed: int, n_rounds: int) -> World:
    rng = np.random.default_rng([seed, SURFACES.index(kind)])
    surface = make_surface(kind, rng)
    trainers = tuple(
        Trainer(f"trainer{k}@example.com", float(rng.normal(0, TRAINER_BIAS_SD)), sd)
        for k, sd in enumerate(TRAINER_NOISE_SD)
    )
    rounds = []
    for _ in range(n_rounds):
        trainer = trainers[int(rng.integers(len(trainers)))]
        offset = float(rng.normal(0, RENDER_SD))
        noise = rng.normal(0, trainer.noise_sd, 2)
        rounds.append(Round(trainer, offset, (float(noise[0]), float(noise[1]))))
    return World(surface, trainers, tuple(rounds))
