"""A trainer's correction reaches evolution as a higher revision of the same rating id."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.db import transaction
from services.evolution import store
from services.evolution.models import PromptResult
from services.evolution.tests.test_store import _row, sessions

__all__ = ["sessions"]  # fixture used below


async def test_a_higher_revision_replaces_rating_and_comments(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with transaction(sessions) as session:
        assert len(await store.record_results(session, [_row("r1", 4), _row("r2", 2)])) == 2
    async with transaction(sessions) as session:
        corrected = _row("r1", 1) | {"revision": 2, "comments": "plano"}
        assert await store.record_results(session, [corrected]) == []  # not new
    async with transaction(sessions) as session:
        assert await store.record_results(session, [_row("r1", 5)]) == []  # stale: ignored
    async with sessions() as session:
        rows = {r.rating_id: r for r in (await session.execute(select(PromptResult))).scalars()}
        stats = await store.performance(session)
    assert len(rows) == 2
    assert (rows["r1"].rating, rows["r1"].revision, rows["r1"].comments) == (1, 2, "plano")
    assert stats == {"v1.0.0": store.Performance(2, 1.5)}
