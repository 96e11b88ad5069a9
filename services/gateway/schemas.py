"""Request and response shapes of the gateway's public JSON API (the seeds' contract)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

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


class RatingIn(BaseModel):
    option: Option
    rating: int = Field(..., description="Whole stars, 1 to 5.")
    comments: str = Field("", max_length=4000)
    image_id: str | None = None  # accepted for compatibility with the seeds; not needed

    @field_validator("rating", mode="before")
    @classmethod
    def _whole_stars(cls, value: Any) -> int:
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


class RateOut(BaseModel):
    success: bool
    message: str
    ml_updated: bool
    current_best_rating: float | None
    samples_collected: int
    phase_1_complete: bool
    rating_ids: list[str]
    deliveries: dict[str, bool]
