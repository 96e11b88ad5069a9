"""Request and response shapes of the gateway's public JSON API (the seeds' contract)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

Mode = Literal["structure", "surfaces"]
Option = Literal["A", "B"]


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
    error: str | None = None
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
    rating: int | None = Field(None, description="Whole stars, 1 to 5; null with "
                               "cannot_judge_reason when the trainer could not judge.")
    comments: str = Field("", max_length=4000)
    cannot_judge_reason: CannotJudgeReason | None = Field(
        None, description="Set instead of a rating: why the trainer could not judge this "
        "variant. Such ratings are stored but never sent to the learning services.")
    image_id: str | None = None  # accepted for compatibility with the seeds; not needed

    @model_validator(mode="after")
    def _rating_or_reason(self) -> RatingIn:
        if (self.rating is None) == (self.cannot_judge_reason is None):
            raise ValueError("da una puntuación de 1 a 5 o un motivo para no juzgar, no ambos")
        return self

    @field_validator("rating", mode="before")
    @classmethod
    def _whole_stars(cls, value: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError("la puntuación debe ser un número entero de 1 a 5")
        try:
            number = float(value)
        except ValueError as exc:
            raise ValueError("la puntuación debe ser un número entero de 1 a 5") from exc
        if number != int(number) or not 1 <= number <= 5:
            raise ValueError(f"la puntuación debe ser un entero de 1 a 5 (recibido {value})")
        return int(number)


class RateIn(BaseModel):
    experiment_id: str
    ratings: list[RatingIn] = Field(..., min_length=1, max_length=2)
    rated_by: str = Field("trainer", min_length=1, max_length=255)
    seconds_to_rate: float | None = Field(
        None, ge=0, le=86400, description="Seconds from both variants shown to submit, "
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
