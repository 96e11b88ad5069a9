"""The search space: provider dimension, native-name mapping, bounds."""

from __future__ import annotations

from typing import get_args

import pytest

from services.common.errors import ValidationFailed
from services.common.parameter_space import DIMENSIONS, PROVIDERS, from_native, snap
from services.optimizer.schemas import ProviderName
from services.optimizer.space import SearchSpace, describe, native, normalise_providers

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


def test_single_provider_drops_the_categorical_dimension() -> None:
    space = SearchSpace.for_providers(["local"])
    dims = space.dimensions()
    assert [d.name for d in dims] == ["strength", "guidance", "structure"]
    point = space.to_point("local", VALUES)
    assert point == [0.28, 7.2, 0.89]
    assert space.from_point(point) == ("local", VALUES)


def test_several_providers_keep_the_categorical_dimension() -> None:
    space = SearchSpace.for_providers(["local", "leonardo"])
    dims = space.dimensions()
    assert [d.name for d in dims] == ["provider", "strength", "guidance", "structure"]
    assert list(dims[0].categories) == ["leonardo", "local"]
    point = space.to_point("leonardo", VALUES)
    assert point == ["leonardo", 0.28, 7.2, 0.89]
    assert space.from_point(point) == ("leonardo", VALUES)


def test_points_are_clipped_into_the_bounds() -> None:
    space = SearchSpace.for_providers(["local"])
    assert space.to_point(
        "local", {"strength": 0.5 + 1e-10, "guidance": 5.0 - 1e-10, "structure": 0.9}
    ) == [0.5, 5.0, 0.9]
    assert space.from_point([0.6, 4.0, 1.2]) == (
        "local",
        {"strength": 0.5, "guidance": 5.0, "structure": 0.99},
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
