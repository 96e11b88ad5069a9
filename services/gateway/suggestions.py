"""Parameter suggestions for a new experiment, with the optimizer-down fallback.

When the optimizer cannot be reached the trainer is not blocked: each option gets
uniformly random in-bounds parameters marked ``fallback_random``; the ratings
still reach the optimizer later through the outbox.
"""

from __future__ import annotations

import logging
import random
from typing import Any

from services.common.errors import ServiceUnavailable
from services.common.parameter_space import random_values, to_native
from services.gateway.clients import ServiceClients

log = logging.getLogger(__name__)


async def suggest(clients: ServiceClients, mode: str, count: int, providers: list[str],
                  prompt_version: str | None, rng: random.Random | None = None
                  ) -> list[tuple[dict[str, Any], str]]:
    """``count`` pairs of (provider-native parameters with ``api``, source)."""
    try:
        suggestions = await clients.suggest_parameters(mode, count, providers, prompt_version)
    except ServiceUnavailable as exc:
        log.warning("optimizer unavailable, using random parameters: %s", exc)
        rng = rng or random.Random()
        return [(to_native(rng.choice(providers), random_values(rng)), "fallback_random")
                for _ in range(count)]
    out = []
    for suggestion in suggestions[:count]:
        params = dict(suggestion)
        source = str(params.pop("source", "bayesian"))
        out.append((params, source))
    return out
