"""Experiments generated but not rated yet: the trainer's "pendientes" list.

Nothing a trainer started is lost when she reloads, switches language or leaves:
each unrated experiment whose variants are still generating or ready to rate is
listed, newest first, and reopens in the rating page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.gateway.models import Experiment

FINISHED = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class Pending:
    experiment_id: str
    created_at: datetime
    mode: str
    status: str  # generating | ready
    original_url: str


async def pending_experiments(session: AsyncSession, trainer: str, limit: int = 8
                              ) -> list[Pending]:
    """Unrated experiments ``trainer`` uploaded (or that came through the API) that can
    still be rated (at least one variant not failed)."""
    rows = (await session.execute(
        select(Experiment).where(Experiment.rated_at.is_(None),
                                 or_(Experiment.created_by == trainer,
                                     Experiment.created_by.is_(None)))
        .order_by(Experiment.created_at.desc()).limit(limit * 4))).scalars()
    found: list[Pending] = []
    for experiment in rows:
        shown = [v for v in experiment.variants if v.option is not None]
        candidates = shown or list(experiment.variants)
        if candidates and all(v.status in ("failed", "cancelled") for v in candidates):
            continue
        ready = bool(shown) and all(v.status in FINISHED for v in shown)
        found.append(Pending(experiment.id, experiment.created_at, experiment.mode,
                             "ready" if ready else "generating",
                             f"/images/{experiment.original_image_id}"))
        if len(found) == limit:
            break
    return found
