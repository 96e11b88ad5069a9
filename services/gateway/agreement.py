"""How far the trainers agree with themselves and with each other (seed 004, 3.5.A).

Notation
--------
A *unit* is one generated image (a variant's ``image_id``). Normally each image is
rated once; a *repeat* (see :mod:`services.gateway.repeats`) shows an earlier
experiment's images again, blind, to the same or another trainer, so some units
collect two or more ratings ``r ∈ {1..5}``.

* **Consistency of trainer t**: over every pair of ratings that ``t`` gave to the
  same unit, the share that are equal (``exact``), the share at most one star apart
  (``within_one``) and the mean absolute difference in stars.
* **Pairwise agreement of trainers (s, t)**: the same three figures over every
  pair (rating by ``s``, rating by ``t``) of a unit both rated.
* **Krippendorff's alpha (ordinal)** over every unit with two or more ratings,
  whoever gave them: ``alpha = 1 - D_o / D_e`` with the ordinal distance over the
  value domain 1..5. 1 is perfect agreement, 0 is what chance gives. A trainer who
  rates the same image twice counts as two values of that unit, as in
  Krippendorff's value-count form, so self-repeats and shared items feed one alpha.

Decisions
---------
* The alpha itself comes from the maintained ``krippendorff`` package (its
  ``value_counts`` form, which lets a unit hold any number of values), so that the
  figure matches what a statistician would compute elsewhere; this module only
  builds its input and the simpler per-trainer figures.
* Alpha is *undefined* (``None``) with fewer than two pairable units or when every
  rating has the same value (no expected disagreement to compare with).
* The guidance bands are Krippendorff's: ``alpha >= 0.8`` reliable, ``0.667 <= alpha
  < 0.8`` acceptable for tentative conclusions, below that the rating guidelines
  need revising.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np

VALUES = (1, 2, 3, 4, 5)
RELIABLE = 0.8
ACCEPTABLE = 0.667

Verdict = Literal["reliable", "acceptable", "review"]


@dataclass(frozen=True)
class RatingRecord:
    """One rating of one unit (generated image) by one trainer."""

    unit: str
    trainer: str
    rating: int
    at: datetime | None = None
    repeat: bool = False


@dataclass(frozen=True)
class PairFigures:
    """Agreement over ``pairs`` pairs of ratings of the same unit."""

    pairs: int
    exact: float
    within_one: float
    mean_abs_diff: float


@dataclass(frozen=True)
class TrainerPair:
    first: str
    second: str
    units: int
    figures: PairFigures


@dataclass(frozen=True)
class TrendPoint:
    at: datetime | None
    units: int
    alpha: float | None


def _figures(differences: Sequence[int]) -> PairFigures | None:
    if not differences:
        return None
    n = len(differences)
    return PairFigures(pairs=n, exact=sum(d == 0 for d in differences) / n,
                       within_one=sum(d <= 1 for d in differences) / n,
                       mean_abs_diff=sum(differences) / n)


def _by_unit(records: Iterable[RatingRecord]) -> dict[str, list[RatingRecord]]:
    units: dict[str, list[RatingRecord]] = defaultdict(list)
    for record in records:
        units[record.unit].append(record)
    return units


def trainer_consistency(records: Iterable[RatingRecord]) -> dict[str, PairFigures]:
    """Each trainer's agreement with themself on units they rated more than once."""
    differences: dict[str, list[int]] = defaultdict(list)
    for ratings in _by_unit(records).values():
        per_trainer: dict[str, list[int]] = defaultdict(list)
        for r in ratings:
            per_trainer[r.trainer].append(r.rating)
        for trainer, values in per_trainer.items():
            for a, b in itertools.combinations(values, 2):
                differences[trainer].append(abs(a - b))
    return {t: f for t, d in sorted(differences.items()) if (f := _figures(d)) is not None}


def pairwise_agreement(records: Iterable[RatingRecord]) -> list[TrainerPair]:
    """Agreement of each pair of trainers over the units both rated."""
    differences: dict[tuple[str, str], list[int]] = defaultdict(list)
    shared: dict[tuple[str, str], int] = defaultdict(int)
    for ratings in _by_unit(records).values():
        per_trainer: dict[str, list[int]] = defaultdict(list)
        for r in ratings:
            per_trainer[r.trainer].append(r.rating)
        for first, second in itertools.combinations(sorted(per_trainer), 2):
            shared[first, second] += 1
            for a in per_trainer[first]:
                for b in per_trainer[second]:
                    differences[first, second].append(abs(a - b))
    pairs = []
    for (first, second), d in sorted(differences.items()):
        figures = _figures(d)
        if figures is not None:
            pairs.append(TrainerPair(first, second, shared[first, second], figures))
    return pairs


def value_counts(records: Iterable[RatingRecord]) -> np.ndarray:
    """Units with two or more ratings × the values 1..5: how many ratings of each."""
    rows = []
    for ratings in _by_unit(records).values():
        if len(ratings) < 2:
            continue
        row = [0] * len(VALUES)
        for r in ratings:
            row[VALUES.index(int(r.rating))] += 1
        rows.append(row)
    return np.array(rows, dtype=float).reshape(len(rows), len(VALUES))


def krippendorff_alpha(records: Iterable[RatingRecord]) -> float | None:
    """Ordinal Krippendorff's alpha over every unit rated at least twice (None when
    undefined: fewer than two such units, or a single value in all of them)."""
    counts = value_counts(records)
    if counts.shape[0] < 2 or np.count_nonzero(counts.sum(axis=0)) < 2:
        return None
    import krippendorff  # small, but only the admin page needs it

    value = float(krippendorff.alpha(value_counts=counts, value_domain=list(VALUES),
                                     level_of_measurement="ordinal"))
    return None if np.isnan(value) else value


def pairable_units(records: Iterable[RatingRecord]) -> int:
    return sum(len(r) >= 2 for r in _by_unit(records).values())


def verdict(alpha: float | None) -> Verdict | None:
    """Krippendorff's guidance: reliable, acceptable for tentative use, or review."""
    if alpha is None:
        return None
    if alpha >= RELIABLE:
        return "reliable"
    if alpha >= ACCEPTABLE:
        return "acceptable"
    return "review"


def alpha_trend(records: Sequence[RatingRecord], points: int = 12) -> list[TrendPoint]:
    """Alpha over the ratings given up to each of (at most) ``points`` moments, taken
    at the ratings that made a unit pairable, evenly spaced, so the studio sees
    whether agreement improves as the guidelines settle."""
    ordered = sorted(records, key=lambda r: (r.at is None, r.at or datetime.min))
    seen: dict[str, int] = defaultdict(int)
    moments: list[int] = []
    for index, record in enumerate(ordered):
        seen[record.unit] += 1
        if seen[record.unit] >= 2:
            moments.append(index)
    if not moments:
        return []
    step = max(1, len(moments) // points)
    chosen = moments[step - 1::step][-points:]
    if chosen[-1] != moments[-1]:
        chosen.append(moments[-1])
    trend = []
    for index in chosen:
        prefix = ordered[:index + 1]
        trend.append(TrendPoint(at=ordered[index].at, units=pairable_units(prefix),
                                alpha=krippendorff_alpha(prefix)))
    return trend
