"""Training history: every rated experiment, filtered, sorted and paged; and the export.

Filters (all optional, combined with AND):

* ``date_from`` / ``date_to``: calendar days of the experiment's upload, inclusive,
  in the time zone ``tz`` (IANA name, the browser's; UTC by default);
* ``trainer``, ``provider``, ``prompt_version``: exact matches on a rating, its
  variant's provider and prompt version;
* ``mode``: the experiment's mode;
* ``rating_min`` / ``rating_max``: inclusive stars.

An experiment is listed when at least one of its ratings passes the rating-level
filters; the page then shows all of its options. The export lists exactly the
ratings that pass (one row per rating), with everything needed to retrain
elsewhere: ids, images, provider, parameters (native and normalised), prompts,
trainer, times, and the reward model's prediction when there was one.
"""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, ValidationInfo, field_validator
from sqlalchemy import and_, func, select
from sqlalchemy.orm import aliased

from services.common.parameter_space import DIMENSION_NAMES, from_native
from services.gateway.context import Context, image_url
from services.gateway.errors import InvalidRequest
from services.gateway.models import Experiment, Image, Rating, Variant

Sort = Literal["newest", "oldest", "rating_desc", "rating_asc"]


class HistoryFilters(BaseModel):
    """The filters shared by the history page, its API and the export."""

    date_from: date | None = None
    date_to: date | None = None
    tz: str = "UTC"
    trainer: str | None = Field(default=None, max_length=255)
    provider: str | None = Field(default=None, max_length=32)
    prompt_version: str | None = Field(default=None, max_length=32)
    mode: Literal["structure", "surfaces"] | None = None
    rating_min: int | None = Field(default=None, ge=1, le=5)
    rating_max: int | None = Field(default=None, ge=1, le=5)

    @field_validator("date_from", "date_to", "trainer", "provider", "prompt_version", "tz",
                     "mode", "rating_min", "rating_max", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str):
            value = value.strip()
            return value or ("UTC" if info.field_name == "tz" else None)
        return value

    @field_validator("tz", mode="after")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    def bounds(self) -> tuple[datetime | None, datetime | None]:
        """The UTC instants the date range covers (``date_to`` inclusive)."""
        zone = self.zone()
        start = (datetime.combine(self.date_from, time.min, zone).astimezone(UTC)
                 if self.date_from else None)
        end = (datetime.combine(self.date_to + timedelta(days=1), time.min, zone)
               .astimezone(UTC) if self.date_to else None)
        return start, end

    def query_string(self) -> str:
        from urllib.parse import urlencode

        values = {k: str(v) for k, v in self.model_dump().items()
                  if v is not None and not (k == "tz" and v == "UTC")}
        return urlencode(values)


def check_filters(filters: HistoryFilters) -> None:
    if (filters.rating_min is not None and filters.rating_max is not None
            and filters.rating_min > filters.rating_max):
        raise InvalidRequest.because("rating_range")
    if filters.date_from and filters.date_to and filters.date_from > filters.date_to:
        raise InvalidRequest.because("date_range")


def _rating_conditions(filters: HistoryFilters) -> list[Any]:
    conditions: list[Any] = []
    start, end = filters.bounds()
    if start is not None:
        conditions.append(Experiment.created_at >= start)
    if end is not None:
        conditions.append(Experiment.created_at < end)
    if filters.trainer:
        conditions.append(Rating.rated_by == filters.trainer)
    if filters.provider:
        conditions.append(Variant.provider == filters.provider)
    if filters.prompt_version:
        conditions.append(Variant.prompt_version == filters.prompt_version)
    if filters.mode:
        conditions.append(Experiment.mode == filters.mode)
    if filters.rating_min is not None:
        conditions.append(Rating.rating >= filters.rating_min)
    if filters.rating_max is not None:
        conditions.append(Rating.rating <= filters.rating_max)
    return conditions


# the page ---------------------------------------------------------------------------
class HistoryOption(BaseModel):
    option: str
    variant_id: str
    image_url: str | None
    provider: str
    provider_label: str
    parameters: dict[str, Any]
    prompt_version: str
    prompt_arm: str
    rating_id: str | None = None
    rating: int | None
    cannot_judge_reason: str | None = Field(
        default=None, description="Why the trainer could not judge it (no rating then).")
    comments: str | None
    rated_by: str | None
    rated_at: datetime | None
    predicted_rating: float | None


class HistoryExperiment(BaseModel):
    experiment_id: str
    created_at: datetime
    rated_at: datetime | None
    mode: str
    strategy: str
    repeat_of: str | None = Field(description="Set for a rater-quality repeat.")
    original_url: str
    seconds_to_rate: float | None = Field(
        description="From both images being ready to the ratings being saved.")
    options: list[HistoryOption]


class HistoryPage(BaseModel):
    total: int = Field(description="Experiments that match the filters.")
    ratings: int = Field(description="Ratings that match the filters.")
    page: int
    per_page: int
    pages: int
    sort: Sort
    experiments: list[HistoryExperiment]


async def history_page(ctx: Context, filters: HistoryFilters, sort: Sort = "newest",
                       page: int = 1, per_page: int = 20, lang: str = "es") -> HistoryPage:
    """One page of rated experiments that match ``filters``."""
    check_filters(filters)
    conditions = _rating_conditions(filters)
    grouped = (select(Rating.experiment_id.label("eid"),
                      func.max(Experiment.created_at).label("created"),
                      func.avg(Rating.rating).label("avg"))
               .join(Variant, Variant.id == Rating.variant_id)
               .join(Experiment, Experiment.id == Rating.experiment_id)
               .where(and_(True, *conditions)).group_by(Rating.experiment_id).subquery())
    order = {
        "newest": [grouped.c.created.desc(), grouped.c.eid],
        "oldest": [grouped.c.created.asc(), grouped.c.eid],
        "rating_desc": [grouped.c.avg.desc(), grouped.c.created.desc(), grouped.c.eid],
        "rating_asc": [grouped.c.avg.asc(), grouped.c.created.desc(), grouped.c.eid],
    }[sort]
    async with ctx.sessions() as session:
        total = int((await session.execute(select(func.count()).select_from(grouped)))
                    .scalar_one())
        ratings = int((await session.execute(
            select(func.count(Rating.id)).join(Variant, Variant.id == Rating.variant_id)
            .join(Experiment, Experiment.id == Rating.experiment_id)
            .where(and_(True, *conditions)))).scalar_one())
        pages = max(1, math.ceil(total / per_page))
        page = min(max(page, 1), pages)
        ids = list((await session.execute(
            select(grouped.c.eid).order_by(*order).limit(per_page)
            .offset((page - 1) * per_page))).scalars())
        experiments = {e.id: e for e in (await session.execute(
            select(Experiment).where(Experiment.id.in_(ids)))).scalars()}
        rating_rows = (await session.execute(
            select(Rating).where(Rating.experiment_id.in_(ids)))).scalars().all()
    by_variant = {r.variant_id: r for r in rating_rows}
    out = []
    for eid in ids:
        experiment = experiments[eid]
        shown = sorted((v for v in experiment.variants if v.option is not None),
                       key=lambda v: v.option or "")
        options = []
        for v in shown:
            r = by_variant.get(v.id)
            options.append(HistoryOption(
                option=v.option or "", variant_id=v.id,
                image_url=image_url(v.image_id) if v.image_id else None,
                provider=v.provider, provider_label=ctx.provider_label(v.provider, lang),
                parameters=v.parameters, prompt_version=v.prompt_version,
                prompt_arm=v.prompt_arm, rating_id=r.id if r else None,
                rating=r.rating if r else None,
                cannot_judge_reason=getattr(r, "cannot_judge_reason", None),
                comments=r.comments if r else None, rated_by=r.rated_by if r else None,
                rated_at=r.created_at if r else None, predicted_rating=v.predicted_rating))
        out.append(HistoryExperiment(
            experiment_id=experiment.id, created_at=experiment.created_at,
            rated_at=experiment.rated_at, mode=experiment.mode, strategy=experiment.strategy,
            repeat_of=experiment.repeat_of,
            original_url=image_url(experiment.original_image_id),
            seconds_to_rate=_seconds_to_rate(experiment, shown,
                                             [by_variant[v.id] for v in shown
                                              if v.id in by_variant]),
            options=options))
    return HistoryPage(total=total, ratings=ratings, page=page, per_page=per_page,
                       pages=pages, sort=sort, experiments=out)


def _seconds_to_rate(experiment: Experiment, shown: list[Variant],
                     ratings: list[Rating]) -> float | None:
    """The time the trainer spent, as the rating page measured it (``seconds_to_rate``
    on the rating, once that column exists); else from both images ready to saved."""
    measured = [m for r in ratings if (m := getattr(r, "seconds_to_rate", None)) is not None]
    if measured:
        return float(max(measured))
    finished = [v.finished_at for v in shown if v.finished_at is not None]
    if experiment.rated_at is None or not finished:
        return None
    return max(0.0, (experiment.rated_at - max(finished)).total_seconds())


class FilterChoices(BaseModel):
    trainers: list[str]
    providers: list[str]
    prompt_versions: list[str]


async def filter_choices(ctx: Context) -> FilterChoices:
    """The values the history filters can take (those present in the ratings)."""
    async with ctx.sessions() as session:
        trainers = (await session.execute(
            select(Rating.rated_by).distinct().order_by(Rating.rated_by))).scalars().all()
        rows = (await session.execute(
            select(Variant.provider, Variant.prompt_version).distinct()
            .join(Rating, Rating.variant_id == Variant.id))).all()
    return FilterChoices(trainers=list(trainers),
                         providers=sorted({p for p, _ in rows}),
                         prompt_versions=sorted({v for _, v in rows}))


# the export -------------------------------------------------------------------------
class ExportRow(BaseModel):
    """One rating, with what is needed to retrain a model elsewhere."""

    rating_id: str
    experiment_id: str
    experiment_created_at: datetime
    rated_at: datetime
    seconds_to_rate: float | None = Field(
        description="Time spent rating: measured by the page when available, else from "
        "both images ready to the rating saved.")
    mode: str
    project_id: str | None
    repeat_of_experiment: str | None
    option: str
    rating: int | None = Field(description="1–5 stars; null when the trainer could not judge.")
    cannot_judge_reason: str | None = None
    comments: str
    rated_by: str
    provider: str
    parameters: dict[str, Any] = Field(description="Provider-native parameters with api.")
    strength: float | None = Field(description="Normalised value (0.1–0.5).")
    guidance: float | None = Field(description="Normalised value (5–12).")
    structure: float | None = Field(description="Normalised value (0.7–0.99).")
    suggestion_source: str
    prompt_version: str
    prompt_arm: str
    prompt: str
    negative_prompt: str
    model: str | None
    original_image_id: str
    original_url: str
    original_sha256: str | None
    image_id: str | None
    image_url: str | None
    image_sha256: str | None
    predicted_rating: float | None
    predicted_std: float | None
    reward_model_version: str | None


class ExportJSON(BaseModel):
    filters: HistoryFilters
    count: int
    rows: list[ExportRow]


EXPORT_COLUMNS = list(ExportRow.model_fields)


async def export_rows(ctx: Context, filters: HistoryFilters) -> list[ExportRow]:
    """Every rating that passes ``filters``, oldest first."""
    check_filters(filters)
    original = aliased(Image)
    enhanced = aliased(Image)
    query = (select(Rating, Variant, Experiment, original.sha256, enhanced.sha256)
             .join(Variant, Variant.id == Rating.variant_id)
             .join(Experiment, Experiment.id == Rating.experiment_id)
             .join(original, original.id == Experiment.original_image_id)
             .outerjoin(enhanced, enhanced.id == Variant.image_id)
             .where(and_(True, *_rating_conditions(filters)))
             .order_by(Rating.created_at, Rating.id))
    async with ctx.sessions() as session:
        rows = (await session.execute(query)).all()
        finished: dict[str, datetime] = {}
        eids = list({e.id for _, _, e, _, _ in rows})
        for eid, done in (await session.execute(
                select(Variant.experiment_id, func.max(Variant.finished_at))
                .where(Variant.experiment_id.in_(eids), Variant.option.is_not(None))
                .group_by(Variant.experiment_id))).all():
            if done is not None:
                finished[eid] = done if done.tzinfo else done.replace(tzinfo=UTC)
    out = []
    for rating, variant, experiment, original_sha, enhanced_sha in rows:
        try:
            _, values = from_native(variant.parameters)
        except Exception:  # a parameter set from an older space: keep the native dict
            values = {}
        ready = finished.get(experiment.id)
        out.append(ExportRow(
            rating_id=rating.id, experiment_id=experiment.id,
            experiment_created_at=experiment.created_at, rated_at=rating.created_at,
            seconds_to_rate=(getattr(rating, "seconds_to_rate", None)
                             or (max(0.0, (rating.created_at - ready).total_seconds())
                                 if ready else None)),
            mode=experiment.mode, project_id=experiment.project_id,
            repeat_of_experiment=experiment.repeat_of, option=rating.option,
            rating=rating.rating, cannot_judge_reason=getattr(rating, "cannot_judge_reason", None),
            comments=rating.comments, rated_by=rating.rated_by,
            provider=variant.provider, parameters=variant.parameters,
            **{name: values.get(name) for name in DIMENSION_NAMES},
            suggestion_source=variant.suggestion_source, prompt_version=variant.prompt_version,
            prompt_arm=variant.prompt_arm, prompt=variant.prompt,
            negative_prompt=variant.negative_prompt, model=variant.model,
            original_image_id=experiment.original_image_id,
            original_url=image_url(experiment.original_image_id), original_sha256=original_sha,
            image_id=variant.image_id,
            image_url=image_url(variant.image_id) if variant.image_id else None,
            image_sha256=enhanced_sha, predicted_rating=variant.predicted_rating,
            predicted_std=variant.predicted_std,
            reward_model_version=variant.reward_model_version))
    return out


def to_csv(rows: list[ExportRow]) -> str:
    """RFC 4180 CSV with a header; ``parameters`` is a JSON object in its cell, times
    are ISO 8601 in UTC, empty cells are missing values."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        data = row.model_dump(mode="json")
        data["parameters"] = json.dumps(row.parameters, sort_keys=True)
        writer.writerow({k: "" if v is None else v for k, v in data.items()})
    return buffer.getvalue()
