"""Request and response shapes of the gateway's public JSON API (the seeds' contract)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from services.common.messages import Comments
from services.gateway.errors import InvalidRequest

Mode = Literal["structure", "surfaces"]
Option = Literal["A", "B"]


def parse_stars(value: Any) -> int:
    """Whole stars from 1 to 5, given as a number or a numeric string.

    Raises:
        InvalidRequest: anything else (``"inf"``, ``"NaN"``, 4.5, ``True``…).
    """
    problem = InvalidRequest.because("stars", value=str(value)[:20])
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise problem
    try:
        number = float(value)
    except ValueError as exc:
        raise problem from exc
    if not math.isfinite(number) or number != int(number) or not 1 <= number <= 5:
        raise problem
    return int(number)


class OptionOut(BaseModel):
    option: str
    variant_id: str
    status: str
    stage: str
    progress: float
    provider: str
    provider_label: str
    parameters: dict[str, Any]
    suggestion_source: str
    prompt_version: str
    prompt_arm: str
    url: str | None = None
    image_id: str | None = None
    error: str | None = None  # in the request's language
    error_code: str | None = None  # the error's catalogue key (None: none, or an old row)
    error_params: dict[str, Any] | None = None
    duration_ms: int | None = None
    model: str | None = None
    estimated_cost_usd: float | None = None
    rating: int | None = None
    comments: str | None = None
    rating_id: str | None = None
    cannot_judge_reason: str | None = None
    revision: int | None = None
    predicted_rating: float | None = None
    predicted_std: float | None = None
    reward_model_version: str | None = None
    selection_reason: str | None = None  # best_predicted | most_uncertain | fallback


class ExperimentOut(BaseModel):
    experiment_id: str
    mode: str
    project_id: str | None
    created_at: datetime
    status: str  # generating | ready | rated
    original_url: str
    options: list[OptionOut]
    strategy: str = "pair"  # pair | best_of_n (phase 2: N candidates, two shown)
    candidates_total: int = 2
    candidates_finished: int = 0


CannotJudgeReason = Literal["broken", "different_scene", "expertise", "other"]


class RatingIn(BaseModel):
    option: Option
    rating: int | None = Field(default=None, description="Whole stars, 1 to 5; null with "
                               "cannot_judge_reason when the trainer could not judge.")
    comments: Comments = ""
    cannot_judge_reason: CannotJudgeReason | None = Field(
        default=None, description="Set instead of a rating: why the trainer could not judge this "
        "variant. Such ratings are stored but never sent to the learning services.")
    image_id: str | None = None  # accepted for compatibility with the seeds; not needed

    @field_validator("rating", mode="before")
    @classmethod
    def _whole_stars(cls, value: Any) -> int | None:
        return None if value is None else parse_stars(value)

    @model_validator(mode="after")
    def _rating_or_reason(self) -> RatingIn:
        if (self.rating is None) == (self.cannot_judge_reason is None):
            raise InvalidRequest.because("rating_or_reason", option=self.option)
        return self


class RateIn(BaseModel):
    experiment_id: str
    ratings: list[RatingIn] = Field(..., min_length=1, max_length=2)
    rated_by: str | None = Field(
        None, description="Accepted for the seeds' shape and ignored: the rater is the "
                          "signed-in user or the API token's owner.")
    seconds_to_rate: float | None = Field(
        default=None, ge=0, le=86400, description="Seconds from both variants shown to submit, "
        "minus time the page was hidden (measured by the page).")


class RatingEditIn(BaseModel):
    """A trainer's correction of one saved rating (undo or history): a new revision."""

    rating: int = Field(..., ge=1, le=5)
    comments: str = Field("", max_length=4000)


class RateOut(BaseModel):
    success: bool
    message: str
    ml_updated: bool
    current_best_rating: float | None
    samples_collected: int
    phase_1_complete: bool
    rating_ids: list[str]
    deliveries: dict[str, bool]


# status (seeds' /api/train/status, plus what the status panel shows) -------------------
class Phase1Status(BaseModel):
    active: bool
    samples_collected: int
    best_rating: float | None
    convergence: float | None = Field(description="The optimizer's convergence score, 0–1.")
    estimated_trials_remaining: int
    complete_reason: str | None = Field(
        description="samples | best_rating | the optimizer's own reason; null while active.")
    posterior_convergence: dict[str, Any] | None = Field(
        None, description="The optimizer's posterior certainty about its optimum (its JSON).")
    predicted_rating: float | None = None
    predicted_rating_interval: list[float] | None = None
    target_samples: int
    target_rating: float


class LiveAccuracy(BaseModel):
    """How the reward model's recorded predictions compare with the ratings given later."""

    n: int
    mae: float | None
    within_half: float | None


class Phase2Status(BaseModel):
    active: bool
    training_samples: int | None
    model_accuracy: float | None = Field(
        description="Held-out share of predictions within ±0.5 stars.")
    model_version: str | None
    heldout_metrics: dict[str, Any] | None = Field(
        None, description="The reward service's held-out figures for the active model.")
    ready_for_inference: bool
    live_accuracy: LiveAccuracy


class PromptEvolutionStatus(BaseModel):
    current_version: str | None
    last_evolution: str | None
    next_evolution_at_sample: int | None


class CurrentBest(BaseModel):
    api: str | None
    avg_rating: float | None
    parameters: dict[str, Any] | None
    best_rating: float | None


class ProviderPosterior(BaseModel):
    probability_best: float | None
    predicted_rating: float | None


class ProviderPerformance(BaseModel):
    avg_rating: float
    count: int


class TrainingStatus(BaseModel):
    phase_1: Phase1Status
    phase_2: Phase2Status
    prompt_evolution: PromptEvolutionStatus
    current_best: CurrentBest
    recommended_parameters: dict[str, Any] | None
    provider_posterior: dict[str, ProviderPosterior]
    api_performance: dict[str, ProviderPerformance]
    services: dict[str, bool] = Field(
        description="Whether each learning service (optimizer, evolution, reward) answered.")
    pending_deliveries: dict[str, int] = Field(
        description="Ratings saved but not yet delivered, per learning service.")
    rejected_deliveries: dict[str, int] = Field(
        default_factory=dict,
        description="Ratings a learning service refused for good (never retried), per service.")


# history (seeds' /api/train/history) -----------------------------------------------------
class HistoryOption(BaseModel):
    option: str
    rating: float | None = Field(description="Stars; null when the trainer could not judge.")
    api: str
    parameters: dict[str, Any]
    prompt_version: str
    comments: str
    rated_by: str
    image_url: str | None
    rating_id: str | None = None
    revision: int = Field(1, description="1, or the number of the trainer's latest correction.")
    cannot_judge_reason: str | None = Field(
        None, description="Why the trainer could not judge this variant (rating null).")
    seconds_to_rate: float | None = Field(
        None, description="Seconds from both variants shown to saving, minus hidden-tab time.")


class HistoryExperiment(BaseModel):
    experiment_id: str
    created_at: datetime | None
    options: list[HistoryOption]


class HistoryAnalytics(BaseModel):
    total_samples: int
    avg_rating: float | None
    rating_trend: list[float] = Field(
        description="Mean rating of each run of 10 ratings, oldest first.")
    best_parameters: dict[str, Any] | None
    api_performance: dict[str, ProviderPerformance]


class TrainingHistory(BaseModel):
    experiments: list[HistoryExperiment]
    analytics: HistoryAnalytics
