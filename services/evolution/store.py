"""Queries of the evolution service. Every function takes the caller's session and
does not commit: the caller's transaction decides.

Inserts that must be safe under concurrent delivery (seed versions at start-up,
ratings from the gateway's outbox) use ``INSERT … ON CONFLICT DO NOTHING`` on the
unique key, so two replicas or two deliveries of the same rating never create two
rows and never fail.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import utcnow
from services.evolution.documents import created_at, version_key
from services.evolution.errors import UnknownVersion, VersionNotFound
from services.evolution.models import (
    AbTest,
    AuditEntry,
    EvolutionRun,
    PromptResult,
    PromptVersion,
)

EVOLVED_BY = ("llm", "offline")
"""``created_by`` values that count as an evolution (for ``last_evolution``)."""


@dataclass(frozen=True)
class Performance:
    sample_count: int
    avg_rating: float | None


NO_SAMPLES = Performance(0, None)


def _insert(session: AsyncSession, model: type[Any]) -> postgresql.Insert | sqlite.Insert:
    """A dialect-specific INSERT that supports ``on_conflict_do_nothing``."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)


# --- versions ---------------------------------------------------------------


async def get_version(session: AsyncSession, version: str) -> PromptVersion | None:
    return await session.scalar(select(PromptVersion).where(PromptVersion.version == version))


async def require_version(session: AsyncSession, version: str) -> PromptVersion:
    """The version row, or :class:`VersionNotFound` (404)."""
    row = await get_version(session, version)
    if row is None:
        raise VersionNotFound(version)
    return row


async def active_version(session: AsyncSession) -> PromptVersion | None:
    return await session.scalar(select(PromptVersion).where(PromptVersion.status == "active"))


async def list_versions(session: AsyncSession) -> list[PromptVersion]:
    """All versions, oldest semantic version first."""
    rows = (await session.scalars(select(PromptVersion))).all()
    return sorted(rows, key=lambda row: version_key(row.version))


async def existing_versions(session: AsyncSession, versions: Iterable[str]) -> set[str]:
    wanted = set(versions)
    if not wanted:
        return set()
    found = await session.scalars(
        select(PromptVersion.version).where(PromptVersion.version.in_(wanted))
    )
    return set(found.all())


async def insert_version_if_absent(
    session: AsyncSession, document: dict[str, Any], status: str = "candidate"
) -> bool:
    """Store a validated document as a new version; False if the version already exists."""
    stmt = (
        _insert(session, PromptVersion)
        .values(
            version=document["version"],
            parent_version=document["parent_version"],
            created_by=document["created_by"],
            status=status,
            document=document,
            reasoning=document["reasoning"],
            created_at=created_at(document),
            promoted_at=utcnow() if status == "active" else None,
        )
        .on_conflict_do_nothing(index_elements=["version"])
        .returning(PromptVersion.id)
    )
    return (await session.execute(stmt)).first() is not None


async def activate(session: AsyncSession, version: str) -> None:
    """Mark ``version`` active (the caller makes sure no other version is)."""
    await session.execute(
        update(PromptVersion)
        .where(PromptVersion.version == version)
        .values(status="active", promoted_at=utcnow())
    )


async def count_versions(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count(PromptVersion.id))) or 0)


async def last_evolution(session: AsyncSession) -> datetime | None:
    """``created_at`` of the newest version produced by evolution (LLM or offline)."""
    return await session.scalar(
        select(func.max(PromptVersion.created_at)).where(PromptVersion.created_by.in_(EVOLVED_BY))
    )


# --- results ----------------------------------------------------------------


async def performance(
    session: AsyncSession, versions: Iterable[str] | None = None
) -> dict[str, Performance]:
    """Sample count and mean rating per version (only versions with samples appear)."""
    stmt = select(
        PromptResult.version, func.count(PromptResult.id), func.avg(PromptResult.rating)
    ).group_by(PromptResult.version)
    if versions is not None:
        stmt = stmt.where(PromptResult.version.in_(set(versions)))
    return {
        version: Performance(int(count), round(float(avg), 4) if avg is not None else None)
        for version, count, avg in (await session.execute(stmt)).all()
    }


async def total_samples(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count(PromptResult.id))) or 0)


async def record_results(session: AsyncSession, results: Sequence[dict[str, Any]]
                         ) -> list[tuple[str, int]]:
    """Store ratings, ignoring rating ids already stored; return ``(mode, rating)`` of each
    new row (its length is how many rows are new).

    A result whose ``revision`` is higher than the stored one (a trainer's correction)
    replaces its rating and comments in place; it is not counted as new.

    All or nothing: if any result names an unknown version, nothing is stored.
    Within one call the first occurrence of a rating id wins.

    Raises:
        UnknownVersion: a result names a version this service does not have (422).
    """
    unknown = sorted(
        {r["version"] for r in results}
        - await existing_versions(session, (r["version"] for r in results))
    )
    if unknown:
        raise UnknownVersion.because(versions=", ".join(unknown),
                                     details={"versions": unknown})
    unique: dict[str, dict[str, Any]] = {}
    for result in results:
        kept = unique.get(result["rating_id"])
        if kept is None or result.get("revision", 1) > kept.get("revision", 1):
            unique[result["rating_id"]] = result
    known = set((await session.execute(
        select(PromptResult.rating_id).where(PromptResult.rating_id.in_(list(unique)))
    )).scalars())
    now = utcnow()
    insert = _insert(session, PromptResult).values(
        # Rating-id order: concurrent batches lock conflicting rows in the same order.
        [{**row, "created_at": now} for _, row in sorted(unique.items())])
    # A higher revision of a stored rating id (a trainer's correction) replaces it.
    stmt = insert.on_conflict_do_update(
        index_elements=["rating_id"],
        set_={"rating": insert.excluded.rating, "comments": insert.excluded.comments,
              "revision": insert.excluded.revision},
        where=PromptResult.revision < insert.excluded.revision,
    ).returning(PromptResult.rating_id, PromptResult.mode, PromptResult.rating)
    return [(str(mode), int(rating)) for rid, mode, rating in (await session.execute(stmt)).all()
            if rid not in known]


async def results(
    session: AsyncSession,
    versions: Iterable[str] | None = None,
    *,
    mode: str | None = None,
    since: datetime | None = None,
    limit: int | None = None,
) -> list[PromptResult]:
    """Ratings, newest first, optionally for some versions, one mode, or after ``since``."""
    stmt = select(PromptResult).order_by(PromptResult.created_at.desc(), PromptResult.id.desc())
    if versions is not None:
        stmt = stmt.where(PromptResult.version.in_(set(versions)))
    if mode is not None:
        stmt = stmt.where(PromptResult.mode == mode)
    if since is not None:
        stmt = stmt.where(PromptResult.created_at > since)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list((await session.scalars(stmt)).all())


async def samples_until(session: AsyncSession, moment: datetime | None) -> int:
    """Ratings recorded at or before ``moment`` (0 for None)."""
    if moment is None:
        return 0
    return int(await session.scalar(
        select(func.count(PromptResult.id)).where(PromptResult.created_at <= moment)) or 0)


async def _test_ratings(session: AsyncSession, test: AbTest) -> list[PromptResult]:
    """The ratings recorded since ``test`` started in experiments the challenger took part
    in: the challenger's, and the champion's in those same experiments."""
    challenger_experiments = (
        select(PromptResult.experiment_id)
        .where(PromptResult.version == test.challenger,
               PromptResult.created_at >= test.started_at)
    )
    stmt = select(PromptResult).where(
        PromptResult.created_at >= test.started_at,
        (PromptResult.version == test.challenger)
        | ((PromptResult.version == test.champion)
           & PromptResult.experiment_id.in_(challenger_experiments)),
    )
    return list((await session.scalars(stmt)).all())


async def paired_differences(session: AsyncSession, test: AbTest) -> list[float]:
    """``rating(challenger) - rating(champion)`` per experiment that has both, oldest first,
    from the ratings recorded since the test started.

    Several ratings of one option (two trainers) are averaged first.
    """
    rows = await _test_ratings(session, test)
    by_experiment: dict[str, dict[str, list[int]]] = {}
    finished: dict[str, datetime] = {}
    for row in rows:
        arms = by_experiment.setdefault(row.experiment_id, {})
        arms.setdefault(row.version, []).append(row.rating)
        finished[row.experiment_id] = max(finished.get(row.experiment_id, row.created_at),
                                          row.created_at)
    pairs = []
    for experiment, arms in by_experiment.items():
        if test.champion in arms and test.challenger in arms:
            challenger = sum(arms[test.challenger]) / len(arms[test.challenger])
            champion = sum(arms[test.champion]) / len(arms[test.champion])
            pairs.append((finished[experiment], experiment, challenger - champion))
    return [diff for _, _, diff in sorted(pairs)]


async def paired_champion_ratings(session: AsyncSession, test: AbTest) -> list[float]:
    """The champion's ratings in the test's paired experiments (the monitor's reference)."""
    rows = await _test_ratings(session, test)
    return [float(r.rating) for r in rows
            if r.version == test.champion
            and (test.decided_at is None or r.created_at <= test.decided_at)]


# --- versions: lifecycle ----------------------------------------------------------


async def set_status(session: AsyncSession, version: str, status: str) -> None:
    values: dict[str, Any] = {"status": status}
    if status == "active":
        values["promoted_at"] = utcnow()
    await session.execute(
        update(PromptVersion).where(PromptVersion.version == version).values(**values)
    )


async def next_version(session: AsyncSession, parent: str, bump: str = "patch") -> str:
    """A free version number derived from ``parent`` (patch or minor bump)."""
    major, minor, patch = version_key(parent)
    taken = {version_key(v.version) for v in await list_versions(session)}
    if bump == "minor":
        candidate = (major, minor + 1, 0)
        while candidate in taken:
            candidate = (major, candidate[1] + 1, 0)
    else:
        candidate = (major, minor, patch + 1)
        while candidate in taken:
            candidate = (major, minor, candidate[2] + 1)
    return "v{}.{}.{}".format(*candidate)


# --- A/B tests --------------------------------------------------------------------


async def running_test(session: AsyncSession) -> AbTest | None:
    return await session.scalar(select(AbTest).where(AbTest.status == "running"))


async def watching_test(session: AsyncSession) -> AbTest | None:
    """The promoted test whose new champion is still being monitored, if any."""
    return await session.scalar(
        select(AbTest).where(AbTest.monitor_status == "watching").order_by(AbTest.id.desc())
    )


async def list_tests(session: AsyncSession, limit: int = 50) -> list[AbTest]:
    return list((await session.scalars(
        select(AbTest).order_by(AbTest.id.desc()).limit(limit))).all())


async def start_test(session: AsyncSession, champion: str, challenger: str) -> AbTest:
    """Insert a running test (the partial unique index allows only one)."""
    test = AbTest(champion=champion, challenger=challenger, status="running", last_look=0,
                  n_pairs=0, started_at=utcnow())
    session.add(test)
    await session.flush()
    return test


# --- evolution runs ---------------------------------------------------------------


async def claim_run(session: AsyncSession, *, trigger: str, actor: str, total: int,
                    parent: str | None, stale_before: datetime) -> EvolutionRun | None:
    """Insert a running evolution, or None when another one is running (not stale).

    A run left 'running' since before ``stale_before`` (a crashed process) is marked
    failed first. Uses a savepoint so a lost race does not spoil the caller's
    transaction.
    """
    await session.execute(
        update(EvolutionRun)
        .where(EvolutionRun.status == "running", EvolutionRun.started_at < stale_before)
        .values(status="failed", finished_at=utcnow(),
                error="abandoned: the process running it stopped")
    )
    run = EvolutionRun(trigger=trigger, status="running", actor=actor, total_samples=total,
                       parent_version=parent, details={}, started_at=utcnow())
    try:
        async with session.begin_nested():
            session.add(run)
            await session.flush()
    except IntegrityError:
        return None
    return run


async def get_run(session: AsyncSession, run_id: int) -> EvolutionRun | None:
    return await session.get(EvolutionRun, run_id)


async def last_run(session: AsyncSession) -> EvolutionRun | None:
    """The newest evolution attempt that ran (created or failed), for the trigger rules."""
    return await session.scalar(
        select(EvolutionRun).where(EvolutionRun.status.in_(("created", "failed", "running")))
        .order_by(EvolutionRun.id.desc()).limit(1)
    )


async def list_runs(session: AsyncSession, limit: int = 20) -> list[EvolutionRun]:
    return list((await session.scalars(
        select(EvolutionRun).order_by(EvolutionRun.id.desc()).limit(limit))).all())


# --- audit ------------------------------------------------------------------------


async def audit(session: AsyncSession, action: str, *, actor: str, reason: str = "",
                version: str | None = None, from_version: str | None = None,
                to_version: str | None = None, details: dict[str, Any] | None = None
                ) -> AuditEntry:
    entry = AuditEntry(action=action, actor=actor, reason=reason, version=version,
                       from_version=from_version, to_version=to_version,
                       details=details or {}, created_at=utcnow())
    session.add(entry)
    await session.flush()
    return entry


async def list_audit(session: AsyncSession, limit: int = 100) -> list[AuditEntry]:
    return list((await session.scalars(
        select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit))).all())
