"""The local procedural enhancer: deterministic, and visibly driven by its inputs."""

from __future__ import annotations

import asyncio
import io

import numpy as np
import pytest
from PIL import Image

from services.common.testing import make_test_image
from services.gateway.errors import ProviderError
from services.gateway.providers import GenerationRequest, LocalProvider, no_progress
from services.gateway.providers.local import effect_amounts

ORIGINAL = make_test_image(320, 240, "JPEG", seed=7)
PROMPT = "photorealistic interior, natural light, soft shadows, sharp focus, high contrast"


def run(strength: float = 0.3, guidance: float = 8.0, structure: float = 0.9,
        prompt: str = PROMPT, negative: str = "blurry, noisy", mode: str = "structure"
        ) -> np.ndarray:
    request = GenerationRequest(
        image=ORIGINAL, mode=mode, prompt=prompt, negative_prompt=negative,
        parameters={"api": "local", "strength": strength, "guidance_scale": guidance,
                    "controlnet_conditioning_scale": structure})
    result = asyncio.run(LocalProvider().generate(request, no_progress))
    assert result.content_type == "image/jpeg"
    return np.asarray(Image.open(io.BytesIO(result.image)), dtype=np.float32)


ORIGINAL_PIXELS = np.asarray(Image.open(io.BytesIO(ORIGINAL)), dtype=np.float32)


def change(pixels: np.ndarray) -> float:
    return float(np.abs(pixels - ORIGINAL_PIXELS).mean())


def test_same_inputs_give_identical_output() -> None:
    assert np.array_equal(run(), run())


def test_strength_controls_how_far_the_output_moves() -> None:
    low, mid, high = change(run(strength=0.1)), change(run(strength=0.3)), change(run(strength=0.5))
    assert low < mid < high
    assert high > 2 * low


def test_guidance_amplifies_prompt_effects() -> None:
    assert change(run(guidance=12)) > change(run(guidance=5)) * 1.5


def test_low_structure_weight_moves_edges() -> None:
    from services.gateway.providers.local import _structure

    room = ORIGINAL_PIXELS / 255.0

    def moved(weight: float) -> float:
        out = _structure(room, room, weight, 0.5, "surfaces", seed=1)
        return float(np.abs(out - room).mean())

    assert moved(0.99) < 0.003  # strong ControlNet: geometry stays put
    assert moved(0.7) > 3 * moved(0.99)
    assert moved(0.85) < moved(0.7)


def test_prompt_terms_change_the_image_in_their_direction() -> None:
    neutral = run(prompt="interior", negative="")
    warm = run(prompt="interior, warm golden cozy light", negative="")
    assert (warm[..., 0] - warm[..., 2]).mean() > (neutral[..., 0] - neutral[..., 2]).mean() + 2
    bright = run(prompt="interior, natural light, bright daylight", negative="")
    assert bright.mean() > neutral.mean() + 2


def test_effects_read_spanish_terms_and_negative_prompt() -> None:
    spanish = effect_amounts("luz natural, textura, cálido", "", 8.0, "structure")
    assert spanish.light > 0 and spanish.detail > 0 and spanish.warmth > 0
    denoise = effect_amounts("interior", "noisy, grainy", 8.0, "structure")
    assert denoise.denoise > 0
    surfaces = effect_amounts("sharp detail", "", 8.0, "surfaces")
    structure = effect_amounts("sharp detail", "", 8.0, "structure")
    assert surfaces.detail == pytest.approx(structure.detail * 1.5)


def test_missing_parameters_are_a_clear_non_retryable_error() -> None:
    request = GenerationRequest(image=ORIGINAL, mode="structure", prompt="", negative_prompt="",
                                parameters={"api": "local", "strength": 0.3})
    with pytest.raises(ProviderError) as caught:
        asyncio.run(LocalProvider().generate(request, no_progress))
    assert caught.value.retryable is False
