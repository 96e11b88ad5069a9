"""Which evolver runs: the LLM when one is configured (falling back to the offline
operators if it fails), else the offline operators.

The factory lives here, not in :mod:`services.evolution.evolver`, because it builds
the implementations (:mod:`~services.evolution.llm`, :mod:`~services.evolution.offline`)
that import the protocol module: keeping it there closed an import circle.
"""

from __future__ import annotations

from services.evolution.evolver import Evolver
from services.evolution.llm import LLMEvolver
from services.evolution.offline import OfflineEvolver
from services.evolution.settings import EvolutionSettings


def llm_configured(settings: EvolutionSettings) -> bool:
    """Whether the LLM path is used: ``EVOLUTION_ENGINE=llm``, or ``auto`` with a key."""
    if settings.engine == "offline":
        return False
    if settings.engine == "llm":
        return True
    return bool(settings.llm_api_key)


def build_evolver(settings: EvolutionSettings) -> Evolver:
    """The LLM evolver when configured (falling back to offline if it fails), else offline."""
    offline = OfflineEvolver(seed=settings.offline_seed)
    if not llm_configured(settings):
        return offline
    return LLMEvolver.from_settings(
        settings, fallback=offline if settings.llm_fallback_offline else None
    )
