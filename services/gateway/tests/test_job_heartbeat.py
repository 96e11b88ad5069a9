"""The lease heartbeat: a long job keeps its short lease, a dead worker's job is taken
over once the lease runs out and says "Reanudando…", and a worker that lost its lease
stops renewing and commits nothing. Time moves only when the test steps it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from services.common.blobs import LocalBlobStore
from services.common.db import create_engine, session_factory, utcnow
from services.common.testing import make_test_image
from services.gateway.jobs import ClaimedJob, JobRunner
from services.gateway.main import create_app
from services.gateway.models import GenerationJob, Image
from services.gateway.providers import GenerationRequest, GenerationResult, ProgressCallback
from services.gateway.settings import GatewaySettings
from services.gateway.testing import sign_in_with_token
from services.gateway.tests.test_jobs import queued_experiment

DEADLINE_S = 30.0
"""Longest wait for the code under test to reach its next step (a hang, not a timing)."""


class SteppedTime:
    """A UTC clock and a ``sleep`` that wake only when the test steps time forward."""

    def __init__(self) -> None:
        self.now = utcnow() + timedelta(seconds=1)  # jobs were queued just before
        self._sleepers: asyncio.Queue[tuple[float, asyncio.Future[None]]] = asyncio.Queue()
        self._next: tuple[float, asyncio.Future[None]] | None = None

    def __call__(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._sleepers.put((seconds, wake))
        await wake

    async def _sleeper(self) -> tuple[float, asyncio.Future[None]]:
        while True:  # skip the sleeps of heartbeats that were cancelled meanwhile
            seconds, wake = await asyncio.wait_for(self._sleepers.get(), DEADLINE_S)
            if not wake.done():
                return seconds, wake

    async def beat(self, *, sleeps_again: bool = True) -> None:
        """Wake the sleeping heartbeat, moving the clock on by its delay; with
        ``sleeps_again``, return once it sleeps again (its renewal is done)."""
        seconds, wake = self._next or await self._sleeper()
        self._next = None
        self.now += timedelta(seconds=seconds)
        wake.set_result(None)
        if sleeps_again:
            self._next = await self._sleeper()

    def skip(self, seconds: float) -> None:
        """Move the clock without waking anyone (a worker that stalled or died)."""
        self.now += timedelta(seconds=seconds)


class HeldProvider:
    """Reports progress once, then generates only when the test releases it."""

    name = "local"
    label_es = label_en = "Retenido"

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.cancelled = False

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback
    ) -> GenerationResult:
        await progress("detail", 0.5)
        self.started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return GenerationResult(make_test_image(16, 16, "JPEG"), "image/jpeg", "held")


@asynccontextmanager
async def runners(
    settings: GatewaySettings, time: SteppedTime, *providers: HeldProvider
) -> AsyncIterator[list[JobRunner]]:
    """One runner per provider, on one database and one stepped clock."""
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)
    blobs = LocalBlobStore(settings.blob_dir)
    try:
        yield [
            JobRunner(sessions, blobs, {"local": p}, settings, clock=time, sleep=time.sleep)
            for p in providers
        ]
    finally:
        await engine.dispose()


async def only_one_job(runner: JobRunner, owner: str) -> ClaimedJob:
    """Claim a job and cancel the experiment's other one, so rivals can only want this."""
    job = await runner.claim(owner)
    assert job is not None
    async with runner.sessions() as session, session.begin():
        await session.execute(
            update(GenerationJob)
            .where(GenerationJob.id != job.id)
            .values(status="cancelled", lease_owner=None)
        )
    return job


async def job_row(runner: JobRunner, job_id: str) -> GenerationJob:
    async with runner.sessions() as session:
        row = await session.get(GenerationJob, job_id)
    assert row is not None
    return row


async def enhanced_images(runner: JobRunner) -> int:
    async with runner.sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(Image).where(Image.kind == "enhanced")
        )
    return int(count or 0)


def test_the_heartbeat_keeps_a_long_job_leased_past_the_lease_length(
    gateway_settings: GatewaySettings,
) -> None:
    queued_experiment(gateway_settings)
    lease = gateway_settings.job_lease_seconds

    async def scenario() -> None:
        time, held = SteppedTime(), HeldProvider()
        async with runners(gateway_settings, time, held, HeldProvider()) as (worker, rival):
            job = await only_one_job(worker, "long")
            running = asyncio.create_task(worker.run(job))
            await asyncio.wait_for(held.started.wait(), DEADLINE_S)
            claimed_at = time.now
            while time.now - claimed_at <= timedelta(seconds=2 * lease):
                await time.beat()
            assert await rival.claim("rival") is None  # still leased, two leases later
            row = await job_row(worker, job.id)
            assert row.lease_owner == "long" and row.lease_expires_at is not None
            assert row.lease_expires_at > time.now
            held.release.set()
            await asyncio.wait_for(running, DEADLINE_S)
            row = await job_row(worker, job.id)
            assert row.status == "succeeded" and row.attempts == 1
            assert await enhanced_images(worker) == 1

    asyncio.run(scenario())


def test_a_dead_workers_job_is_resumed_after_the_short_lease_and_says_so(
    gateway_settings: GatewaySettings,
) -> None:
    experiment_id = queued_experiment(gateway_settings)
    lease = gateway_settings.job_lease_seconds
    idle = gateway_settings.model_copy(update={"generation_workers": 0})

    async def scenario(gateway: TestClient) -> None:
        time, dying, rescuing = SteppedTime(), HeldProvider(), HeldProvider()
        async with runners(gateway_settings, time, dying, rescuing) as (dead, rescuer):
            job = await only_one_job(dead, "dies")
            crashed = asyncio.create_task(dead.run(job))
            await asyncio.wait_for(dying.started.wait(), DEADLINE_S)
            crashed.cancel()  # the worker dies mid-generation: its lease is left behind
            await asyncio.gather(crashed, return_exceptions=True)

            time.skip(lease - 1)
            assert await rescuer.claim("rescuer") is None  # the lease still holds
            time.skip(2)
            again = await rescuer.claim("rescuer")
            assert again is not None and again.id == job.id and again.attempts == 2
            resumed = asyncio.create_task(rescuer.run(again))
            await asyncio.wait_for(rescuing.started.wait(), DEADLINE_S)
            await time.beat()  # the rescuer's heartbeat renews its own lease

            body = (
                await asyncio.to_thread(gateway.get, f"/api/experiments/{experiment_id}")
            ).json()
            option = next(o for o in body["options"] if o["variant_id"] == job.variant_id)
            assert (option["status"], option["stage"], option["progress"]) == (
                "running",
                "resuming",
                0.5,
            )  # the provider's own stage is not shown
            card = await asyncio.to_thread(gateway.get, f"/train/variants/{job.variant_id}/card")
            assert "Reanudando…" in card.text
            english = await asyncio.to_thread(
                gateway.get, f"/train/variants/{job.variant_id}/card?lang=en"
            )
            assert "Resuming…" in english.text

            rescuing.release.set()
            await asyncio.wait_for(resumed, DEADLINE_S)
            body = (
                await asyncio.to_thread(gateway.get, f"/api/experiments/{experiment_id}")
            ).json()
            option = next(o for o in body["options"] if o["variant_id"] == job.variant_id)
            assert (option["status"], option["stage"]) == ("succeeded", "done")
            assert await enhanced_images(rescuer) == 1

    with TestClient(create_app(idle)) as gateway:
        sign_in_with_token(gateway, "bea")
        asyncio.run(scenario(gateway))


def test_a_worker_that_lost_its_lease_stops_and_commits_nothing(
    gateway_settings: GatewaySettings,
) -> None:
    queued_experiment(gateway_settings)
    lease = gateway_settings.job_lease_seconds

    async def scenario() -> None:
        time, stalled_work = SteppedTime(), HeldProvider()
        async with runners(gateway_settings, time, stalled_work, HeldProvider()) as (
            stalled,
            rival,
        ):
            job = await only_one_job(stalled, "stalls")
            running = asyncio.create_task(stalled.run(job))
            await asyncio.wait_for(stalled_work.started.wait(), DEADLINE_S)
            time.skip(lease + 1)  # its heartbeat did not get to run for a whole lease
            taken = await rival.claim("rival")
            assert taken is not None and taken.id == job.id
            rival_lease = (await job_row(rival, job.id)).lease_expires_at

            await time.beat(sleeps_again=False)  # the renewal fails: it stops for good
            await asyncio.wait_for(running, DEADLINE_S)
            assert stalled_work.cancelled  # the provider's work was stopped
            row = await job_row(rival, job.id)
            assert (row.status, row.lease_owner, row.lease_expires_at) == (
                "running",
                "rival",
                rival_lease,
            )
            assert await enhanced_images(rival) == 0

    asyncio.run(scenario())


@pytest.mark.parametrize("heartbeat", [30.0, 45.0])
def test_a_heartbeat_not_shorter_than_the_lease_is_refused(heartbeat: float) -> None:
    with pytest.raises(ValueError, match="GATEWAY_JOB_HEARTBEAT_SECONDS .* must be shorter"):
        GatewaySettings(job_lease_seconds=30, job_heartbeat_seconds=heartbeat)


def test_the_default_lease_is_short_and_kept_by_a_heartbeat() -> None:
    settings = GatewaySettings()
    assert (settings.job_lease_seconds, settings.job_heartbeat_seconds) == (30.0, 10.0)
