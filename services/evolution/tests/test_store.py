"""Store behaviour that needs two sessions at once, and migrations matching the models."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.db import create_engine, run_migrations, session_factory, transaction
from services.evolution import store
from services.evolution.main import MIGRATIONS_DIR
from services.evolution.models import Base, PromptResult
from services.evolution.seed_loader import load_seed_versions_into, read_seed_versions
from services.evolution.tests.conftest import SEED_PROMPTS


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    await asyncio.to_thread(
        run_migrations, MIGRATIONS_DIR, database_url, "alembic_version_evolution"
    )
    engine = create_engine(database_url)
    try:
        factory = session_factory(engine)
        await load_seed_versions_into(factory, SEED_PROMPTS)
        yield factory
    finally:
        await engine.dispose()


def _row(rating_id: str, rating: int) -> dict[str, Any]:
    return {
        "rating_id": rating_id,
        "experiment_id": "exp-1",
        "option": "A",
        "version": "v1.0.0",
        "mode": "surfaces",
        "rating": rating,
        "comments": None,
        "rater": "trainer-1",
    }


async def _count(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count(PromptResult.id))) or 0)


async def test_same_rating_delivered_twice_concurrently_is_stored_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # The first delivery has inserted but not committed when the second one runs;
    # the second must neither fail nor add a row, whatever the interleaving.
    async with transaction(sessions) as first:
        assert len(await store.record_results(first, [_row("r1", 4)])) == 1

        async def second_delivery() -> int:
            async with transaction(sessions) as second:
                return len(await store.record_results(second, [_row("r1", 4), _row("r2", 2)]))

        second = asyncio.create_task(second_delivery())
        # Yield once so the second delivery normally starts before the first commits;
        # the assertions below hold for every interleaving.
        await asyncio.sleep(0)
    assert await second == 1
    assert await _count(sessions) == 2
    async with sessions() as session:
        stats = await store.performance(session)
    assert stats == {"v1.0.0": store.Performance(2, 3.0)}


async def test_many_concurrent_deliveries_of_the_same_batch(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    batch = [_row(f"r{i}", 1 + i % 5) for i in range(5)]

    async def deliver() -> int:
        async with transaction(sessions) as session:
            return len(await store.record_results(session, batch))

    recorded = await asyncio.gather(*(deliver() for _ in range(6)))
    assert sum(recorded) == 5
    assert await _count(sessions) == 5


async def test_database_allows_only_one_active_version(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    document = {**read_seed_versions(SEED_PROMPTS)[0], "version": "v1.0.1"}
    async with transaction(sessions) as session:
        assert await store.insert_version_if_absent(session, document)
    with pytest.raises(IntegrityError):
        async with transaction(sessions) as session:
            await store.activate(session, "v1.0.1")
    async with sessions() as session:
        active = await store.active_version(session)
    assert active is not None and active.version == "v1.0.0"


async def test_migrations_match_the_models(sessions: async_sessionmaker[AsyncSession]) -> None:
    def diff(connection: Any) -> list[Any]:
        return compare_metadata(
            MigrationContext.configure(
                connection, opts={"version_table": "alembic_version_evolution"}
            ),
            Base.metadata,
        )

    async with sessions() as session:
        connection = await session.connection()
        assert await connection.run_sync(diff) == []
