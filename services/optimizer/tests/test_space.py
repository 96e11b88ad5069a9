"""The search space: provider dimension, native-name mapping, bounds."""

from __future__ import annotations

from typing import get_args

import pytest

from services.common.errors import ValidationFailed
from services.common.parameter_space import DIMENSIONS, PROVIDERS, from_native, snap
from services.optimizer.schemas import ProviderName
from services.optimizer.space import (
    SearchSpace,
    describe,
    from_unit,
    native,
    normalise_providers,
    to_unit,
)

VALUES = {"strength": 0.28, "guidance": 7.2, "structure": 0.89}


def test_schema_provider_names_match_the_shared_table() -> None:
    assert get_args(ProviderName) == PROVIDERS


@pytest.mark.parametrize(
    ("provider", "expected"),
    [
        (
            "leonardo",
            {
                "api": "leonardo",
                "init_strength": 0.72,  # Leonardo's own scale: 1 - strength
                "guidance_scale": 7,  # an Int in Leonardo's API
                "controlnet_weight": 0.89,
            },
        ),
        (
            "stablediffusion",
            {
                "api": "stablediffusion",
                "strength": 0.28,
                "guidance_scale": 7.2,
                "controlnet_conditioning_scale": 0.89,
            },
        ),
        (
            "local",
            {
                "api": "local",
                "strength": 0.28,
                "guidance_scale": 7.2,
                "controlnet_conditioning_scale": 0.89,
            },
        ),
    ],
)
def test_native_mapping_round_trip(provider: str, expected: dict[str, object]) -> None:
    assert native(provider, VALUES) == expected
    assert from_native(expected) == (provider, snap(provider, VALUES))


def test_providers_are_deduplicated_and_ordered_canonically() -> None:
    assert normalise_providers(["local", "leonardo", "local"]) == ("leonardo", "local")


@pytest.mark.parametrize("providers", [[], ["midjourney"], ["local", "dalle"]])
def test_bad_provider_lists_are_rejected(providers: list[str]) -> None:
    with pytest.raises(ValidationFailed):
        normalise_providers(providers)


def test_the_provider_is_a_dimension_only_with_several_providers() -> None:
    assert not SearchSpace.for_providers(["local"]).has_provider_dimension
    assert SearchSpace.for_providers(["local", "leonardo"]).has_provider_dimension


def test_unit_cube_round_trip_and_clipping() -> None:
    assert to_unit(VALUES) == pytest.approx([0.45, 2.2 / 7, 0.19 / 0.29])
    assert from_unit(to_unit(VALUES)) == pytest.approx(VALUES)
    # Ingestion accepts values a hair outside the bounds; the model's cube does not.
    assert to_unit({"strength": 0.5 + 1e-10, "guidance": 5.0 - 1e-10, "structure": 0.9}
                   )[:2] == [1.0, 0.0]
    assert from_unit([1.2, -0.5, 0.5]) == pytest.approx(
        {"strength": 0.5, "guidance": 5.0, "structure": 0.845}
    )


def test_describe_lists_bounds_and_native_names() -> None:
    described = describe()
    assert described["providers"] == list(PROVIDERS)
    by_name = {d["name"]: d for d in described["dimensions"]}
    assert (by_name["strength"]["low"], by_name["strength"]["high"]) == (0.1, 0.5)
    assert (by_name["guidance"]["low"], by_name["guidance"]["high"]) == (5.0, 12.0)
    assert (by_name["structure"]["low"], by_name["structure"]["high"]) == (0.7, 0.99)
    assert by_name["strength"]["native_names"]["leonardo"] == "init_strength"
    assert by_name["structure"]["native_names"]["local"] == "controlnet_conditioning_scale"
    # a provider's own scale: Leonardo inverts strength and takes guidance as an integer
    assert by_name["strength"]["native"]["leonardo"] == {"scale": "one_minus", "integer": False}
    assert by_name["guidance"]["native"]["leonardo"] == {"scale": "same", "integer": True}
    assert by_name["guidance"]["native"]["stablediffusion"]["integer"] is False
    assert len(by_name) == len(DIMENSIONS)
