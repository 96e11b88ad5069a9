"""Corrections of saved ratings: undo right after saving, and edits from the history.

A correction never creates a second rating for a variant. It updates the rating row
in place, raises its ``revision`` and, in the same transaction, writes one outbox
row per learning service carrying the new revision. The optimizer, evolution and
reward services replace a lower revision of the same rating id, so the corrected
value is what they learn from, counted once.

Rules:

* Only the trainer who saved a rating (the signed-in user, ``rated_by``) may correct it.
* Undo is offered for :data:`UNDO_SECONDS` after saving; it reopens the experiment's
  form with the saved values, and the resubmission is a revision. Editing from the
  history page has no time limit.
* Stars may change to other stars, and "cannot judge" may become stars (that first
  reaches the services as revision > 1). Stars the services already learnt from
  cannot become "cannot judge": there is no way to un-learn them, so the page says so.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.db import utcnow
from services.gateway import audit
from services.gateway.context import Context
from services.gateway.errors import ExperimentNotFound, InvalidRequest, RatingRejected
from services.gateway.experiments import load_experiment
from services.gateway.ids import new_id
from services.gateway.models import Experiment, Image, Rating, Variant
from services.gateway.outbox import outbox_messages
from services.gateway.schemas import RateIn, RatingEditIn

UNDO_SECONDS = 30
# The undo button counts down in the page; the server allows for the round trip.
UNDO_GRACE_SECONDS = 5


@dataclass(frozen=True)
class Saved:
    """What one option of an experiment holds now (to refill the form)."""

    rating: int | None
    comments: str
    cannot_judge_reason: str | None


def undo_seconds_left(saved_at: datetime, now: datetime | None = None) -> int:
    """Whole seconds of the undo window left for a submission saved at ``saved_at``."""
    elapsed = ((now or utcnow()) - saved_at).total_seconds()
    return max(0, int(UNDO_SECONDS - elapsed))


def _not_yours() -> RatingRejected:
    return RatingRejected.because("not_yours")


async def own_rating(ctx: Context, rating_id: str, trainer: str) -> Rating:
    """The rating, if ``trainer`` saved it."""
    async with ctx.sessions() as session:
        rating = await session.get(Rating, rating_id)
    if rating is None:
        raise ExperimentNotFound.because("rating", rating=rating_id)
    if rating.rated_by != trainer.strip():
        raise _not_yours()
    return rating


async def saved_values(sessions: async_sessionmaker[AsyncSession], experiment_id: str,
                       rated_by: str, now: datetime | None = None) -> dict[str, Saved]:
    """The saved values of an experiment, for undo: only within the undo window and
    only for the trainer who saved them."""
    async with sessions() as session:
        ratings = list((await session.execute(
            select(Rating).where(Rating.experiment_id == experiment_id))).scalars())
    if not ratings:
        raise ExperimentNotFound.because("nothing_to_undo")
    if any(r.rated_by != rated_by for r in ratings):
        raise _not_yours()
    last = max((r.updated_at or r.created_at) for r in ratings)
    if (now or utcnow()) - last > timedelta(seconds=UNDO_SECONDS + UNDO_GRACE_SECONDS):
        raise RatingRejected.because("undo_expired", seconds=UNDO_SECONDS)
    return {r.option: Saved(r.rating, r.comments, r.cannot_judge_reason) for r in ratings}


def _apply(rating: Rating, stars: int | None, comments: str, reason: str | None) -> bool:
    """Change ``rating`` in place; True when the learning services must hear of it."""
    if rating.rating is not None and stars is None:
        raise RatingRejected.because("stars_to_cannot_judge", option=rating.option,
                                     stars=rating.rating)
    changed = (rating.rating, rating.comments, rating.cannot_judge_reason) != (
        stars, comments, reason)
    rating.rating, rating.comments, rating.cannot_judge_reason = stars, comments, reason
    if changed:
        rating.revision = (rating.revision or 1) + 1
        rating.updated_at = utcnow()
    return changed and stars is not None


async def revise_experiment(ctx: Context, body: RateIn, *, rater: str) -> list[str]:
    """Save a resubmitted form (after undo) as revisions; returns the rating ids that
    were delivered or queued. Options not rated before are saved as new ratings."""
    deliver: list[str] = []
    async with ctx.sessions() as session, session.begin():
        experiment = await load_experiment(session, body.experiment_id)
        by_option = {v.option: v for v in experiment.variants if v.option is not None}
        existing = {r.option: r for r in (await session.execute(
            select(Rating).where(Rating.experiment_id == experiment.id))).scalars()}
        if any(r.rated_by != rater for r in existing.values()):
            raise _not_yours()
        original = await session.get(Image, experiment.original_image_id)
        assert original is not None
        for item in body.ratings:
            variant = by_option.get(item.option)
            if variant is None or variant.image_id is None:
                raise InvalidRequest.because("option_not_rateable", option=item.option)
            rating = existing.get(item.option)
            if rating is None:
                rating = Rating(id=new_id("rat"), experiment_id=experiment.id,
                                variant_id=variant.id, option=item.option, rating=item.rating,
                                cannot_judge_reason=item.cannot_judge_reason,
                                comments=item.comments.strip(), rated_by=rater,
                                seconds_to_rate=body.seconds_to_rate)
                session.add(rating)
                await session.flush()
                send = item.rating is not None
            else:
                before = rating.rating
                send = _apply(rating, item.rating, item.comments.strip(),
                              item.cannot_judge_reason)
                await audit.record(session, rater, "rating_edited", rating.id, None,
                                   via="undo", before=before, after=rating.rating,
                                   revision=rating.revision)
                if body.seconds_to_rate is not None:
                    rating.seconds_to_rate = (rating.seconds_to_rate or 0) + body.seconds_to_rate
            if send:
                await _queue(session, rating, variant, experiment, original)
                deliver.append(rating.id)
        experiment.rated_at = experiment.rated_at or utcnow()
    await _deliver(ctx, deliver)
    return deliver


async def revise_rating(ctx: Context, rating_id: str, edit: RatingEditIn, editor: str) -> Rating:
    """Edit one saved rating (from the history page) as a new revision."""
    async with ctx.sessions() as session, session.begin():
        rating = await session.get(Rating, rating_id)
        if rating is None:
            raise ExperimentNotFound.because("rating", rating=rating_id)
        if rating.rated_by != editor.strip():
            raise _not_yours()
        variant = await session.get(Variant, rating.variant_id)
        experiment = await session.get(Experiment, rating.experiment_id)
        assert variant is not None and experiment is not None
        original = await session.get(Image, experiment.original_image_id)
        assert original is not None
        before = rating.rating
        send = _apply(rating, edit.rating, edit.comments.strip(), None)
        await audit.record(session, editor.strip(), "rating_edited", rating.id, None,
                           via="history", before=before, after=rating.rating,
                           revision=rating.revision)
        if send:
            await _queue(session, rating, variant, experiment, original)
    if send:
        await _deliver(ctx, [rating_id])
    return rating


async def _queue(session: AsyncSession, rating: Rating, variant: Variant,
                 experiment: Experiment, original: Image) -> None:
    assert variant.image_id is not None
    enhanced = await session.get(Image, variant.image_id)
    assert enhanced is not None
    session.add_all(outbox_messages(rating, variant, experiment, enhanced.blob_key,
                                    original.blob_key))


async def _deliver(ctx: Context, rating_ids: list[str]) -> None:
    if not rating_ids:
        return
    # As for a first rating: wait briefly for the optimizer, deliver the rest in the
    # background (each target's loop picks up its rows).
    acknowledged = ctx.outbox.deliver_soon("optimizer", rating_ids)
    ctx.outbox.notify()
    await asyncio.wait({acknowledged}, timeout=ctx.settings.rate_delivery_timeout_seconds)
