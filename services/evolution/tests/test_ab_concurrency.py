"""A/B reviews that overlap (two background reviews after two result deliveries, or
two replicas) on SQLite and PostgreSQL.

Each test holds reviews at a chosen point with events (a review has read the
pairs; it may go on) so the interleaving that used to break the rule happens
every time, not by chance.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.db import create_engine, run_migrations, session_factory, transaction
from services.evolution import lifecycle, store
from services.evolution.ab_test import DecisionRule, MonitorRule, decide, monitor
from services.evolution.main import MIGRATIONS_DIR
from services.evolution.models import AbTest
from services.evolution.seed_loader import load_seed_versions_into, read_seed_versions
from services.evolution.tests.conftest import SEED_PROMPTS

CHAMPION, CHALLENGER = "v1.0.0", "v1.0.1"
RULE = DecisionRule()  # the service's defaults: looks at 15 and 20 pairs, at most 20
UNDECIDED_15 = [1, 1, 0, 1, -1, 1, 0, 1, 0, 0, 1, -1, 1, 0, 0]
"""15 paired differences that do not promote at the 15-pair look (P(better) 0.93)."""


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    await asyncio.to_thread(
        run_migrations, MIGRATIONS_DIR, database_url, "alembic_version_evolution"
    )
    engine = create_engine(database_url)
    try:
        factory = session_factory(engine)
        await load_seed_versions_into(factory, SEED_PROMPTS)
        document = {**read_seed_versions(SEED_PROMPTS)[0], "version": CHALLENGER,
                    "parent_version": CHAMPION}
        async with transaction(factory) as session:
            assert await store.insert_version_if_absent(session, document)
        yield factory
    finally:
        await engine.dispose()


async def _start_test(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with transaction(sessions) as session:
        return (await store.start_test(session, CHAMPION, CHALLENGER)).id


async def _rate_pairs(sessions: async_sessionmaker[AsyncSession], diffs: list[int],
                      first: int, champion_stars: int | None = None) -> None:
    """One experiment per difference: the champion's option and the challenger's."""
    rows: list[dict[str, Any]] = []
    for i, diff in enumerate(diffs, start=first):
        champion = champion_stars or (1 - diff if diff < 0 else 1)
        for option, version, rating in (("A", CHAMPION, champion),
                                        ("B", CHALLENGER, champion + diff)):
            rows.append({"rating_id": f"r{i}{option}", "experiment_id": f"exp-{i}",
                         "option": option, "version": version, "mode": "surfaces",
                         "rating": rating, "comments": None, "rater": "trainer-1"})
    async with transaction(sessions) as session:
        assert len(await store.record_results(session, rows)) == len(rows)


async def _review(sessions: async_sessionmaker[AsyncSession]) -> lifecycle.Event | None:
    async with transaction(sessions) as session:
        return await lifecycle.review_test(session, RULE)


async def _test_row(sessions: async_sessionmaker[AsyncSession], test_id: int) -> AbTest:
    async with sessions() as session:
        row = await session.get(AbTest, test_id)
        assert row is not None
        return row


class Gates:
    """Stops the n-th review right after it has read the pairs, until released."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, count: int) -> None:
        self.read = [asyncio.Event() for _ in range(count)]
        self.go = [asyncio.Event() for _ in range(count)]
        self._calls = 0
        real: Callable[[AsyncSession, AbTest], Awaitable[list[float]]] = store.paired_differences

        async def gated(session: AsyncSession, test: AbTest) -> list[float]:
            index = self._calls
            self._calls += 1
            diffs = await real(session, test)
            self.read[index].set()
            await self.go[index].wait()
            return diffs

        monkeypatch.setattr(store, "paired_differences", gated)


async def test_a_look_is_taken_once_when_reviews_overlap(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The first review judges the 15-pair look with 15 pairs (no promotion); a second
    # one, which read 16 pairs before the first had written, must not judge the same
    # look again: that second chance is what made noise cross 0.95 too often.
    assert decide(UNDECIDED_15, RULE).outcome == "continue"
    assert decide([*UNDECIDED_15, 3], RULE).outcome == "promote"
    test_id = await _start_test(sessions)
    await _rate_pairs(sessions, UNDECIDED_15, first=0)
    gates = Gates(monkeypatch, 2)

    first = asyncio.create_task(_review(sessions))
    await gates.read[0].wait()
    await _rate_pairs(sessions, [3], first=15)
    second = asyncio.create_task(_review(sessions))
    await gates.read[1].wait()
    gates.go[0].set()
    assert await first is None
    gates.go[1].set()
    assert await second is None

    row = await _test_row(sessions, test_id)
    assert (row.status, row.last_look, row.n_pairs) == ("running", 15, 16)
    async with sessions() as session:
        assert [e.action for e in await store.list_audit(session)
                if e.action.startswith("ab_")] == []


async def test_many_simultaneous_reviews_take_a_look_once(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Eight reviews read the same 15 pairs, then all write at once: exactly one
    # judges the look (claims it); the others record statistics only.
    test_id = await _start_test(sessions)
    await _rate_pairs(sessions, UNDECIDED_15, first=0)
    judged: list[int] = []
    real_decide = lifecycle.decide

    def counting_decide(diffs: Any, rule: DecisionRule, last_look: int = 0) -> Any:
        if rule.look_reached(len(diffs), last_look) is not None:
            judged.append(len(diffs))
        return real_decide(diffs, rule, last_look)

    monkeypatch.setattr(lifecycle, "decide", counting_decide)
    barrier = asyncio.Barrier(8)
    real = store.paired_differences

    async def together(session: AsyncSession, test: AbTest) -> list[float]:
        diffs = await real(session, test)
        await barrier.wait()
        return diffs

    monkeypatch.setattr(store, "paired_differences", together)
    assert await asyncio.gather(*(_review(sessions) for _ in range(8))) == [None] * 8
    assert judged == [15]
    row = await _test_row(sessions, test_id)
    assert (row.status, row.last_look, row.n_pairs) == ("running", 15, 15)


async def test_a_stale_review_does_not_overwrite_a_decided_test(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An older review read 17 pairs; meanwhile a newer one saw 20 and closed the test.
    # When the older one writes, the decided test keeps the statistics of its decision.
    test_id = await _start_test(sessions)
    await _rate_pairs(sessions, UNDECIDED_15, first=0)
    assert await _review(sessions) is None  # takes the 15-pair look
    await _rate_pairs(sessions, [0, 0], first=15)
    assert decide([*UNDECIDED_15, 0, 0, 0, 0, 0], RULE, 15).outcome == "rollback"
    gates = Gates(monkeypatch, 2)
    gates.go[1].set()

    older = asyncio.create_task(_review(sessions))
    await gates.read[0].wait()
    await _rate_pairs(sessions, [0, 0, 0], first=17)
    newer = await _review(sessions)
    assert newer is not None and newer.action == "ab_rollback"
    gates.go[0].set()
    assert await older is None

    row = await _test_row(sessions, test_id)
    assert row.status == "rolled_back"
    assert row.n_pairs == 20
    assert row.decision_reason is not None and "20 pairs" in row.decision_reason


async def test_a_stale_review_does_not_turn_statistics_back(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Both reviews leave the test running; the one that read fewer pairs writes last
    # and must not replace the newer statistics with older ones.
    test_id = await _start_test(sessions)
    await _rate_pairs(sessions, UNDECIDED_15[:11], first=0)
    gates = Gates(monkeypatch, 2)
    gates.go[1].set()
    older = asyncio.create_task(_review(sessions))
    await gates.read[0].wait()
    await _rate_pairs(sessions, UNDECIDED_15[11:13], first=11)
    assert await _review(sessions) is None
    gates.go[0].set()
    assert await older is None
    row = await _test_row(sessions, test_id)
    assert (row.status, row.n_pairs) == ("running", 13)


async def test_paired_differences_count_only_ratings_since_the_test_started(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # The same two versions met in an earlier, stopped test: its pairs are not
    # evidence in the new one.
    earlier = await _start_test(sessions)
    await _rate_pairs(sessions, [4, 4, 4], first=0)
    async with transaction(sessions) as session:
        await session.execute(update(AbTest).where(AbTest.id == earlier)
                              .values(status="stopped"))
    later = await _start_test(sessions)
    await _rate_pairs(sessions, [-1, 0], first=3)
    async with sessions() as session:
        test = await session.scalar(select(AbTest).where(AbTest.id == later))
        assert test is not None
        assert await store.paired_differences(session, test) == [-1.0, 0.0]


async def test_a_stale_monitor_review_does_not_overwrite_an_ended_monitor(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch,
) -> None:
    # After a promotion the monitor watches the new champion. An older monitor review
    # (5 new ratings) writes after a newer one (20 ratings) ended the watch: the ended
    # monitor keeps the probability its decision was taken on.
    test_id = await _start_test(sessions)
    await _rate_pairs(sessions, [1] * 15, first=0, champion_stars=4)  # reference: 4 stars
    assert (await _review(sessions) or lifecycle.Event("", "", "")).action == "ab_promote"
    watched = [(f"m{i}", 3 + i % 2) for i in range(20)]  # the new champion: 3.5 stars

    async def rate_new_champion(ratings: list[tuple[str, int]]) -> None:
        async with transaction(sessions) as session:
            await store.record_results(session, [
                {"rating_id": rid, "experiment_id": f"exp-{rid}", "option": "A",
                 "version": CHALLENGER, "mode": "surfaces", "rating": stars,
                 "comments": None, "rater": "trainer-1"} for rid, stars in ratings])

    async def monitor_review() -> lifecycle.Event | None:
        async with transaction(sessions) as session:
            return await lifecycle.review_monitor(session, MonitorRule())

    await rate_new_champion(watched[:5])
    read, go = asyncio.Event(), asyncio.Event()
    real = store.paired_champion_ratings
    calls = 0

    async def gated(session: AsyncSession, test: AbTest) -> list[float]:
        nonlocal calls
        calls += 1
        reference = await real(session, test)
        if calls == 1:
            read.set()
            await go.wait()
        return reference

    monkeypatch.setattr(store, "paired_champion_ratings", gated)
    older = asyncio.create_task(monitor_review())
    await read.wait()
    await rate_new_champion(watched[5:])
    newer = await monitor_review()
    assert newer is not None and newer.action in {"monitor_passed", "auto_rollback"}
    async with sessions() as session:
        assert (await session.get(AbTest, test_id) or AbTest()).monitor_p_degraded != \
            monitor([3, 4, 3, 4, 3], [4.0] * 15, MonitorRule()).p_degraded  # the stale one
    go.set()
    assert await older is None

    row = await _test_row(sessions, test_id)
    async with sessions() as session:
        entry = next(e for e in await store.list_audit(session) if e.action == newer.action)
    assert row.monitor_status in {"passed", "rolled_back"}
    assert row.monitor_p_degraded == entry.details["p_degraded"]
