"""The plug-in point for prompt evolution: what an evolver receives and returns.

An :class:`Evolver` proposes a new prompt and negative prompt for one mode of the
champion version, from the version history with scores, the issue analysis of
trainers' comments and the raw comments of low-rated variants. Two
implementations exist:

* :class:`services.evolution.llm.LLMEvolver`: an OpenAI-compatible chat endpoint
  (OpenAI, a local Ollama or vLLM) through the ``openai`` SDK;
* :class:`services.evolution.offline.OfflineEvolver`: deterministic operators over a
  curated phrase bank; needs no network and no key.

Contract: ``propose`` is a coroutine, safe to call concurrently, that either
returns a :class:`Proposal` that passes :func:`services.evolution.guardrails.violations`
or raises :class:`services.evolution.errors.EvolutionFailed`. It never writes to
the database. :func:`services.evolution.engine.build_evolver` picks the implementation
from settings (in its own module, so that this protocol module imports neither
implementation and neither implementation's import of it is circular).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from services.evolution.issues import IssueReport


@dataclass(frozen=True)
class ModeRequest:
    """Everything an evolver may use to improve one mode's prompt pair."""

    mode: str
    prompt: str
    negative_prompt: str
    parent_version: str
    avg_rating: float | None
    sample_count: int
    history: list[dict[str, Any]]
    issues: IssueReport
    hard_rules: tuple[str, ...]
    seed: int = 0


@dataclass(frozen=True)
class Proposal:
    prompt: str
    negative_prompt: str
    changes: list[str]
    reasoning: str
    engine: str  # "llm" | "offline"
    attempts: int = 1
    notes: list[str] = field(default_factory=list)


class Evolver(Protocol):
    name: str

    async def propose(self, request: ModeRequest) -> Proposal:
        """A rule-abiding proposal, or :class:`EvolutionFailed` after bounded retries."""
        ...
