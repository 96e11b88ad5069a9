"""The search space the optimizer explores for a given set of enabled providers.

Notation: a *point* is ``(provider, strength, guidance, structure)`` in the
normalised names of :mod:`services.common.parameter_space`; providers translate it
to their own parameter names with :func:`~services.common.parameter_space.to_native`.

Decisions made here:

* The provider is a categorical dimension over the *enabled* providers only; with
  one enabled provider it carries no information.
* The continuous bounds are exactly those of ``parameter_space.DIMENSIONS``; the
  model works in the unit cube (:func:`to_unit`, :func:`from_unit`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from services.common.parameter_space import (
    DIMENSIONS,
    NATIVE,
    NATIVE_NAMES,
    PROVIDERS,
    to_native,
)
from services.optimizer.errors import InvalidRequest


@dataclass(frozen=True)
class Observation:
    """One rated point: the provider, its normalised values and the 1–5 star rating,
    plus who rated it, on which render, and in which context.

    ``rating`` is the integer a trainer gave when it comes from the API; the model
    also accepts exact real values (the benchmark's noise-free limit). ``image_id``
    is the original render, shared by both variants of an experiment; when it is
    missing the experiment stands in for it, and failing that the rating is its own
    render.
    """

    provider: str
    values: Mapping[str, float]
    rating: float
    experiment_id: str | None = None
    image_id: str | None = None
    rater: str | None = None
    mode: str | None = None
    prompt_version: str | None = None

    @property
    def render(self) -> str | None:
        return self.image_id or self.experiment_id


@dataclass(frozen=True)
class Context:
    """What a suggestion or recommendation is conditioned on besides the parameters."""

    mode: str | None = None
    prompt_version: str | None = None


def normalise_providers(providers: Iterable[str]) -> tuple[str, ...]:
    """Deduplicate and order providers canonically (the order of ``PROVIDERS``).

    Raises:
        InvalidRequest: a provider is unknown or the list is empty.
    """
    given = list(providers)
    unknown = sorted({p for p in given if p not in PROVIDERS})
    if unknown:
        raise InvalidRequest.because("unknown_providers", providers=", ".join(unknown),
                                     valid=", ".join(PROVIDERS))
    ordered = tuple(p for p in PROVIDERS if p in given)
    if not ordered:
        raise InvalidRequest.because("no_provider")
    return ordered


@dataclass(frozen=True)
class SearchSpace:
    """The optimisation space over ``providers`` (already normalised, non-empty)."""

    providers: tuple[str, ...]

    @classmethod
    def for_providers(cls, providers: Iterable[str]) -> SearchSpace:
        return cls(normalise_providers(providers))

    @property
    def has_provider_dimension(self) -> bool:
        return len(self.providers) > 1

    def contains(self, observation: Observation) -> bool:
        return observation.provider in self.providers


def native(provider: str, values: Mapping[str, float]) -> dict[str, Any]:
    """Normalised values → the provider's own names (with ``api``)."""
    return to_native(provider, dict(values))


def describe() -> dict[str, Any]:
    """Bounds and native names of every dimension, for the gateway and the UI."""
    return {
        "providers": list(PROVIDERS),
        "dimensions": [
            {
                "name": d.name,
                "low": d.low,
                "high": d.high,
                "label_es": d.label_es,
                "label_en": d.label_en,
                "native_names": {p: NATIVE_NAMES[p][d.name] for p in PROVIDERS},
                # a provider may take the dimension on its own scale or only as integers
                "native": {
                    p: {"scale": NATIVE[p][d.name].scale, "integer": NATIVE[p][d.name].integer}
                    for p in PROVIDERS
                },
            }
            for d in DIMENSIONS
        ],
    }


def to_unit(values: Mapping[str, float]) -> list[float]:
    """Normalised values → the unit cube ``[0, 1]³`` (clipped), in ``DIMENSIONS`` order."""
    return [
        min(max((float(values[d.name]) - d.low) / (d.high - d.low), 0.0), 1.0) for d in DIMENSIONS
    ]


def from_unit(unit: Iterable[float]) -> dict[str, float]:
    """A point of the unit cube → normalised values inside the bounds."""
    return {
        d.name: d.low + min(max(float(u), 0.0), 1.0) * (d.high - d.low)
        for d, u in zip(DIMENSIONS, unit, strict=True)
    }
