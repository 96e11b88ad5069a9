"""Shared pieces of the Leonardo/Replicate client tests (imported by test modules only)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image

from services.common.testing import make_test_image
from services.gateway.providers import GenerationRequest, RetryPolicy
from services.gateway.providers.fakes.leonardo_contract import PLATFORM_MODELS

LEONARDO_MODEL = "e316348f-7773-490e-adcd-46757c738eb7"  # Absolute Reality v1.6 (SD1.5)
KINO_XL = "aa77f04e-3eec-4034-9c07-d0f619684628"  # an SDXL model
assert PLATFORM_MODELS[LEONARDO_MODEL][1] == "SD1_5" and PLATFORM_MODELS[KINO_XL][1] == "SDXL"

KEY = "test-key"
RENDER = make_test_image(320, 240, "JPEG")
FAST = RetryPolicy(max_retries=2, backoff_seconds=0.5, max_backoff_seconds=4.0,
                   max_retry_after_seconds=30.0)
"""Tests pair this policy with a RecordingSleep, so the delays are asserted, not waited."""

LEONARDO_PARAMS: dict[str, Any] = {"api": "leonardo", "init_strength": 0.72,
                                   "guidance_scale": 7, "controlnet_weight": 0.89}
"""What ``to_native("leonardo", ...)`` makes of strength 0.28, guidance 7.2, structure 0.89."""
SD_PARAMS: dict[str, Any] = {"api": "stablediffusion", "strength": 0.22, "guidance_scale": 8.1,
                             "controlnet_conditioning_scale": 0.93}


def generation_request(params: dict[str, Any], image: bytes = RENDER,
                       seed: int = 0) -> GenerationRequest:
    return GenerationRequest(image=image, mode="structure", parameters=dict(params),
                             prompt="photorealistic interior, natural light, 35mm",
                             negative_prompt="cartoon, render, blurry", seed=seed)


def pixels(data: bytes, size: tuple[int, int] | None = None) -> np.ndarray:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    if size is not None:
        image = image.resize(size)
    return np.asarray(image, dtype=float)


def looks_inverted(result: bytes, source: bytes) -> bool:
    """``result`` is ``source`` with its colours inverted (at the result's size)."""
    got = pixels(result)
    want = 255 - pixels(source, (got.shape[1], got.shape[0]))
    return float(np.abs(got - want).mean()) < 8


def non_decreasing(values: list[float]) -> bool:
    return all(a <= b for a, b in zip(values, values[1:], strict=False))
