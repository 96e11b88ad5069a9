"""The rater-quality report: agreement on repeated images and each trainer's bias.

Reads every rating of an image that was rated more than once (normally because of a
:mod:`~services.gateway.repeats` repeat) and hands them to
:mod:`~services.gateway.agreement`. Each trainer's leniency comes from the
optimizer, which estimates it jointly with its Gaussian process (``model.
trainer_bias`` of ``/ml/status``, in stars; negative = stricter); when the optimizer
is down or has not fitted its model yet, the report says so instead of guessing.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import func, select

from services.common.errors import ServiceUnavailable
from services.gateway import agreement
from services.gateway.agreement import RatingRecord
from services.gateway.context import Context
from services.gateway.models import Experiment, Rating, Variant

log = logging.getLogger(__name__)


class Figures(BaseModel):
    pairs: int
    exact: float
    within_one: float
    mean_abs_diff: float


class TrainerOut(BaseModel):
    trainer: str
    ratings: int = Field(description="All ratings this trainer gave.")
    repeats: int = Field(description="Ratings this trainer gave to repeats.")
    consistency: Figures | None = Field(
        description="Agreement with themself on images they rated more than once.")
    bias: float | None = Field(
        description="Leniency in stars as the optimizer estimates it (negative = stricter).")


class PairOut(BaseModel):
    first: str
    second: str
    units: int
    figures: Figures


class TrendOut(BaseModel):
    at: datetime | None
    units: int
    alpha: float | None


class QualityReport(BaseModel):
    repeat_share: float = Field(description="Configured share of repeats after a rating.")
    repeats: int = Field(description="Repeat experiments created.")
    repeat_ratings: int
    units: int = Field(description="Images with two or more ratings.")
    alpha: float | None = Field(description="Krippendorff's alpha, ordinal, over those images.")
    verdict: str | None = Field(description="reliable (≥ 0.8) | acceptable | review (< 0.667).")
    trainers: list[TrainerOut]
    pairs: list[PairOut]
    trend: list[TrendOut]
    bias_available: bool = Field(description="Whether the optimizer reported trainer biases.")


def _figures(f: agreement.PairFigures | None) -> Figures | None:
    if f is None:
        return None
    return Figures(pairs=f.pairs, exact=f.exact, within_one=f.within_one,
                   mean_abs_diff=f.mean_abs_diff)


async def _trainer_bias(ctx: Context) -> dict[str, float] | None:
    try:
        status: dict[str, Any] = await asyncio.wait_for(
            ctx.clients.optimizer_status(sorted(ctx.providers)), 5.0)
    except (ServiceUnavailable, TimeoutError, OSError) as exc:
        log.info("rater quality: optimizer unavailable: %s", exc)
        return None
    except Exception:
        log.exception("rater quality: unexpected optimizer answer")
        return None
    bias = (status.get("model") or {}).get("trainer_bias")
    return {str(k): float(v) for k, v in bias.items()} if isinstance(bias, dict) else None


async def load_records(ctx: Context) -> list[RatingRecord]:
    """Every rating of a generated image that was rated at least twice."""
    async with ctx.sessions() as session:
        repeated = (select(Variant.image_id).join(Rating, Rating.variant_id == Variant.id)
                    .where(Variant.image_id.is_not(None), Rating.rating.is_not(None))
                    .group_by(Variant.image_id)
                    .having(func.count(Rating.id) >= 2)).scalar_subquery()
        rows = (await session.execute(
            select(Variant.image_id, Rating.rated_by, Rating.rating, Rating.created_at,
                   Variant.repeat_of)
            .join(Rating, Rating.variant_id == Variant.id)
            .where(Variant.image_id.in_(repeated), Rating.rating.is_not(None))
            .order_by(Rating.created_at, Rating.id))).all()
    return [RatingRecord(unit=str(image), trainer=who, rating=int(value), at=at,
                         repeat=repeat_of is not None)
            for image, who, value, at, repeat_of in rows if value is not None]


async def quality_report(ctx: Context) -> QualityReport:
    records, bias = await asyncio.gather(load_records(ctx), _trainer_bias(ctx))
    async with ctx.sessions() as session:
        per_trainer = dict((await session.execute(
            select(Rating.rated_by, func.count(Rating.id)).group_by(Rating.rated_by))).all())
        repeat_per_trainer = dict((await session.execute(
            select(Rating.rated_by, func.count(Rating.id))
            .join(Experiment, Experiment.id == Rating.experiment_id)
            .where(Experiment.repeat_of.is_not(None)).group_by(Rating.rated_by))).all())
        repeats = int((await session.execute(
            select(func.count(Experiment.id)).where(Experiment.repeat_of.is_not(None))
        )).scalar_one())
    alpha = agreement.krippendorff_alpha(records)
    consistency = agreement.trainer_consistency(records)
    trainers = [
        TrainerOut(trainer=t, ratings=int(n), repeats=int(repeat_per_trainer.get(t, 0)),
                   consistency=_figures(consistency.get(t)),
                   bias=(bias or {}).get(t))
        for t, n in sorted(per_trainer.items())
    ]
    return QualityReport(
        repeat_share=ctx.settings.repeat_share, repeats=repeats,
        repeat_ratings=sum(int(v) for v in repeat_per_trainer.values()),
        units=agreement.pairable_units(records), alpha=alpha,
        verdict=agreement.verdict(alpha), trainers=trainers,
        pairs=[PairOut(first=p.first, second=p.second, units=p.units,
                       figures=Figures(pairs=p.figures.pairs, exact=p.figures.exact,
                                       within_one=p.figures.within_one,
                                       mean_abs_diff=p.figures.mean_abs_diff))
               for p in agreement.pairwise_agreement(records)],
        trend=[TrendOut(at=p.at, units=p.units, alpha=p.alpha)
               for p in agreement.alpha_trend(records)],
        bias_available=bias is not None)
