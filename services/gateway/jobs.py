"""Durable generation jobs and the async workers that run them.

Every variant has one row in ``generation_jobs``. Workers inside the gateway claim
a job by taking a *lease* (owner + expiry) in one atomic statement: on PostgreSQL
the candidate row is locked with ``FOR UPDATE SKIP LOCKED`` so replicas never
block each other; on SQLite the single ``UPDATE … RETURNING`` runs under the
database's writer lock, which gives the same guarantee. A running job whose lease
expired (its worker died) is claimed again. While a worker runs a job, a heartbeat
renews the lease every ``job_heartbeat_seconds``, so the lease can be short
(``job_lease_seconds``) and a crashed worker's job is resumed soon; a variant taken
over that way shows the stage ``resuming`` until it ends. Results are written under
a key derived from the variant id and committed only by the lease holder, so a
variant is never generated into two images.

States: queued → running → succeeded | failed | cancelled (running → queued again
on a retryable error, with backoff).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common import metrics
from services.common.background import stop_gracefully
from services.common.backoff import backoff_delay
from services.common.blobs import BlobStore
from services.common.db import is_postgres, utcnow
from services.gateway.errors import ProviderError
from services.gateway.ids import new_id
from services.gateway.models import Experiment, GenerationJob, Image, Variant
from services.gateway.providers import GenerationRequest, GenerationResult, Provider
from services.gateway.providers._http import ProviderRateLimited
from services.gateway.providers.messages import provider_error
from services.gateway.settings import GatewaySettings

log = logging.getLogger(__name__)


@dataclass
class _Beat:
    """A running job's heartbeat: asked to stop, and whether it is renewing right now."""

    stopped: bool = False
    renewing: bool = False


@dataclass(frozen=True)
class ClaimedJob:
    id: str
    variant_id: str
    attempts: int
    max_attempts: int
    owner: str


class JobRunner:
    """Claims and runs generation jobs with ``settings.generation_workers`` tasks.

    ``clock`` (aware UTC now) dates leases and ``sleep`` spaces heartbeats; tests pass
    their own to move time without waiting.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        blobs: BlobStore,
        providers: dict[str, Provider],
        settings: GatewaySettings,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.sessions = sessions
        self.blobs = blobs
        self.providers = providers
        self.settings = settings
        self.clock = clock
        self.sleep = sleep
        self.owner_prefix = f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._postgres = is_postgres(settings.database_url)
        self.on_finished: Callable[[str], Awaitable[None]] | None = None

    # lifecycle ---------------------------------------------------------------
    def start(self) -> None:
        for n in range(self.settings.generation_workers):
            self._tasks.append(asyncio.create_task(self._worker(n), name=f"generation-worker-{n}"))

    async def stop(self) -> None:
        """Let each worker finish the job in hand, then stop (see ``stop_gracefully``)."""
        self._stopping = True
        self._wakeup.set()
        await stop_gracefully(self._tasks, self.settings.shutdown_grace_seconds)
        self._tasks.clear()

    def notify(self) -> None:
        """Wake idle workers: new work was committed."""
        self._wakeup.set()

    async def _worker(self, n: int) -> None:
        owner = f"{self.owner_prefix}-w{n}"
        while not self._stopping:
            try:
                job = await self.claim(owner)
            except Exception:
                log.exception("could not claim a generation job")
                job = None
            if job is None:
                if self._stopping:
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), self.settings.worker_poll_seconds)
                except TimeoutError:
                    pass
                continue
            try:
                await self.run(job)
            except Exception:
                log.exception("job %s crashed; it will be retried when its lease expires", job.id)
                continue
            if self.on_finished is not None:
                try:
                    await self.on_finished(job.variant_id)
                except Exception:
                    log.exception("post-generation step failed for variant %s", job.variant_id)

    # claiming ----------------------------------------------------------------
    async def claim(self, owner: str) -> ClaimedJob | None:
        now = self.clock()
        lease_until = now + timedelta(seconds=self.settings.job_lease_seconds)
        J = GenerationJob
        candidate = (
            select(J.id)
            .where(or_(
                and_(J.status == "queued", J.available_at <= now),
                and_(J.status == "running", J.lease_expires_at < now),
            ))
            .order_by(J.created_at)
            .limit(1)
        )
        if self._postgres:
            candidate = candidate.with_for_update(skip_locked=True)
        statement = (
            update(J)
            .where(J.id == candidate.scalar_subquery())
            .values(status="running", attempts=J.attempts + 1, lease_owner=owner,
                    lease_expires_at=lease_until, updated_at=now)
            .returning(J.id, J.variant_id, J.attempts, J.max_attempts)
        )
        async with self.sessions() as session, session.begin():
            row = (await session.execute(statement)).first()
        if row is None:
            return None
        return ClaimedJob(row.id, row.variant_id, row.attempts, row.max_attempts, owner)

    async def _renew_lease(self, job: ClaimedJob) -> bool:
        """Extend the lease to now + ``job_lease_seconds`` if this worker still holds the
        job. False once it does not (cancelled, or taken over after the lease expired)."""
        now = self.clock()
        until = now + timedelta(seconds=self.settings.job_lease_seconds)
        async with self.sessions() as session, session.begin():
            result = await session.execute(
                update(GenerationJob)
                .where(GenerationJob.id == job.id, GenerationJob.lease_owner == job.owner,
                       GenerationJob.status == "running")
                .values(lease_expires_at=until, updated_at=now)
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def _heartbeat(self, job: ClaimedJob, on_lost: Callable[[], None],
                         beat: _Beat) -> None:
        """Renew the job's lease every ``job_heartbeat_seconds`` until ``beat.stopped``;
        once the lease is lost, call ``on_lost`` and stop renewing."""
        while True:
            await self.sleep(self.settings.job_heartbeat_seconds)
            if beat.stopped:
                return
            beat.renewing = True
            try:
                held = await self._renew_lease(job)
            except Exception:
                # A passing database error: the lease outlasts a few heartbeats, try again.
                log.exception("could not renew the lease of job %s", job.id)
                continue
            finally:
                beat.renewing = False
            if not held:
                log.warning("job %s: lease lost (cancelled or taken over); stopping", job.id)
                on_lost()
                return

    # running -----------------------------------------------------------------
    async def run(self, job: ClaimedJob) -> None:
        """Run a claimed job to its end while a heartbeat keeps its lease.

        Losing the lease (the trainer cancelled, or this worker stalled and another took
        the job over) stops the provider's work; nothing is committed without the lease.
        """
        async with self.sessions() as session:
            variant = await session.get(Variant, job.variant_id)
            if variant is None:
                raise RuntimeError(f"job {job.id} points at missing variant {job.variant_id}")
            experiment = await session.get(Experiment, variant.experiment_id)
            assert experiment is not None
            original = await session.get(Image, experiment.original_image_id)
            assert original is not None
        if job.attempts > job.max_attempts:
            await self._finish_failed(job, provider_error("attempts_exhausted", retryable=False))
            return
        provider = self.providers.get(variant.provider)
        if provider is None:
            await self._finish_failed(job, provider_error(
                "provider_disabled", retryable=False, provider=variant.provider))
            return

        # Only a run marks a variant running, so a claimed job whose variant is running was
        # taken over from a worker that died or stalled: the page says so until it ends.
        resuming = variant.status == "running"
        started = time.monotonic()
        await self._set_variant(job, status="running",
                                stage="resuming" if resuming else "prepare", progress=0.0,
                                started_at=self.clock(), **variant_error(None))
        last_report = 0.0
        abandoned = False
        generation: asyncio.Task[GenerationResult] | None = None

        def abandon() -> None:
            # Cancelled by the trainer, or taken over after our lease expired: stop the
            # provider's work (Replicate cancels its prediction remotely).
            nonlocal abandoned
            abandoned = True
            if generation is not None:
                generation.cancel()

        async def progress(stage: str, fraction: float) -> None:
            nonlocal last_report
            now = time.monotonic()
            if now - last_report < 0.2 and fraction < 1.0:
                return
            last_report = now
            if await self._renew_lease(job):
                await self._set_variant(job, stage="resuming" if resuming else stage,
                                        progress=fraction)
            else:
                abandon()

        beat = _Beat()
        heartbeat = asyncio.create_task(self._heartbeat(job, abandon, beat),
                                        name=f"lease-heartbeat-{job.id}")
        try:
            request = GenerationRequest(
                image=await self.blobs.get(original.blob_key),
                mode=experiment.mode,
                parameters=dict(variant.parameters),
                prompt=variant.prompt,
                negative_prompt=variant.negative_prompt,
            )
            if abandoned:
                log.info("variant %s: lease lost before generation started", job.variant_id)
                return
            generation = asyncio.create_task(provider.generate(request, progress))
            try:
                with metrics.time_provider_generation(variant.provider):
                    result = await generation
            except asyncio.CancelledError:
                if not abandoned:
                    raise  # the worker itself is shutting down; the lease will expire
                log.info("variant %s: generation stopped (cancelled or taken over)",
                         job.variant_id)
                return
            except ProviderRateLimited as exc:
                await self._handle_failure(job, exc, retryable=True,
                                           delay=exc.retry_after_seconds)
                return
            except ProviderError as exc:
                await self._handle_failure(job, exc, retryable=exc.retryable)
                return
            except Exception as exc:
                log.exception("provider %s failed on variant %s", variant.provider, variant.id)
                await self._handle_failure(
                    job, provider_error("unexpected", retryable=True, problem=str(exc)), True)
                return

            key = f"variants/{variant.id}.jpg"
            await self.blobs.put(key, result.image, result.content_type)
            duration_ms = int((time.monotonic() - started) * 1000)
            await self._finish_succeeded(job, key, result.image, duration_ms, result.model,
                                         result.estimated_cost_usd)
        finally:
            # Stop the heartbeat while it sleeps, never in the middle of a renewal
            # (see services/common/background.py for why).
            beat.stopped = True
            if not beat.renewing:
                heartbeat.cancel()
            await asyncio.wait([heartbeat])

    async def _finish_succeeded(self, job: ClaimedJob, key: str, data: bytes,
                                duration_ms: int, model: str | None = None,
                                cost_usd: float | None = None) -> None:
        import hashlib
        import io

        from PIL import Image as PILImage

        width, height = PILImage.open(io.BytesIO(data)).size
        async with self.sessions() as session, session.begin():
            done = await session.execute(
                update(GenerationJob)
                .where(GenerationJob.id == job.id, GenerationJob.lease_owner == job.owner,
                       GenerationJob.status == "running")
                .values(status="succeeded", lease_expires_at=None, updated_at=self.clock(),
                        last_error=None)
            )
            if not done.rowcount:  # type: ignore[attr-defined]
                log.warning("job %s lost its lease before finishing; result discarded", job.id)
                return
            image = Image(id=new_id("img"), kind="enhanced", blob_key=key,
                          sha256=hashlib.sha256(data).hexdigest(), content_type="image/jpeg",
                          width=width, height=height)
            session.add(image)
            await session.flush()
            await session.execute(
                update(Variant).where(Variant.id == job.variant_id).values(
                    status="succeeded", stage="done", progress=1.0, image_id=image.id,
                    finished_at=self.clock(), duration_ms=duration_ms, model=model,
                    estimated_cost_usd=cost_usd, **variant_error(None))
            )
        log.info("variant %s generated in %d ms", job.variant_id, duration_ms)

    async def _handle_failure(self, job: ClaimedJob, error: ProviderError, retryable: bool,
                              delay: float | None = None) -> None:
        message = error.message_es
        if retryable and job.attempts < job.max_attempts:
            if delay is None:
                delay = backoff_delay(job.attempts, base=1.0, cap=30.0)
            async with self.sessions() as session, session.begin():
                await session.execute(
                    update(GenerationJob)
                    .where(GenerationJob.id == job.id, GenerationJob.lease_owner == job.owner)
                    .values(status="queued", available_at=self.clock() + timedelta(seconds=delay),
                            lease_owner=None, lease_expires_at=None, last_error=message,
                            updated_at=self.clock())
                )
                await session.execute(
                    update(Variant).where(Variant.id == job.variant_id).values(
                        status="queued", stage="retrying", **variant_error(error))
                )
            log.warning("variant %s failed (attempt %d), retrying in %.1fs: %s",
                        job.variant_id, job.attempts, delay, message)
            return
        await self._finish_failed(job, error)

    async def _finish_failed(self, job: ClaimedJob, error: ProviderError) -> None:
        message = error.message_es
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(GenerationJob).where(GenerationJob.id == job.id).values(
                    status="failed", lease_owner=None, lease_expires_at=None,
                    last_error=message, updated_at=self.clock())
            )
            await session.execute(
                update(Variant).where(Variant.id == job.variant_id).values(
                    status="failed", stage="failed", finished_at=self.clock(),
                    **variant_error(error))
            )
        log.error("variant %s failed for good: %s", job.variant_id, message)

    async def _set_variant(self, job: ClaimedJob, **values: object) -> None:
        """Update the job's variant, but only while this worker still holds the job
        (a cancelled or taken-over job must not be marked running again)."""
        holds = (select(GenerationJob.id)
                 .where(GenerationJob.id == job.id, GenerationJob.lease_owner == job.owner,
                        GenerationJob.status == "running")
                 .exists())
        async with self.sessions() as session, session.begin():
            await session.execute(update(Variant)
                                  .where(Variant.id == job.variant_id, holds).values(**values))


def variant_error(error: ProviderError | None) -> dict[str, Any]:
    """The variant columns that record ``error`` (or clear it): the Spanish sentence, and
    the catalogue key with its parameters so a page can say it in its own language."""
    if error is None:
        return {"error": None, "error_code": None, "error_params": None}
    # Parameters are stored as JSON; anything unusual in them is kept as its text.
    params = json.loads(json.dumps(error.params, default=str))
    return {"error": error.message_es, "error_code": error.key, "error_params": params}


async def retry_variant(session: AsyncSession, variant_id: str) -> bool:
    """Put a failed or cancelled variant's job back in the queue. False if not retryable."""
    job = (await session.execute(
        select(GenerationJob).where(GenerationJob.variant_id == variant_id)
    )).scalar_one_or_none()
    if job is None or job.status not in ("failed", "cancelled"):
        return False
    job.status, job.attempts, job.available_at, job.last_error = "queued", 0, utcnow(), None
    await session.execute(update(Variant).where(Variant.id == variant_id).values(
        status="queued", stage="queued", progress=0.0, **variant_error(None)))
    return True


async def cancel_variant(session: AsyncSession, variant_id: str) -> bool:
    """Cancel a variant that has not finished. False if it already finished."""
    result = await session.execute(
        update(GenerationJob)
        .where(GenerationJob.variant_id == variant_id,
               GenerationJob.status.in_(("queued", "running")))
        .values(status="cancelled", lease_owner=None, lease_expires_at=None, updated_at=utcnow())
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    await session.execute(update(Variant).where(Variant.id == variant_id).values(
        status="cancelled", stage="cancelled", finished_at=utcnow(), **variant_error(None)))
    return True
