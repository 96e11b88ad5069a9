"""Transactional outbox: ratings reach the optimizer, evolution and reward services.

When a rating is saved, the same transaction writes one outbox row per target
service (:func:`outbox_messages`, built with the typed messages of
:mod:`services.common.messages`, the same models the receivers validate with).
:class:`OutboxDeliverer` runs one loop per target, so a slow or absent service
never holds up the others' messages:

- each loop claims its due rows with a lease (two deliverers never send the same
  row at once), sends them (the optimizer and evolution take up to
  ``GATEWAY_OUTBOX_BATCH_SIZE`` per request, the reward service up to 32 images
  through ``/ml/observe_batch``), and marks them delivered;
- a service that cannot be reached or fails (5xx) is retried with the shared
  capped, jittered backoff, per row;
- a service that *refuses* a message (4xx) will refuse it again: the row becomes
  ``rejected`` with the reason, is counted on the status page, and is never sent
  again. A refused batch is split so one bad message cannot block its neighbours.

The receiving endpoints are idempotent by rating id, so a row that is delivered
twice (a crash between sending and marking) is still counted once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common import metrics
from services.common.background import stop_gracefully
from services.common.backoff import backoff_delay
from services.common.blobs import BlobStore
from services.common.db import is_postgres, utcnow
from services.common.errors import ServiceUnavailable
from services.common.http import SiblingRefused
from services.common.messages import RatingForEvolution, RatingForOptimizer, RatingForReward
from services.gateway.clients import ServiceClients
from services.gateway.models import Experiment, OutboxMessage, Rating, Variant
from services.gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

TARGETS = ("optimizer", "evolution", "reward")
REWARD_BATCH = 32
"""Images sent to the reward service in one ``/ml/observe_batch`` request (its maximum)."""


def outbox_messages(
    rating: Rating, variant: Variant, experiment: Experiment, enhanced_blob_key: str,
    original_blob_key: str | None = None,
) -> list[OutboxMessage]:
    """The three messages a saved rating produces (add them in the rating's transaction).

    Each carries the rating's ``revision``: a receiver that already holds the rating id
    replaces it when the revision is higher and ignores it otherwise. A rating the
    trainer could not judge (``rating`` None) produces no message.

    Raises:
        pydantic.ValidationError: the rating breaks a limit a receiver enforces.
    """
    if rating.rating is None:
        return []
    revision = rating.revision or 1
    optimizer = RatingForOptimizer(
        rating_id=rating.id, revision=revision, experiment_id=experiment.id,
        image_id=experiment.original_image_id, rater=rating.rated_by,
        parameters=variant.parameters, rating=rating.rating, mode=experiment.mode,  # type: ignore[arg-type]
        prompt_version=variant.prompt_version)
    evolution = RatingForEvolution(
        rating_id=rating.id, revision=revision, experiment_id=experiment.id,
        option=variant.option or "", version=variant.prompt_version,
        mode=experiment.mode, rating=rating.rating,  # type: ignore[arg-type]
        comments=rating.comments, rater=rating.rated_by)
    reward = RatingForReward(
        rating_id=rating.id, revision=revision, rating=rating.rating,
        experiment_id=experiment.id, option=variant.option, rater=rating.rated_by,
        variant_id=variant.id, prompt_version=variant.prompt_version,
        mode=experiment.mode)  # type: ignore[arg-type]
    payloads: dict[str, dict[str, Any]] = {
        "optimizer": {"results": [optimizer.model_dump(mode="json")]},
        "evolution": {"results": [evolution.model_dump(mode="json")]},
        "reward": {"form": {k: str(v) for k, v in reward.model_dump(mode="json").items()
                            if v is not None},
                   "blob_key": enhanced_blob_key, "original_blob_key": original_blob_key},
    }
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
        self._wakeups = {target: asyncio.Event() for target in TARGETS}
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[bool]] = set()
        self._stopping = False

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop(target), name=f"outbox-{target}")
                       for target in TARGETS]

    async def stop(self) -> None:
        """Finish the delivery passes in progress, then stop (see ``stop_gracefully``)."""
        self._stopping = True
        self.notify()
        await stop_gracefully([*self._tasks, *self._background],
                              self.settings.shutdown_grace_seconds)

    def notify(self) -> None:
        for event in self._wakeups.values():
            event.set()

    async def _loop(self, target: str) -> None:
        failures = 0
        while not self._stopping:
            try:
                while await self.deliver_due(target) and not self._stopping:
                    pass  # a full batch went out: there may be more
                failures = 0
            except (DBAPIError, OSError) as exc:
                # The database is unreachable: say so once, then back off quietly.
                failures += 1
                if failures == 1:
                    log.warning("outbox %s: the database is not answering (%s); "
                                "retrying quietly", target, type(exc).__name__)
            except Exception:
                log.exception("outbox %s: delivery pass failed", target)
            wakeup = self._wakeups[target]
            if self._stopping:
                break
            wakeup.clear()
            wait = (backoff_delay(failures, base=self.settings.outbox_poll_seconds,
                                  cap=self.settings.outbox_max_backoff_seconds)
                    if failures else self.settings.outbox_poll_seconds)
            try:
                await asyncio.wait_for(wakeup.wait(), wait)
            except TimeoutError:
                pass

    async def deliver_due(self, target: str, rating_ids: Sequence[str] | None = None) -> bool:
        """Send one batch of ``target``'s due messages (only ``rating_ids``' if given).

        Returns True when a full batch was claimed (call again: more may be due).
        """
        size = self.settings.outbox_batch_size if target != "reward" else REWARD_BATCH
        batch = await self._claim(target, rating_ids, size)
        if batch:
            await self._send_batch(target, batch)
        return len(batch) == size

    def deliver_soon(self, target: str, rating_ids: Sequence[str]) -> asyncio.Task[bool]:
        """:meth:`deliver_now` as a task the caller may wait for, or not."""
        task = asyncio.create_task(self.deliver_now(target, list(rating_ids)))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def deliver_now(self, target: str, rating_ids: Sequence[str]) -> bool:
        """Deliver these ratings' messages to ``target`` now; True when all are delivered."""
        await self.deliver_due(target, rating_ids)
        async with self.sessions() as session:
            left = (await session.execute(select(func.count(OutboxMessage.id)).where(
                OutboxMessage.target == target, OutboxMessage.rating_id.in_(rating_ids),
                OutboxMessage.delivered_at.is_(None)))).scalar_one()
        return left == 0

    async def _claim(self, target: str, rating_ids: Sequence[str] | None, limit: int
                     ) -> list[OutboxMessage]:
        now = utcnow()
        M = OutboxMessage
        due = select(M.id).where(
            M.target == target, M.delivered_at.is_(None), M.rejected_at.is_(None),
            M.next_attempt_at <= now,
            (M.lease_expires_at.is_(None)) | (M.lease_expires_at < now),
        )
        if rating_ids is not None:
            due = due.where(M.rating_id.in_(rating_ids))
        due = due.order_by(M.id).limit(limit)
        if self._postgres:
            due = due.with_for_update(skip_locked=True)
        lease = timedelta(seconds=self.settings.outbox_lease_seconds)
        async with self.sessions() as session, session.begin():
            claimed = list((await session.execute(
                update(M).where(M.id.in_(due.scalar_subquery()))
                .values(lease_expires_at=now + lease)
                .returning(M.id))).scalars())
            if not claimed:
                return []
            rows = (await session.execute(select(M).where(M.id.in_(claimed)))).scalars()
            return sorted(rows, key=lambda m: m.id)

    async def _send_batch(self, target: str, batch: list[OutboxMessage]) -> None:
        if target == "reward" and len(batch) == 1:
            await self._send_one(target, batch[0])
            return
        try:
            if target == "reward":
                await self._post_observations(batch)
                return
            await self._post_results(target, batch)
        except SiblingRefused as refused:
            if len(batch) == 1:
                await self._reject(batch, refused)
                return
            # Find the message(s) it refuses without holding back the others.
            for message in batch:
                await self._send_one(target, message)
            return
        except (ServiceUnavailable, httpx.HTTPError, OSError) as exc:
            await self._reschedule(batch, exc)
            return
        await self._mark_delivered(batch)

    async def _send_one(self, target: str, message: OutboxMessage) -> None:
        try:
            if target == "reward":
                await self._post_observation(message)
            else:
                await self._post_results(target, [message])
        except SiblingRefused as refused:
            await self._reject([message], refused)
        except (ServiceUnavailable, httpx.HTTPError, OSError) as exc:
            await self._reschedule([message], exc)
        else:
            await self._mark_delivered([message])

    async def _post_results(self, target: str, batch: list[OutboxMessage]) -> None:
        results = [item for m in batch for item in m.payload["results"]]
        path = "/ml/update_model" if target == "optimizer" else "/prompts/results"
        client = self.clients.optimizer if target == "optimizer" else self.clients.evolution
        await client.post(path, json={"results": results})

    async def _post_observations(self, batch: list[OutboxMessage]) -> None:
        """Several labelled images in one ``/ml/observe_batch`` call; the reward service
        answers per item, so a refused image is rejected and the others delivered."""
        items: list[dict[str, Any]] = []
        files: list[tuple[str, tuple[str, bytes, str]]] = []
        originals: list[str] = []
        for message in batch:
            payload: dict[str, Any] = message.payload
            item: dict[str, Any] = dict(payload["form"])
            for number in ("rating", "revision"):
                if number in item:
                    item[number] = int(item[number])
            files.append(("images", (f"{message.rating_id}.jpg",
                                     await self.blobs.get(payload["blob_key"]), "image/jpeg")))
            if payload.get("original_blob_key"):
                if payload["original_blob_key"] not in originals:
                    originals.append(payload["original_blob_key"])
                item["original"] = originals.index(payload["original_blob_key"])
            items.append(item)
        for key in originals:
            files.append(("originals", ("original.jpg", await self.blobs.get(key), "image/jpeg")))
        answer = await self.clients.reward.post(
            "/ml/observe_batch", data={"observations": json.dumps(items)}, files=files)
        outcome = {int(r["index"]): r for r in answer["results"]}
        delivered = [m for i, m in enumerate(batch)
                     if outcome.get(i, {}).get("status") in ("stored", "duplicate")]
        if delivered:
            await self._mark_delivered(delivered)
        for i, message in enumerate(batch):
            result = outcome.get(i)
            if result is None:
                await self._reschedule([message], RuntimeError("missing from the answer"))
            elif result.get("status") == "rejected":
                error = result.get("error") or {}
                await self._reject([message], SiblingRefused("reward", 422, {
                    "detail": error.get("message"), "error": error}))

    async def _post_observation(self, message: OutboxMessage) -> None:
        payload: dict[str, Any] = message.payload
        files = {"image": ("variant.jpg", await self.blobs.get(payload["blob_key"]),
                           "image/jpeg")}
        if payload.get("original_blob_key"):  # for structure-preservation features
            files["original"] = ("original.jpg",
                                 await self.blobs.get(payload["original_blob_key"]),
                                 "image/jpeg")
        await self.clients.reward.post("/ml/observe", data=payload["form"], files=files)

    async def _mark_delivered(self, batch: list[OutboxMessage]) -> None:
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(OutboxMessage).where(OutboxMessage.id.in_([m.id for m in batch]))
                .values(delivered_at=utcnow(), lease_expires_at=None,
                        attempts=OutboxMessage.attempts + 1, last_error=None))
        metrics.count_outbox_delivered(batch[0].target, len(batch))
        log.info("delivered %d rating(s) to %s", len(batch), batch[0].target)

    async def _reject(self, batch: list[OutboxMessage], refused: SiblingRefused) -> None:
        for message in batch:
            log.error("rating %s rejected by %s (HTTP %d, %s): %s; it will not be sent again",
                      message.rating_id, message.target, refused.status_code, refused.code,
                      refused.message_en)
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(OutboxMessage).where(OutboxMessage.id.in_([m.id for m in batch]))
                .values(rejected_at=utcnow(), lease_expires_at=None,
                        attempts=OutboxMessage.attempts + 1,
                        last_error=f"HTTP {refused.status_code} {refused.code}: "
                                   f"{refused.message_en}"[:1000]))

    async def _reschedule(self, batch: list[OutboxMessage], exc: Exception) -> None:
        async with self.sessions() as session, session.begin():
            for message in batch:
                attempts = message.attempts + 1
                delay = backoff_delay(attempts, base=1.0,
                                      cap=self.settings.outbox_max_backoff_seconds)
                await session.execute(
                    update(OutboxMessage).where(OutboxMessage.id == message.id)
                    .values(attempts=attempts, lease_expires_at=None,
                            next_attempt_at=utcnow() + timedelta(seconds=delay),
                            last_error=str(exc)[:1000]))
        log.warning("%d rating(s) not delivered to %s (%s); retrying with backoff",
                    len(batch), batch[0].target, exc)


async def pending_counts(session: AsyncSession) -> dict[str, int]:
    """Messages still to be delivered, per target (shown on the status page)."""
    rows = await session.execute(
        select(OutboxMessage.target, func.count()).where(
            OutboxMessage.delivered_at.is_(None), OutboxMessage.rejected_at.is_(None))
        .group_by(OutboxMessage.target))
    return {target: count for target, count in rows.all()}


async def rejected_counts(session: AsyncSession) -> dict[str, int]:
    """Messages a receiver refused for good, per target."""
    rows = await session.execute(
        select(OutboxMessage.target, func.count()).where(OutboxMessage.rejected_at.is_not(None))
        .group_by(OutboxMessage.target))
    return {target: count for target, count in rows.all()}
