"""The provider contract: turn a render plus parameters and a prompt into an image.

A provider is any object with a ``name``, a human ``label`` and an async
``generate(request, progress)``. It must be safe to call concurrently, must not
keep state between calls, and reports failures as :class:`ProviderError`
(``retryable`` tells the job runner whether another attempt may help; a paid provider
sets it to False when another attempt could pay for a second generation while the
first may still exist, see docs/providers.md). It carries its catalogue ``key`` and
``params`` (see :mod:`.messages`) so the sentence can be shown in Spanish or English.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

ProgressCallback = Callable[[str, float], Awaitable[None]]
"""``await progress(stage, fraction)`` with fraction in [0, 1]."""


@dataclass(frozen=True)
class GenerationRequest:
    image: bytes  # sRGB JPEG of the original render
    mode: str  # structure | surfaces
    parameters: dict[str, Any]  # provider-native names, with "api"
    prompt: str
    negative_prompt: str
    seed: int = 0


@dataclass(frozen=True)
class GenerationResult:
    image: bytes
    content_type: str
    model: str
    estimated_cost_usd: float | None = None
    details: dict[str, Any] = field(default_factory=dict)


class Provider(Protocol):
    name: str
    label_es: str
    label_en: str

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback
    ) -> GenerationResult: ...


async def no_progress(stage: str, fraction: float) -> None:
    """A progress callback that ignores reports (for scripts and tests)."""
