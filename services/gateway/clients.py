"""Typed clients for the optimizer, evolution and reward services.

Each method returns plain dicts (the services' JSON) and raises
``ServiceUnavailable`` when the service cannot be reached, so the caller picks its
degraded mode (random suggestions, last known prompt, phase-1 behaviour).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from services.common.errors import ServiceUnavailable
from services.common.http import InternalClient
from services.gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

STATUS_TIMEOUT_SECONDS = 3.0
"""How long a status read waits for a sibling before reporting it as down."""


async def optional_status(call: Awaitable[dict[str, Any]]) -> dict[str, Any] | None:
    """A sibling's status, or ``None`` when it is down or slow (status never fails)."""
    try:
        return dict(await asyncio.wait_for(call, STATUS_TIMEOUT_SECONDS))
    except (ServiceUnavailable, TimeoutError, OSError) as exc:
        log.info("status: a service is unavailable: %s", exc)
        return None
    except Exception:
        log.exception("status: unexpected error from a service")
        return None


class ServiceClients:
    def __init__(self, settings: GatewaySettings) -> None:
        timeout = settings.internal_timeout_seconds
        self.optimizer = InternalClient("optimizer", settings.optimizer_url,
                                        settings.token_for("optimizer"), timeout=timeout)
        self.evolution = InternalClient("evolution", settings.evolution_url,
                                        settings.token_for("evolution"), timeout=timeout)
        self.reward = InternalClient("reward", settings.reward_url,
                                     settings.token_for("reward"), timeout=timeout)

    async def aclose(self) -> None:
        for client in (self.optimizer, self.evolution, self.reward):
            await client.aclose()

    # optimizer -------------------------------------------------------------
    async def suggest_parameters(
        self, mode: str, count: int, providers: list[str], prompt_version: str | None
    ) -> list[dict[str, Any]]:
        body = {"mode": mode, "num_suggestions": count, "providers": providers,
                "prompt_version": prompt_version}
        answer = await self.optimizer.post("/ml/suggest_parameters", json=body)
        return list(answer["suggestions"])

    async def optimizer_status(self, providers: list[str] | None = None) -> dict[str, Any]:
        params = [("providers", p) for p in providers or []]
        return dict(await self.optimizer.get("/ml/status", params=params))

    # evolution -------------------------------------------------------------
    async def assign_prompts(self, experiment_id: str, mode: str, options: list[str]
                             ) -> list[dict[str, Any]]:
        body = {"experiment_id": experiment_id, "mode": mode, "options": options}
        answer = await self.evolution.post("/prompts/assign", json=body)
        return list(answer["assignments"])

    async def evolution_status(self) -> dict[str, Any]:
        return dict(await self.evolution.get("/prompts/status"))

    # reward ----------------------------------------------------------------
    async def reward_status(self) -> dict[str, Any]:
        return dict(await self.reward.get("/ml/status"))

    async def predict_ratings(self, images: list[bytes], original: bytes | None = None
                              ) -> dict[str, Any]:
        """Predicted rating (mean, std) per image from the active validated reward model."""
        files = [("images", (f"candidate-{i}.jpg", data, "image/jpeg"))
                 for i, data in enumerate(images)]
        if original is not None:
            files.append(("original", ("original.jpg", original, "image/jpeg")))
        return dict(await self.reward.post("/ml/predict_rating", files=files))
