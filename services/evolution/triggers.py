"""Whether a new prompt evolution is due (seed 002, "Evolution Triggers").

Pure rules on counts, evaluated after ratings arrive. With ``total`` the rated
samples over all versions, ``best`` the best mean rating of any version with
enough samples, ``last`` the total when the previous evolution ran (None: never)
and ``improved`` the total when the current champion became active:

* **blocked** while an A/B test is undecided, or while a freshly promoted
  champion is being monitored: no automatic *or* manual evolution then;
* **low_performance**: ``total >= low_after`` (20) and ``best < low_rating``
  (4.0), at most every ``low_gap`` (5) samples;
* **periodic**: a new multiple of ``evolve_every`` (10) reached since ``last``,
  while ``best`` is below ``converged_rating`` (4.5) or unknown;
* **plateau**: ``plateau_samples`` (15) samples since the last improvement and
  since the last evolution (this one also applies once ``best`` >= 4.5: a good
  prompt that stopped improving still gets a challenger).

The first rule that holds names the trigger (low performance first: it is the most
urgent); none means no evolution.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TriggerRules:
    evolve_every: int = 10
    converged_rating: float = 4.5
    plateau_samples: int = 15
    low_rating: float = 4.0
    low_after: int = 20
    low_gap: int = 5


@dataclass(frozen=True)
class TriggerState:
    total: int
    best: float | None
    last: int | None
    improved: int
    blocked: bool = False


def due_trigger(state: TriggerState, rules: TriggerRules) -> str | None:
    """The automatic trigger that holds now (``low_performance``, ``periodic``, ``plateau``)."""
    if state.blocked or state.total <= 0:
        return None
    since_last = state.total - (state.last if state.last is not None else 0)
    if state.last is not None and since_last <= 0:
        return None
    if (state.total >= rules.low_after and state.best is not None
            and state.best < rules.low_rating and since_last >= rules.low_gap):
        return "low_performance"
    below_target = state.best is None or state.best < rules.converged_rating
    last_block = (state.last or 0) // rules.evolve_every
    if below_target and state.total // rules.evolve_every > last_block:
        return "periodic"
    if (state.total - state.improved >= rules.plateau_samples
            and since_last >= rules.plateau_samples):
        return "plateau"
    return None
