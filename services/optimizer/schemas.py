"""Request and response bodies of the optimizer's HTTP API (separate from tables).

Parameters travel in each provider's native names with ``api`` naming the
provider, e.g. ``{"api": "leonardo", "init_strength": 0.28, "guidance_scale": 7.2,
"controlnet_weight": 0.89}`` (see ``services/common/parameter_space.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Mode = Literal["structure", "surfaces"]
ProviderName = Literal["leonardo", "stablediffusion", "local"]


class SuggestRequest(BaseModel):
    mode: Mode
    num_suggestions: int = Field(default=2, ge=1, le=8)
    providers: list[ProviderName] | None = Field(
        default=None,
        min_length=1,
        description="Enabled providers to choose among; default: the service's "
        'default_providers (["local"]).',
    )
    prompt_version: str | None = Field(default=None, max_length=64)


class ContextOut(BaseModel):
    mode: str | None
    prompt_version: str | None


class SuggestionDetail(BaseModel):
    """How one suggestion was chosen (same order as ``suggestions``)."""

    strategy: Literal["random", "thompson", "exploit", "expected_improvement", "ucb"]
    predicted_rating: float | None = Field(
        description="Posterior mean rating there (average trainer, average render)."
    )
    expected_improvement: float | None = Field(
        description="Expected improvement over the best posterior mean, in stars."
    )
    provider_probability: float | None = Field(
        description="Posterior probability that this provider is the best one "
        "(only when several are enabled)."
    )


class SuggestResponse(BaseModel):
    suggestions: list[dict[str, Any]] = Field(
        description='Native parameters plus "api" and "source" ("random" | "bayesian").'
    )
    samples_seen: int = Field(description="Observations stored, all providers.")
    observations_used: int = Field(
        description="Observations of the enabled providers the decision was based on."
    )
    details: list[SuggestionDetail] = Field(
        default_factory=list, description="Why each suggestion was made (same order)."
    )
    context: ContextOut | None = None


class RatingResult(BaseModel):
    """One rating of one generated image."""

    model_config = ConfigDict(coerce_numbers_to_str=True)

    rating_id: str = Field(min_length=1, max_length=128)
    experiment_id: str = Field(min_length=1, max_length=128)
    image_id: str = Field(min_length=1, max_length=128)
    rater: str = Field(min_length=1, max_length=255)
    parameters: dict[str, Any] = Field(description='Native names with "api".')
    rating: int = Field(ge=1, le=5)
    mode: Mode | None = None
    prompt_version: str | None = Field(default=None, max_length=64)
    revision: int = Field(
        default=1, ge=1, description="A higher revision of a stored rating id replaces it."
    )


class UpdateRequest(BaseModel):
    results: list[RatingResult] = Field(max_length=1000)


class UpdateResponse(BaseModel):
    updated: bool = Field(description="True when at least one new rating was stored.")
    new_observations: int
    samples_seen: int
    convergence_score: float


class ProviderSeen(BaseModel):
    count: int
    avg_rating: float


class ProviderPosteriorOut(BaseModel):
    best_parameters: dict[str, Any] = Field(description="This provider's posterior best.")
    predicted_rating: float
    predicted_rating_interval: tuple[float, float] = Field(description="90 % credible.")
    probability_best: float = Field(
        description="Posterior probability that this provider's best beats the others'."
    )


class PosteriorConvergenceOut(BaseModel):
    probability_within: float = Field(
        description="P(the recommendation is within `tolerance` stars of the best in "
        "the space), under the posterior."
    )
    tolerance: float
    expected_regret: float = Field(
        description="Expected stars between the best in the space and the recommendation."
    )


class ManualStopOut(BaseModel):
    stopped: bool
    changed_by: str | None = None
    note: str | None = None
    changed_at: datetime | None = None


class ModelOut(BaseModel):
    observations_used: int
    hyperparameters: dict[str, float] = Field(
        description="Fitted noise model and kernel: signal_sd, lengthscale_*, *_correlation, "
        "provider_sd, context_sd, image_sd (render difficulty), rater_sd, noise_sd (stars)."
    )
    trainer_bias: dict[str, float] = Field(
        description="Estimated leniency of each trainer in stars (negative = stricter)."
    )


class StatusResponse(BaseModel):
    samples_seen: int
    best_rating: int | None
    best_parameters: dict[str, Any] | None = Field(
        description="Recommended native parameters with api; GP posterior-mean best once "
        "fitted, else the best observed; null without data."
    )
    predicted_rating: float | None = Field(
        description="Posterior mean rating at best_parameters (average trainer and render)."
    )
    predicted_rating_interval: tuple[float, float] | None = Field(
        default=None, description="90 % credible interval of predicted_rating."
    )
    rating_interval: tuple[float, float] | None = Field(
        default=None, description="90 % predictive interval of one new rating there."
    )
    recommendation_source: Literal["model", "observed"] | None
    convergence_score: float = Field(description="The seeds' formula (continuity).")
    posterior_convergence: PosteriorConvergenceOut | None = None
    phase_1_complete: bool
    phase_1_reason: Literal["manual", "best_rating", "samples"] | None = None
    manual_stop: ManualStopOut = Field(default_factory=lambda: ManualStopOut(stopped=False))
    n_initial_points: int
    providers_seen: dict[str, ProviderSeen]
    provider_posterior: dict[str, ProviderPosteriorOut] = Field(default_factory=dict)
    context: ContextOut | None = Field(
        default=None, description="Mode and prompt version the recommendation is for."
    )
    model: ModelOut | None = None


class Phase1Request(BaseModel):
    changed_by: str | None = Field(default=None, max_length=255)
    note: str | None = Field(default=None, max_length=500)


class Phase1Response(BaseModel):
    phase_1_complete: bool
    phase_1_reason: Literal["manual", "best_rating", "samples"] | None
    manual_stop: ManualStopOut


class DimensionOut(BaseModel):
    name: str
    low: float
    high: float
    label_es: str
    label_en: str
    native_names: dict[str, str]


class SpaceResponse(BaseModel):
    providers: list[str]
    default_providers: list[str]
    dimensions: list[DimensionOut]
    n_initial_points: int
