"""Durable generation jobs: claiming with leases, expiry after a crash, no double work."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from services.common.blobs import LocalBlobStore
from services.common.db import create_engine, session_factory, utcnow
from services.common.testing import make_test_image, wait_for
from services.gateway.jobs import JobRunner
from services.gateway.main import create_app
from services.gateway.models import GenerationJob, Image, Variant
from services.gateway.providers import build_providers
from services.gateway.settings import GatewaySettings
from services.gateway.testing import sign_in_with_token


def queued_experiment(settings: GatewaySettings) -> str:
    """Create an experiment with workers switched off, so its two jobs stay queued."""
    idle = settings.model_copy(update={"generation_workers": 0})
    with TestClient(create_app(idle)) as gateway:
        sign_in_with_token(gateway)
        answer = gateway.post("/api/enhance/train", data={"mode": "structure"},
                              files={"image": ("r.png", make_test_image(), "image/png")})
        assert answer.status_code == 202
        return str(answer.json()["experiment_id"])


def runner_for(settings: GatewaySettings) -> tuple[JobRunner, object]:
    engine = create_engine(settings.database_url)
    runner = JobRunner(session_factory(engine), LocalBlobStore(settings.blob_dir),
                       build_providers(settings), settings)
    return runner, engine


def test_concurrent_claims_never_take_the_same_job(gateway_settings: GatewaySettings) -> None:
    queued_experiment(gateway_settings)

    async def scenario() -> list:
        runner, engine = runner_for(gateway_settings)
        try:
            claims = await asyncio.gather(*(runner.claim(f"w{i}") for i in range(4)))
        finally:
            await engine.dispose()  # type: ignore[attr-defined]
        return claims

    claims = asyncio.run(scenario())
    taken = [c for c in claims if c is not None]
    assert len(taken) == 2
    assert len({c.id for c in taken}) == 2
    assert all(c.attempts == 1 for c in taken)


def test_an_expired_lease_is_taken_over_and_the_old_owner_cannot_finish(
        gateway_settings: GatewaySettings) -> None:
    queued_experiment(gateway_settings)

    async def scenario() -> None:
        runner, engine = runner_for(gateway_settings)
        try:
            first = await runner.claim("crashed-worker")
            second = await runner.claim("other")
            assert first is not None and second is not None
            assert await runner.claim("third") is None  # both leased
            async with runner.sessions() as session, session.begin():
                await session.execute(update(GenerationJob).where(GenerationJob.id == first.id)
                                      .values(lease_expires_at=utcnow() - timedelta(seconds=1)))
            again = await runner.claim("rescuer")
            assert again is not None and again.id == first.id and again.attempts == 2
            await runner._finish_succeeded(first, "variants/ghost.jpg",
                                           make_test_image(8, 8, "JPEG"), 1)
            async with runner.sessions() as session:
                job = await session.get(GenerationJob, first.id)
                assert job is not None and job.status == "running"
                assert job.lease_owner == "rescuer"
                images = await session.scalar(select(func.count()).select_from(Image)
                                              .where(Image.kind == "enhanced"))
                assert images == 0
        finally:
            await engine.dispose()  # type: ignore[attr-defined]

    asyncio.run(scenario())


def test_restart_finishes_work_of_a_dead_worker_exactly_once(
        gateway_settings: GatewaySettings) -> None:
    experiment_id = queued_experiment(gateway_settings)

    async def crash_mid_generation() -> None:
        runner, engine = runner_for(gateway_settings)
        try:
            job = await runner.claim("dies-mid-generation")
            assert job is not None
            async with runner.sessions() as session, session.begin():
                await session.execute(update(GenerationJob).where(GenerationJob.id == job.id)
                                      .values(lease_expires_at=utcnow() - timedelta(seconds=1)))
                await session.execute(update(Variant).where(Variant.id == job.variant_id)
                                      .values(status="running", stage="detail", progress=0.5))
        finally:
            await engine.dispose()  # type: ignore[attr-defined]

    asyncio.run(crash_mid_generation())
    with TestClient(create_app(gateway_settings)) as gateway:
        sign_in_with_token(gateway, "bea")
        def finished() -> dict | None:
            body = gateway.get(f"/api/experiments/{experiment_id}").json()
            return body if body["status"] == "ready" else None

        body = wait_for(finished, 30, "the restarted gateway to finish both variants")
        assert [o["status"] for o in body["options"]] == ["succeeded", "succeeded"]

    async def count_results() -> tuple[int, list[int]]:
        engine = create_engine(gateway_settings.database_url)
        try:
            async with session_factory(engine)() as session:
                images = await session.scalar(select(func.count()).select_from(Image)
                                              .where(Image.kind == "enhanced"))
                attempts = list((await session.execute(
                    select(GenerationJob.attempts).order_by(GenerationJob.attempts))).scalars())
        finally:
            await engine.dispose()
        return int(images or 0), attempts

    images, attempts = asyncio.run(count_results())
    assert images == 2  # one image per variant, none generated twice
    assert attempts == [1, 2]  # the crashed job was attempted again, once
