"""Keeps the gateway's Prometheus gauges (outbox backlog, job queue) in step with its
database: counts are read every ``GAUGE_REFRESH_SECONDS`` by one background task, so
every replica reports the shared truth and no request path pays for it."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common import metrics
from services.common.db import utcnow
from services.common.errors import DATABASE_DOWN
from services.gateway.models import GenerationJob, OutboxMessage
from services.gateway.outbox import TARGETS, pending_counts, rejected_counts

log = logging.getLogger(__name__)

GAUGE_REFRESH_SECONDS = 15.0


async def refresh(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        pending = await pending_counts(session)
        rejected = await rejected_counts(session)
        oldest = dict((await session.execute(
            select(OutboxMessage.target, func.min(OutboxMessage.created_at))
            .where(OutboxMessage.delivered_at.is_(None), OutboxMessage.rejected_at.is_(None))
            .group_by(OutboxMessage.target))).all())
        jobs = dict((await session.execute(
            select(GenerationJob.status, func.count()).where(
                GenerationJob.status.in_(("queued", "running")))
            .group_by(GenerationJob.status))).all())
    now = utcnow()
    for target in TARGETS:
        since = oldest.get(target)
        metrics.set_outbox_state(
            target, pending=pending.get(target, 0), rejected=rejected.get(target, 0),
            oldest_pending_seconds=(now - since).total_seconds() if since else 0.0)
    metrics.set_job_queue_depth(queued=jobs.get("queued", 0), running=jobs.get("running", 0))


async def keep_refreshed(sessions: async_sessionmaker[AsyncSession],
                         stop: asyncio.Event) -> None:
    """Refresh the gauges until ``stop`` is set (never cut off mid-query)."""
    while not stop.is_set():
        try:
            await refresh(sessions)
        except DATABASE_DOWN:
            pass  # /readyz and the request handlers already say so
        except Exception:
            log.exception("could not refresh the outbox and job gauges")
        try:
            await asyncio.wait_for(stop.wait(), GAUGE_REFRESH_SECONDS)
        except TimeoutError:
            pass
