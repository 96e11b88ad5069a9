"""The generation-parameter space: the wire contract between gateway and optimizer.

The optimizer works on one normalised space ``(provider, strength, guidance,
structure)``; providers speak their own parameter names. This module is the single
table that maps one to the other (see ARCHITECTURE.md, "Parameter space").
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

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

_SD_NAMES = {
    "strength": "strength",
    "guidance": "guidance_scale",
    "structure": "controlnet_conditioning_scale",
}
NATIVE_NAMES: dict[str, dict[str, str]] = {
    "leonardo": {
        "strength": "init_strength",
        "guidance": "guidance_scale",
        "structure": "controlnet_weight",
    },
    "stablediffusion": _SD_NAMES,
    "local": _SD_NAMES,
}


def _check_provider(provider: str) -> None:
    if provider not in NATIVE_NAMES:
        raise ValidationFailed(
            f"Proveedor desconocido: {provider!r}. Válidos: {', '.join(PROVIDERS)}.",
            f"Unknown provider {provider!r}. Valid: {', '.join(PROVIDERS)}.",
        )


def to_native(provider: str, values: dict[str, float]) -> dict[str, Any]:
    """Normalised values → the provider's own parameter names, with ``api`` set."""
    _check_provider(provider)
    native: dict[str, Any] = {"api": provider}
    for dim in DIMENSIONS:
        native[NATIVE_NAMES[provider][dim.name]] = round(float(values[dim.name]), 4)
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
        native = NATIVE_NAMES[provider][dim.name]
        if native not in parameters:
            raise ValidationFailed(
                f"Falta el parámetro {native!r} para {provider}.",
                f"Missing parameter {native!r} for {provider}.",
            )
        value = float(parameters[native])
        if not dim.low - 1e-9 <= value <= dim.high + 1e-9:
            raise ValidationFailed(
                f"{native}={value} está fuera del rango [{dim.low}, {dim.high}].",
                f"{native}={value} is outside [{dim.low}, {dim.high}].",
            )
        values[dim.name] = value
    return provider, values


def random_values(rng: random.Random) -> dict[str, float]:
    """A uniformly random point inside the bounds (normalised names)."""
    return {d.name: rng.uniform(d.low, d.high) for d in DIMENSIONS}
