"""Request and response shapes of the evolution API (separate from the ORM tables)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

Mode = Literal["structure", "surfaces"]
Arm = Literal["champion", "challenger"]
ProviderKey = Literal["leonardo", "stablediffusion", "local"]
Option = Annotated[str, StringConstraints(min_length=1, max_length=8)]


class Performance(BaseModel):
    sample_count: int = Field(description="Ratings recorded for this version.")
    avg_rating: float | None = Field(description="Mean rating (1-5); null with no samples.")


class CurrentVersion(BaseModel):
    version: str
    document: dict[str, Any] = Field(description="The full version document (prompts/schema.json).")
    performance: Performance


class VersionSummary(BaseModel):
    version: str
    parent_version: str | None
    created_by: str
    status: str
    created_at: datetime
    performance: Performance


class VersionList(BaseModel):
    versions: list[VersionSummary]


class VersionDetail(VersionSummary):
    reasoning: str
    promoted_at: datetime | None
    document: dict[str, Any]


class AssignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    experiment_id: str = Field(min_length=1, max_length=64)
    mode: Mode
    options: list[Option] = Field(default_factory=lambda: ["A", "B"], min_length=1, max_length=8)

    @field_validator("options")
    @classmethod
    def _distinct(cls, options: list[str]) -> list[str]:
        if len(set(options)) != len(options):
            raise ValueError("options must be distinct")
        return options


class PromptPair(BaseModel):
    prompt: str
    negative_prompt: str


class Assignment(BaseModel):
    option: str
    version: str
    arm: Arm
    prompts: dict[ProviderKey, PromptPair]


class AssignResponse(BaseModel):
    assignments: list[Assignment]


class ResultIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rating_id: str = Field(min_length=1, max_length=64)
    experiment_id: str = Field(min_length=1, max_length=64)
    option: str = Field(min_length=1, max_length=8)
    version: str = Field(min_length=1, max_length=32)
    mode: Mode
    rating: int = Field(ge=1, le=5)
    comments: str | None = None
    rater: str = Field(min_length=1, max_length=128)
    revision: int = Field(
        default=1, ge=1, description="A higher revision of a stored rating id replaces it."
    )


class ResultsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    results: list[ResultIn] = Field(min_length=1, max_length=1000)


class ResultsResponse(BaseModel):
    recorded: int = Field(description="Rows newly stored; ratings already known are ignored.")
    versions: dict[str, Performance] = Field(
        description="Performance of every version named in the request, after recording."
    )


# --- evolution, A/B tests, audit (additive; see api/evolution.py) -------------------


class AbTestOut(BaseModel):
    id: int
    champion: str
    challenger: str
    status: str = Field(description="running | promoted | rolled_back | stopped")
    started_at: datetime
    decided_at: datetime | None
    decision_reason: str | None
    n_pairs: int = Field(description="Experiments with both variants rated (at the last review).")
    mean_diff: float | None = Field(description="Mean rating(challenger) - rating(champion).")
    p_better: float | None = Field(description="Posterior P(challenger better).")
    p_worse: float | None
    monitor_status: str | None = Field(
        description="After a promotion: watching | passed | rolled_back | stopped.")
    monitor_decided_at: datetime | None
    monitor_p_degraded: float | None


class DecisionRuleOut(BaseModel):
    promote_probability: float
    rollback_probability: float
    min_pairs: int
    max_pairs: int
    looks: list[int]
    prior_pairs: float
    prior_sd: float
    prior_sd_weight: float
    monitor_min_samples: int
    monitor_max_samples: int
    monitor_rollback_probability: float


class AbTestList(BaseModel):
    tests: list[AbTestOut]
    rule: DecisionRuleOut


class EvolutionStatus(BaseModel):
    current_version: str
    total_samples: int
    evolve_every: int
    next_evolution_at_sample: int
    last_evolution: datetime | None
    versions_count: int
    best_rating: float | None = Field(
        default=None, description="Best mean rating of a version with enough samples.")
    evolution_engine: str = Field(default="offline", description="llm | offline")
    evolution_blocked: str | None = Field(
        default=None, description="Why no evolution can start now (Spanish), or null.")
    ab_test: AbTestOut | None = Field(default=None, description="The running A/B test.")
    monitor: AbTestOut | None = Field(
        default=None, description="The promoted test whose champion is being monitored.")


class EvolveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    actor: str = Field(default="admin", min_length=1, max_length=128)
    reason: str = Field(default="", max_length=1000)


class RunOut(BaseModel):
    id: int
    trigger: str
    status: str = Field(description="running | created | failed | skipped")
    parent_version: str | None
    version: str | None
    engine: str | None
    total_samples: int
    actor: str
    error: str | None
    details: dict[str, Any]
    started_at: datetime
    finished_at: datetime | None


class RunList(BaseModel):
    runs: list[RunOut]


class TransitionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    actor: str = Field(min_length=1, max_length=128, description="Who does it.")
    reason: str = Field(min_length=3, max_length=1000, description="Why (kept in the audit).")
    to: str | None = Field(
        default=None, description="Rollback only: the version to go back to (default: parent).")


class TransitionResponse(BaseModel):
    action: str
    active: str
    previous: str | None
    audit_id: int


class AuditOut(BaseModel):
    id: int
    action: str
    version: str | None
    from_version: str | None
    to_version: str | None
    actor: str
    reason: str
    details: dict[str, Any]
    created_at: datetime


class AuditList(BaseModel):
    entries: list[AuditOut]


class IssueOut(BaseModel):
    key: str
    label_es: str
    label_en: str
    count: int
    share: float
    mean_rating: float | None
    severity: float | None
    examples: list[str]


class IssueReportOut(BaseModel):
    version: str
    mode: str | None
    samples: int
    commented: int
    mean_rating: float | None
    issues: list[IssueOut]
    low_rated_comments: list[dict[str, Any]]
    unmatched_comments: list[str]


class RatingOut(BaseModel):
    rating: int
    comments: str | None
    mode: str
    option: str
    experiment_id: str
    rater: str
    created_at: datetime


class VersionRatings(BaseModel):
    version: str
    performance: Performance
    histogram: dict[str, int] = Field(description="Count per star, '1'..'5'.")
    by_mode: dict[str, Performance]
    recent: list[RatingOut]


class LineageEntry(VersionSummary):
    promoted_at: datetime | None
    reasoning: str
    changes: list[str]


class Lineage(BaseModel):
    versions: list[LineageEntry]
