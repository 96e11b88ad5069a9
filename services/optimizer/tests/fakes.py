"""Test doubles for the model keeper: a fit that waits for the test's signal, and a
clock the test sets."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from services.optimizer.config import GPConfig
from services.optimizer.fitting import FittedModel, fit_model
from services.optimizer.space import Observation

DEADLINE_S = 60.0
"""How long a gated fit waits for its release before failing the test (a deadline,
never a budget: a released fit returns at once)."""


class GatedFit:
    """The real fit, held until :attr:`release` is set; records every call.

    ``started`` is set when a fit begins, so a test knows a fit is in progress.
    Set ``fail`` to make the next fits raise instead of fitting.
    """

    def __init__(self, released: bool = False) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.calls: list[int] = []
        self.fail = False
        if released:
            self.release.set()

    def __call__(self, observations: Sequence[Observation], config: GPConfig) -> FittedModel:
        self.calls.append(len(observations))
        self.started.set()
        if not self.release.wait(DEADLINE_S):
            raise TimeoutError("the test never released the fit")
        if self.fail:
            raise ArithmeticError("injected fit failure")
        return fit_model(observations, config)


class FakeClock:
    """Monotonic seconds that only move when the test says so."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
