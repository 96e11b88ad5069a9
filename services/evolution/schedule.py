"""When the next prompt evolution is due.

Evolution may run every ``evolve_every`` rated samples (counted over all
versions): after 0-9 samples the next one is at 10, after 10-19 at 20, and so on.
"""

from __future__ import annotations


def next_evolution_at(total_samples: int, evolve_every: int) -> int:
    """The smallest multiple of ``evolve_every`` strictly above ``total_samples``."""
    if evolve_every <= 0:
        raise ValueError("evolve_every must be positive")
    if total_samples < 0:
        raise ValueError("total_samples cannot be negative")
    return (total_samples // evolve_every + 1) * evolve_every
