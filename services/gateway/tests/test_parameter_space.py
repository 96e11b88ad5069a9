"""Mapping between the optimizer's normalised space and each provider's names and scales."""

from __future__ import annotations

import random

import pytest

from services.common.errors import ValidationFailed
from services.common.parameter_space import (
    DIMENSIONS,
    PROVIDERS,
    from_native,
    native_bounds,
    random_values,
    snap,
    to_native,
)


def test_native_names_and_scales_per_provider() -> None:
    values = {"strength": 0.25, "guidance": 7.4, "structure": 0.92}
    # Leonardo: init_strength is "how strongly the output reflects the original" (the
    # opposite of img2img strength) and guidance_scale is an Int in its OpenAPI schema.
    assert to_native("leonardo", values) == {
        "api": "leonardo", "init_strength": 0.75, "guidance_scale": 7,
        "controlnet_weight": 0.92}
    assert isinstance(to_native("leonardo", values)["guidance_scale"], int)
    assert to_native("stablediffusion", values) == {
        "api": "stablediffusion", "strength": 0.25, "guidance_scale": 7.4,
        "controlnet_conditioning_scale": 0.92}


def test_snap_rounds_only_what_the_provider_takes_as_integer() -> None:
    values = {"strength": 0.2345, "guidance": 11.6, "structure": 0.8}
    assert snap("leonardo", values) == {"strength": 0.2345, "guidance": 12.0, "structure": 0.8}
    assert snap("stablediffusion", values) == values
    # a snapped Leonardo point is exactly what comes back from the variant's parameters
    assert from_native(to_native("leonardo", values)) == ("leonardo", snap("leonardo", values))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_round_trip(provider: str) -> None:
    values = random_values(random.Random(1))
    back_provider, back = from_native(to_native(provider, values))
    assert back_provider == provider
    assert back == pytest.approx(snap(provider, values), abs=1e-4)


def test_native_bounds_are_in_the_providers_own_scale() -> None:
    leonardo = native_bounds("leonardo")
    assert leonardo["init_strength"] == {"dimension": "strength", "low": 0.5, "high": 0.9,
                                         "scale": "one_minus", "integer": False}
    assert leonardo["guidance_scale"]["integer"] is True
    assert native_bounds("stablediffusion")["strength"]["low"] == 0.1


def test_random_values_stay_in_bounds() -> None:
    rng = random.Random(0)
    for _ in range(200):
        values = random_values(rng)
        for dim in DIMENSIONS:
            assert dim.low <= values[dim.name] <= dim.high


@pytest.mark.parametrize("bad", [
    {"api": "midjourney", "strength": 0.2, "guidance_scale": 7,
     "controlnet_conditioning_scale": 0.9},
    {"api": "leonardo", "init_strength": 0.3, "guidance_scale": 7, "controlnet_weight": 0.9},
    {"api": "leonardo", "init_strength": 0.8, "guidance_scale": 7},
])
def test_rejects_unknown_provider_out_of_range_and_missing(bad: dict) -> None:
    with pytest.raises(ValidationFailed):
        from_native(bad)
