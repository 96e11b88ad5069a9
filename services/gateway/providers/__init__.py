"""Generation providers and the factory that picks the enabled ones from settings."""

from __future__ import annotations

from services.gateway.providers._http import ProviderRateLimited, RetryPolicy
from services.gateway.providers.base import (
    GenerationRequest,
    GenerationResult,
    ProgressCallback,
    Provider,
    no_progress,
)
from services.gateway.providers.leonardo import LeonardoProvider
from services.gateway.providers.local import LocalProvider
from services.gateway.providers.replicate import ReplicateProvider
from services.gateway.settings import GatewaySettings

__all__ = [
    "GenerationRequest",
    "GenerationResult",
    "LeonardoProvider",
    "LocalProvider",
    "ProgressCallback",
    "Provider",
    "ProviderRateLimited",
    "ReplicateProvider",
    "RetryPolicy",
    "build_providers",
    "no_progress",
]


def build_providers(settings: GatewaySettings) -> dict[str, Provider]:
    """The enabled providers by name: ``local`` always; ``leonardo`` when LEONARDO_API_KEY is
    set; ``stablediffusion`` when REPLICATE_API_TOKEN is set (the optimizer is told these)."""
    policy = RetryPolicy(max_retries=settings.provider_max_retries,
                         backoff_seconds=settings.provider_backoff_seconds,
                         max_backoff_seconds=settings.provider_max_backoff_seconds,
                         max_retry_after_seconds=settings.provider_max_retry_after_seconds)
    providers: dict[str, Provider] = {
        "local": LocalProvider(max_side=settings.max_generation_side)
    }
    if settings.leonardo_api_key:
        providers["leonardo"] = LeonardoProvider(
            settings.leonardo_api_key, base_url=settings.leonardo_base_url,
            model_id=settings.leonardo_model_id,
            controlnet_preprocessor_id=settings.leonardo_controlnet_preprocessor_id,
            alchemy=settings.leonardo_alchemy,
            preset_style=settings.leonardo_preset_style or None,
            cost_per_image_usd=settings.leonardo_cost_per_image_usd,
            timeout_seconds=settings.provider_timeout_seconds,
            poll_interval_seconds=settings.provider_poll_interval_seconds,
            request_timeout_seconds=settings.provider_request_timeout_seconds,
            policy=policy, max_side=settings.max_generation_side)
    if settings.replicate_api_token:
        providers["stablediffusion"] = ReplicateProvider(
            settings.replicate_api_token, base_url=settings.replicate_base_url,
            model=settings.replicate_model, version=settings.replicate_version,
            controlnet=settings.replicate_controlnet,
            cost_per_image_usd=settings.replicate_cost_per_image_usd,
            timeout_seconds=settings.provider_timeout_seconds,
            poll_interval_seconds=settings.provider_poll_interval_seconds,
            wait_seconds=settings.replicate_wait_seconds,
            request_timeout_seconds=settings.provider_request_timeout_seconds, policy=policy)
    return providers
