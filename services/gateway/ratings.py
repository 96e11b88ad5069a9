"""Ratings: save a trainer's stars and comments, and hand them to the learning services.

A rating and one outbox row per learning service are written in one transaction,
so a rating is never saved without its deliveries (nor the reverse). Delivery is
then tried at once, within a short wait, and kept up in the background by
:class:`services.gateway.outbox.OutboxDeliverer`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import utcnow
from services.gateway.context import Context
from services.gateway.errors import InvalidRequest, RatingRejected
from services.gateway.experiments import load_experiment
from services.gateway.ids import new_id
from services.gateway.models import Image, Rating
from services.gateway.outbox import outbox_messages
from services.gateway.schemas import RateIn, RateOut
from services.gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

async def rating_totals(session: AsyncSession) -> tuple[int, float | None]:
    # Stars only: a "cannot judge" rating has none and is not a sample.
    count, best = (await session.execute(select(func.count(Rating.rating),
                                                func.max(Rating.rating)))).one()
    return int(count), (float(best) if best is not None else None)


def phase1_status(settings: GatewaySettings, samples: int, best: float | None,
                  optimizer: dict[str, Any] | None) -> tuple[bool, str | None]:
    """Phase 1 is complete by the seeds' rule (50 samples, or a best rating of at least
    4.0) or when the optimizer says so (it also knows about an administrator's manual
    stop). Returns (complete, reason)."""
    if optimizer and optimizer.get("phase_1_complete"):
        return True, optimizer.get("phase_1_reason")
    if samples >= settings.phase1_max_samples:
        return True, "samples"
    if best is not None and best >= settings.phase1_target_rating:
        return True, "best_rating"
    return False, None


async def rate_experiment(ctx: Context, body: RateIn, *, rater: str) -> RateOut:
    """Save the trainer's ratings and their outbox rows in one transaction, then try to
    deliver them at once (the outbox keeps retrying in the background if that fails)."""
    options = [r.option for r in body.ratings]
    if len(set(options)) != len(options):
        raise InvalidRequest.because("option_twice")
    rating_ids: list[str] = []
    try:
        async with ctx.sessions() as session, session.begin():
            experiment = await load_experiment(session, body.experiment_id)
            by_option = {v.option: v for v in experiment.variants if v.option is not None}
            original = await session.get(Image, experiment.original_image_id)
            assert original is not None
            already = set((await session.execute(
                select(Rating.option).where(Rating.experiment_id == experiment.id))).scalars())
            for item in body.ratings:
                variant = by_option.get(item.option)
                if variant is None:
                    raise InvalidRequest.because("no_such_option", option=item.option)
                if item.option in already:
                    raise RatingRejected.because("already_rated", option=item.option)
                if variant.status != "succeeded" or variant.image_id is None:
                    raise RatingRejected.because("no_image", option=item.option,
                                                 status=variant.status)
                enhanced = await session.get(Image, variant.image_id)
                assert enhanced is not None
                rating = Rating(id=new_id("rat"), experiment_id=experiment.id,
                                variant_id=variant.id, option=item.option, rating=item.rating,
                                cannot_judge_reason=item.cannot_judge_reason,
                                comments=item.comments.strip(), rated_by=rater,
                                seconds_to_rate=body.seconds_to_rate)
                session.add(rating)
                await session.flush()
                session.add_all(outbox_messages(rating, variant, experiment, enhanced.blob_key,
                                                original.blob_key))
                rating_ids.append(rating.id)
            experiment.rated_at = utcnow()
    except IntegrityError as exc:
        raise RatingRejected.because("duplicate") from exc

    # Answer as soon as the rating is safe; wait only briefly for the optimizer's
    # acknowledgement so `ml_updated` keeps its meaning. Delivery goes on regardless.
    acknowledged = ctx.outbox.deliver_soon("optimizer", rating_ids)
    ctx.outbox.notify()
    done, _ = await asyncio.wait({acknowledged}, timeout=ctx.settings.rate_delivery_timeout_seconds)
    ml_updated = bool(acknowledged in done and not acknowledged.exception()
                      and acknowledged.result())
    deliveries = {"optimizer": ml_updated}

    async with ctx.sessions() as session:
        samples, best = await rating_totals(session)
    optimizer = ctx.clients.last_status.get("optimizer")
    return RateOut(
        success=True,
        message="Puntuaciones guardadas" + ("" if ml_updated else
                                            "; el optimizador las recibirá en cuanto responda"),
        ml_updated=ml_updated, current_best_rating=best, samples_collected=samples,
        phase_1_complete=phase1_status(ctx.settings, samples, best, optimizer)[0],
        rating_ids=rating_ids, deliveries=deliveries)
