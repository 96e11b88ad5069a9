"""The model's knobs as one plain, hashable value (:class:`GPConfig`).

``OptimizerSettings.gp_config()`` builds it from the environment; the domain
modules take it as an argument and never read settings themselves, so the
benchmark and the tests drive exactly the code the service runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Acquisition = Literal["thompson", "exploit", "ei", "ucb"]


@dataclass(frozen=True)
class GPConfig:
    """Model knobs (see ``OptimizerSettings`` for their meaning)."""

    n_initial_points: int = 10
    random_state: int = 42
    candidate_points: int = 512
    local_points: int = 24
    local_centres: int = 6
    sample_points: int = 96
    posterior_samples: int = 256
    max_fit_observations: int = 600
    hyper_fit_observations: int = 250
    hyper_max_iter: int = 80
    convergence_tolerance: float = 0.25
    first_variant: Acquisition = "thompson"
    other_variants: Acquisition = "thompson"
    recommendation_sd: float = 0.0
    challenger_floor: float = 0.05

    def fingerprint(self) -> list[Any]:
        """Every knob a fitted model depends on (part of its cache key)."""
        return [
            self.random_state,
            self.candidate_points,
            self.local_points,
            self.local_centres,
            self.sample_points,
            self.posterior_samples,
            self.max_fit_observations,
            self.hyper_fit_observations,
            self.hyper_max_iter,
            self.convergence_tolerance,
            self.first_variant,
            self.other_variants,
            self.recommendation_sd,
            self.challenger_floor,
        ]
