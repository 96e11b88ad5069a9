"""Known answers for the phase-1 convergence score and completion rule."""

from __future__ import annotations

import pytest

from services.optimizer.convergence import convergence_score, phase_1_complete


@pytest.mark.parametrize(
    ("n", "best", "expected"),
    [
        (0, None, 0.0),
        (25, 3.0, 0.6),  # 0.6 * 0.5 + 0.4 * 0.75
        (23, 3.8, 0.656),  # 0.6 * 0.46 + 0.4 * 0.95
        (10, 2.0, 0.32),  # 0.6 * 0.2 + 0.4 * 0.5
        (50, 4.0, 1.0),
        (120, 5.0, 1.0),  # both factors cap at 1
        (5, 5.0, 0.46),  # rating factor caps at 1: 0.06 + 0.4
    ],
)
def test_convergence_score_known_answers(n: int, best: float | None, expected: float) -> None:
    assert convergence_score(n, best) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(
    ("n", "best", "complete"),
    [
        (0, None, False),
        (49, 3.9, False),
        (50, 1.0, True),
        (3, 4.0, True),
        (3, 5.0, True),
    ],
)
def test_phase_1_complete(n: int, best: float | None, complete: bool) -> None:
    assert phase_1_complete(n, best) is complete
