"""The one backoff rule every retry loop in Afinador uses.

``delay = min(cap, base · 2^attempt) · jitter`` with ``jitter`` uniform in [0.5, 1.0]:
exponential growth, never above ``cap`` (jitter only ever shortens a delay, so a
configured maximum is a real maximum), and spread so that many clients that
failed together do not retry together.
"""

from __future__ import annotations

import random


def backoff_delay(attempt: int, *, base: float, cap: float,
                  rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number ``attempt + 1`` (``attempt`` counts from 0)."""
    draw = (rng or random).random()
    return min(cap, base * 2.0 ** attempt) * (0.5 + 0.5 * draw)
