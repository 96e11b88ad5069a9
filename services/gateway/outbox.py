"""Transactional outbox: ratings reach the optimizer, evolution and reward services.

When a rating is saved, the same transaction writes one outbox row per target
service (:func:`outbox_messages`). :class:`OutboxDeliverer` posts due rows with a
lease (so two deliverers never send the same row at once), marks them delivered,
and on failure schedules the next attempt with exponential backoff and jitter.
The receiving endpoints are idempotent by rating id, so a row that is delivered
twice (a crash between sending and marking) is still counted once.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.backoff import backoff_delay
from services.common.db import is_postgres, utcnow
from services.common.errors import ServiceUnavailable
from services.common.http import SiblingRefused
from services.gateway.clients import ServiceClients
from services.gateway.models import Experiment, OutboxMessage, Rating, Variant
from services.gateway.settings import GatewaySettings
from services.gateway.storage import BlobStore

log = logging.getLogger(__name__)

TARGETS = ("optimizer", "evolution", "reward")
LEASE_SECONDS = 60.0


def outbox_messages(
    rating: Rating, variant: Variant, experiment: Experiment, enhanced_blob_key: str,
    original_blob_key: str | None = None,
) -> list[OutboxMessage]:
    """The three messages a saved rating produces (add them in the rating's transaction).

    Each carries the rating's ``revision``: a receiver that already holds the rating id
    replaces it when the revision is higher and ignores it otherwise. A rating the
    trainer could not judge (``rating`` None) produces no message.
    """
    if rating.rating is None:
        return []
    revision = rating.revision or 1
    optimizer = {"results": [{
        "rating_id": rating.id, "revision": revision, "experiment_id": experiment.id,
        "image_id": experiment.original_image_id, "rater": rating.rated_by,
        "parameters": variant.parameters, "rating": rating.rating,
        "mode": experiment.mode, "prompt_version": variant.prompt_version,
    }]}
    evolution = {"results": [{
        "rating_id": rating.id, "revision": revision, "experiment_id": experiment.id,
        "option": variant.option, "version": variant.prompt_version, "mode": experiment.mode,
        "rating": rating.rating,
        "comments": rating.comments, "rater": rating.rated_by,
    }]}
    reward = {"form": {
        "rating_id": rating.id, "revision": str(revision), "rating": str(rating.rating),
        "experiment_id": experiment.id,
        "option": variant.option, "rater": rating.rated_by, "variant_id": variant.id,
        "prompt_version": variant.prompt_version, "mode": experiment.mode,
    }, "blob_key": enhanced_blob_key, "original_blob_key": original_blob_key}
    payloads = {"optimizer": optimizer, "evolution": evolution, "reward": reward}
    return [OutboxMessage(rating_id=rating.id, target=t, revision=revision, payload=payloads[t])
            for t in TARGETS]


class OutboxDeliverer:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clients: ServiceClients,
                 blobs: BlobStore, settings: GatewaySettings) -> None:
        self.sessions = sessions
        self.clients = clients
        self.blobs = blobs
        self.settings = settings
        self._postgres = is_postgres(settings.database_url)
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="outbox-deliverer")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def notify(self) -> None:
        self._wakeup.set()

    async def _loop(self) -> None:
        while True:
            try:
                await self.deliver_due()
            except Exception:
                log.exception("outbox delivery pass failed")
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), self.settings.outbox_poll_seconds)
            except TimeoutError:
                pass

    async def deliver_due(self, rating_ids: list[str] | None = None, limit: int = 50
                          ) -> dict[str, bool]:
        """Deliver due messages (optionally only those of ``rating_ids``).

        Returns ``{target: all_delivered}`` for the targets touched in this pass.
        """
        outcome: dict[str, bool] = {}
        for _ in range(limit):
            message = await self._claim(rating_ids)
            if message is None:
                break
            ok = await self._deliver(message)
            outcome[message.target] = outcome.get(message.target, True) and ok
        return outcome

    async def _claim(self, rating_ids: list[str] | None) -> OutboxMessage | None:
        now = utcnow()
        M = OutboxMessage
        candidate = select(M.id).where(
            M.delivered_at.is_(None),
            M.next_attempt_at <= now,
            or_(M.lease_expires_at.is_(None), M.lease_expires_at < now),
        )
        if rating_ids is not None:
            candidate = candidate.where(M.rating_id.in_(rating_ids))
        candidate = candidate.order_by(M.id).limit(1)
        if self._postgres:
            candidate = candidate.with_for_update(skip_locked=True)
        async with self.sessions() as session, session.begin():
            claimed_id = (await session.execute(
                update(M)
                .where(and_(M.id == candidate.scalar_subquery()))
                .values(lease_expires_at=now + timedelta(seconds=LEASE_SECONDS))
                .returning(M.id)
            )).scalar_one_or_none()
            if claimed_id is None:
                return None
            return await session.get(M, claimed_id)

    async def _send(self, message: OutboxMessage) -> None:
        payload: dict[str, Any] = message.payload
        if message.target == "optimizer":
            await self.clients.optimizer.post("/ml/update_model", json=payload)
        elif message.target == "evolution":
            await self.clients.evolution.post("/prompts/results", json=payload)
        elif message.target == "reward":
            files = {"image": ("variant.jpg", await self.blobs.get(payload["blob_key"]),
                               "image/jpeg")}
            if payload.get("original_blob_key"):  # for structure-preservation features
                files["original"] = ("original.jpg",
                                     await self.blobs.get(payload["original_blob_key"]),
                                     "image/jpeg")
            await self.clients.reward.post("/ml/observe", data=payload["form"], files=files)
        else:
            raise ValueError(f"unknown outbox target {message.target!r}")

    async def _deliver(self, message: OutboxMessage) -> bool:
        try:
            await self._send(message)
        except (ServiceUnavailable, SiblingRefused, httpx.HTTPError, OSError) as exc:
            await self._reschedule(message, exc)
            return False
        async with self.sessions() as session, session.begin():
            await session.execute(update(OutboxMessage).where(OutboxMessage.id == message.id)
                                  .values(delivered_at=utcnow(), lease_expires_at=None,
                                          attempts=message.attempts + 1, last_error=None))
        log.info("delivered rating %s to %s", message.rating_id, message.target)
        return True

    async def _reschedule(self, message: OutboxMessage, exc: Exception) -> None:
        attempts = message.attempts + 1
        delay = backoff_delay(attempts, base=1.0, cap=self.settings.outbox_max_backoff_seconds)
        rejected = isinstance(exc, SiblingRefused)
        level = logging.ERROR if rejected else logging.WARNING
        log.log(level, "rating %s not delivered to %s (attempt %d, next in %.1fs): %s",
                message.rating_id, message.target, attempts, delay, exc)
        async with self.sessions() as session, session.begin():
            await session.execute(update(OutboxMessage).where(OutboxMessage.id == message.id)
                                  .values(attempts=attempts, lease_expires_at=None,
                                          next_attempt_at=utcnow() + timedelta(seconds=delay),
                                          last_error=str(exc)[:1000]))


async def pending_counts(session: AsyncSession) -> dict[str, int]:
    """Undelivered messages per target (shown on the status panel)."""
    from sqlalchemy import func

    rows = await session.execute(
        select(OutboxMessage.target, func.count()).where(OutboxMessage.delivered_at.is_(None))
        .group_by(OutboxMessage.target)
    )
    return {target: count for target, count in rows.all()}
