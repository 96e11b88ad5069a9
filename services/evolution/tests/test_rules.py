"""Pure rules with known answers: arm assignment and the evolution schedule."""

from __future__ import annotations

from collections import Counter

import pytest

from services.evolution.assignment import ArmChoice, challenger_index, plan_arms
from services.evolution.schedule import next_evolution_at


def test_without_challenger_every_option_gets_the_champion() -> None:
    assert plan_arms("exp", ["A", "B"], "v1.0.0") == [
        ArmChoice("A", "v1.0.0", "champion"),
        ArmChoice("B", "v1.0.0", "champion"),
    ]


def test_with_challenger_exactly_one_option_gets_it_deterministically() -> None:
    plan = plan_arms("exp-42", ["A", "B"], "v1.0.0", "v1.0.1")
    assert sorted(c.arm for c in plan) == ["challenger", "champion"]
    assert plan == plan_arms("exp-42", ["A", "B"], "v1.0.0", "v1.0.1")
    challenger = next(c for c in plan if c.arm == "challenger")
    assert challenger.version == "v1.0.1"
    assert challenger.option == ["A", "B"][challenger_index("exp-42", 2)]


def test_challenger_lands_on_each_option_about_equally() -> None:
    counts = Counter(challenger_index(f"exp-{i}", 2) for i in range(2000))
    assert 900 < counts[0] < 1100


def test_single_option_always_gets_the_champion() -> None:
    assert plan_arms("exp", ["A"], "v1.0.0", "v1.0.1") == [ArmChoice("A", "v1.0.0", "champion")]


@pytest.mark.parametrize(
    ("total", "every", "expected"),
    [(0, 10, 10), (1, 10, 10), (9, 10, 10), (10, 10, 20), (19, 10, 20), (25, 5, 30), (0, 1, 1)],
)
def test_next_evolution_is_the_next_multiple_above(total: int, every: int, expected: int) -> None:
    assert next_evolution_at(total, every) == expected


def test_next_evolution_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        next_evolution_at(3, 0)
    with pytest.raises(ValueError):
        next_evolution_at(-1, 10)
