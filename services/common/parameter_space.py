"""The generation-parameter space: the wire contract between gateway and optimizer.

The optimizer works on one normalised space ``(provider, strength, guidance,
structure)``; providers speak their own parameter names, and some on their own
scale. This module is the single table that maps one to the other (see
ARCHITECTURE.md, "Parameter space", and docs/providers.md for the evidence):

===============  =================  ======================  ===============================
provider         strength           guidance                structure
===============  =================  ======================  ===============================
leonardo         init_strength,     guidance_scale,         controlnet_weight
                 sent as 1 − value  **integer**
stablediffusion  strength           guidance_scale          controlnet_conditioning_scale
local            strength           guidance_scale          controlnet_conditioning_scale
===============  =================  ======================  ===============================

* ``strength`` is "how far the output may move from the render" (img2img denoising
  strength). Leonardo's ``init_strength`` is the opposite ("how strongly the
  generated images should reflect the original image", 0.1–0.9), so it is sent as
  ``1 − strength``.
* Leonardo's ``guidance_scale`` is an ``Int`` in its OpenAPI schema; a float is
  refused with HTTP 400. The optimizer's value is rounded *before* it is stored on
  the variant (:func:`snap`), so the optimizer learns from the value that was sent.
* The names in this table are what a variant stores; a provider client may map
  them onto its API's own input names (Replicate's model calls strength
  ``prompt_strength``), one to one and without changing the value.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Literal

from services.common.errors import ValidationFailed

PROVIDERS: tuple[str, ...] = ("leonardo", "stablediffusion", "local")


@dataclass(frozen=True)
class Dimension:
    name: str
    low: float
    high: float
    label_es: str
    label_en: str


DIMENSIONS: tuple[Dimension, ...] = (
    Dimension("strength", 0.1, 0.5, "Intensidad", "Strength"),
    Dimension("guidance", 5.0, 12.0, "Guía del prompt", "Guidance"),
    Dimension("structure", 0.7, 0.99, "Preservación de estructura", "Structure weight"),
)
DIMENSION_NAMES = tuple(d.name for d in DIMENSIONS)
_BY_NAME = {d.name: d for d in DIMENSIONS}

Scale = Literal["same", "one_minus"]


@dataclass(frozen=True)
class NativeParameter:
    """How one normalised dimension is written for one provider.

    Attributes:
        name: the provider-native name stored on the variant.
        scale: ``same``, or ``one_minus`` (native = 1 − normalised).
        integer: the provider accepts only whole numbers (the value is rounded).
    """

    name: str
    scale: Scale = "same"
    integer: bool = False

    def to_native(self, value: float) -> float | int:
        native = 1.0 - value if self.scale == "one_minus" else value
        return int(round(native)) if self.integer else round(native, 4)

    def from_native(self, native: float) -> float:
        return 1.0 - native if self.scale == "one_minus" else native


_SD = {
    "strength": NativeParameter("strength"),
    "guidance": NativeParameter("guidance_scale"),
    "structure": NativeParameter("controlnet_conditioning_scale"),
}
NATIVE: dict[str, dict[str, NativeParameter]] = {
    "leonardo": {
        "strength": NativeParameter("init_strength", scale="one_minus"),
        "guidance": NativeParameter("guidance_scale", integer=True),
        "structure": NativeParameter("controlnet_weight"),
    },
    "stablediffusion": _SD,
    "local": _SD,
}
NATIVE_NAMES: dict[str, dict[str, str]] = {
    provider: {dim: spec.name for dim, spec in table.items()} for provider, table in NATIVE.items()
}


def _check_provider(provider: str) -> None:
    if provider not in NATIVE:
        raise ValidationFailed.because("unknown_provider", provider=provider,
                                       valid=", ".join(PROVIDERS))


def _clip(dim: Dimension, value: float) -> float:
    return min(max(value, dim.low), dim.high)


def snap(provider: str, values: dict[str, float]) -> dict[str, float]:
    """Normalised values moved onto what ``provider`` can really be sent (integer
    dimensions rounded, then kept inside the bounds), so a suggestion, the request
    and the observation the optimizer later learns from are the same point."""
    _check_provider(provider)
    out = dict(values)
    for dim in DIMENSIONS:
        spec = NATIVE[provider][dim.name]
        if spec.integer and dim.name in out:
            sent = spec.to_native(float(out[dim.name]))
            out[dim.name] = _clip(dim, float(spec.from_native(sent)))
    return out


def to_native(provider: str, values: dict[str, float]) -> dict[str, Any]:
    """Normalised values → the provider's own parameter names and scale, with ``api``."""
    _check_provider(provider)
    snapped = snap(provider, values)
    native: dict[str, Any] = {"api": provider}
    for dim in DIMENSIONS:
        spec = NATIVE[provider][dim.name]
        native[spec.name] = spec.to_native(float(snapped[dim.name]))
    return native


def from_native(parameters: dict[str, Any]) -> tuple[str, dict[str, float]]:
    """A provider-native parameter dict (with ``api``) → ``(provider, normalised values)``.

    Raises:
        ValidationFailed: unknown provider, missing parameter or value out of range.
    """
    provider = str(parameters.get("api", ""))
    _check_provider(provider)
    values: dict[str, float] = {}
    for dim in DIMENSIONS:
        spec = NATIVE[provider][dim.name]
        if spec.name not in parameters:
            raise ValidationFailed.because("missing_parameter", name=spec.name,
                                           provider=provider)
        native = float(parameters[spec.name])
        value = spec.from_native(native)
        if not dim.low - 1e-9 <= value <= dim.high + 1e-9:
            low, high = sorted((spec.from_native(dim.low), spec.from_native(dim.high)))
            raise ValidationFailed.because("parameter_out_of_range", name=spec.name,
                                           value=native, low=low, high=high, provider=provider)
        values[dim.name] = round(value, 10)
    return provider, values


def native_bounds(provider: str) -> dict[str, dict[str, Any]]:
    """Per native name: the bounds in the provider's own scale and whether it is integer."""
    _check_provider(provider)
    out: dict[str, dict[str, Any]] = {}
    for dim in DIMENSIONS:
        spec = NATIVE[provider][dim.name]
        low, high = sorted((spec.from_native(dim.low), spec.from_native(dim.high)))
        out[spec.name] = {"dimension": dim.name, "low": round(low, 10), "high": round(high, 10),
                          "scale": spec.scale, "integer": spec.integer}
    return out


def random_values(rng: random.Random) -> dict[str, float]:
    """A uniformly random point inside the bounds (normalised names)."""
    return {d.name: rng.uniform(d.low, d.high) for d in DIMENSIONS}


def dimension(name: str) -> Dimension:
    return _BY_NAME[name]
