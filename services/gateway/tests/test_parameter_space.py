"""Mapping between the optimizer's normalised space and each provider's names."""

from __future__ import annotations

import random

import pytest

from services.common.errors import ValidationFailed
from services.common.parameter_space import (
    DIMENSIONS,
    PROVIDERS,
    from_native,
    random_values,
    to_native,
)


def test_native_names_per_provider() -> None:
    values = {"strength": 0.25, "guidance": 7.0, "structure": 0.92}
    assert to_native("leonardo", values) == {
        "api": "leonardo", "init_strength": 0.25, "guidance_scale": 7.0,
        "controlnet_weight": 0.92}
    assert to_native("stablediffusion", values) == {
        "api": "stablediffusion", "strength": 0.25, "guidance_scale": 7.0,
        "controlnet_conditioning_scale": 0.92}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_round_trip(provider: str) -> None:
    values = random_values(random.Random(1))
    back_provider, back = from_native(to_native(provider, values))
    assert back_provider == provider
    assert back == pytest.approx(values, abs=1e-4)


def test_random_values_stay_in_bounds() -> None:
    rng = random.Random(0)
    for _ in range(200):
        values = random_values(rng)
        for dim in DIMENSIONS:
            assert dim.low <= values[dim.name] <= dim.high


@pytest.mark.parametrize("bad", [
    {"api": "midjourney", "strength": 0.2, "guidance_scale": 7,
     "controlnet_conditioning_scale": 0.9},
    {"api": "leonardo", "init_strength": 0.9, "guidance_scale": 7, "controlnet_weight": 0.9},
    {"api": "leonardo", "init_strength": 0.2, "guidance_scale": 7},
])
def test_rejects_unknown_provider_out_of_range_and_missing(bad: dict) -> None:
    with pytest.raises(ValidationFailed):
        from_native(bad)
