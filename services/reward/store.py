"""Queries on the reward service's tables; no HTTP, no feature computation.

Inserts that may race (two deliveries of one rating, two uploads of one image) use
``INSERT … ON CONFLICT DO NOTHING`` on SQLite and PostgreSQL, so the loser neither
raises nor aborts its transaction; any other backend falls back to a SAVEPOINT and
catches ``IntegrityError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import utcnow
from services.reward.models import (
    AuditEntry,
    CachedFeatures,
    ModelVersion,
    Observation,
    TrainingRun,
)


@dataclass(frozen=True)
class CacheEntry:
    """Features stored for one image under one feature version."""

    width: int
    height: int
    features: list[float]


@dataclass(frozen=True)
class NewObservation:
    """Everything stored for one labelled rating."""

    rating_id: str
    image_sha256: str
    experiment_id: str
    option: str
    rater: str
    rating: int
    feature_version: str
    features: Sequence[float]
    variant_id: str | None = None
    mode: str | None = None
    prompt_version: str | None = None
    original_sha256: str | None = None
    structure: Sequence[float] | None = None


async def _insert_ignoring_conflict(
    session: AsyncSession, table: Any, values: dict[str, Any], keys: Sequence[str]
) -> bool:
    """Insert one row unless a row with the same ``keys`` exists; True when inserted."""
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        module = sqlite if dialect == "sqlite" else postgresql
        stmt = (
            module.insert(table)
            .values(**values)
            .on_conflict_do_nothing(index_elements=list(keys))
            .returning(*(table.c[k] for k in keys))
        )
        return (await session.execute(stmt)).first() is not None
    try:
        async with session.begin_nested():
            await session.execute(insert(table).values(**values))
    except IntegrityError:
        return False
    return True


async def get_cached_features(
    session: AsyncSession, image_sha256: str, feature_version: str
) -> CacheEntry | None:
    row = await session.get(CachedFeatures, (image_sha256, feature_version))
    if row is None:
        return None
    return CacheEntry(row.width, row.height, list(row.features))


async def put_cached_features(
    session: AsyncSession, image_sha256: str, feature_version: str, entry: CacheEntry
) -> bool:
    """Cache features for an image; False when another request cached them first."""
    return await _insert_ignoring_conflict(
        session,
        CachedFeatures.__table__,
        {
            "image_sha256": image_sha256,
            "feature_version": feature_version,
            "width": entry.width,
            "height": entry.height,
            "features": list(entry.features),
            "created_at": utcnow(),
        },
        ("image_sha256", "feature_version"),
    )


async def get_observation(session: AsyncSession, rating_id: str) -> Observation | None:
    result = await session.execute(select(Observation).where(Observation.rating_id == rating_id))
    return result.scalar_one_or_none()


async def add_observation(session: AsyncSession, obs: NewObservation) -> bool:
    """Store an observation; False (and nothing written) when its rating_id exists."""
    return await _insert_ignoring_conflict(
        session,
        Observation.__table__,
        {
            "rating_id": obs.rating_id,
            "image_sha256": obs.image_sha256,
            "experiment_id": obs.experiment_id,
            "variant_id": obs.variant_id,
            "option": obs.option,
            "rater": obs.rater,
            "rating": obs.rating,
            "mode": obs.mode,
            "prompt_version": obs.prompt_version,
            "feature_version": obs.feature_version,
            "features": list(obs.features),
            "original_sha256": obs.original_sha256,
            "structure": None if obs.structure is None else list(obs.structure),
            "created_at": utcnow(),
        },
        ("rating_id",),
    )


async def count_observations(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Observation)) or 0)


async def ratings_histogram(session: AsyncSession) -> dict[int, int]:
    """Number of observations per star rating, 1 to 5 (zeros included)."""
    result = await session.execute(
        select(Observation.rating, func.count()).group_by(Observation.rating)
    )
    counts = {stars: 0 for stars in range(1, 6)}
    for stars, count in result.all():
        counts[int(stars)] = int(count)
    return counts


async def get_cached_many(
    session: AsyncSession, hashes: Sequence[str], feature_version: str
) -> dict[str, CacheEntry]:
    """Cached features of several images under one version, by content hash."""
    if not hashes:
        return {}
    out: dict[str, CacheEntry] = {}
    unique = sorted(set(hashes))
    for start in range(0, len(unique), 500):  # keep IN lists a sane size
        result = await session.execute(
            select(CachedFeatures).where(
                CachedFeatures.feature_version == feature_version,
                CachedFeatures.image_sha256.in_(unique[start : start + 500]),
            )
        )
        for row in result.scalars():
            out[row.image_sha256] = CacheEntry(row.width, row.height, list(row.features))
    return out


async def list_observations(session: AsyncSession) -> list[Observation]:
    """Every observation, oldest first (the training set is built from these)."""
    result = await session.execute(select(Observation).order_by(Observation.id))
    return list(result.scalars())


async def count_observations_after(session: AsyncSession, observation_id: int) -> int:
    stmt = select(func.count()).select_from(Observation).where(Observation.id > observation_id)
    return int(await session.scalar(stmt) or 0)


# --- model registry -----------------------------------------------------------------


async def last_trained_through(session: AsyncSession) -> int:
    """Highest observation id any trained version (active, inactive or rejected) saw."""
    value = await session.scalar(select(func.max(ModelVersion.trained_through_id)))
    return int(value or 0)


REGISTRY_LOCK = 0x41464E52  # "AFNR": the advisory-lock id of the model registry


async def lock_registry(session: AsyncSession) -> None:
    """Serialise registry writes across replicas until this transaction ends.

    On PostgreSQL a transaction-level advisory lock: a second replica that finishes
    training at the same moment waits here, then sees the first one's version (so
    names never collide, no blob is overwritten, and its gate compares against the
    version the first one activated). SQLite is one process's database: no-op.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": REGISTRY_LOCK})


async def next_version_name(session: AsyncSession) -> str:
    count = int(await session.scalar(select(func.count()).select_from(ModelVersion)) or 0)
    return f"rm-{count + 1:04d}"


async def add_model(session: AsyncSession, row: ModelVersion) -> ModelVersion:
    session.add(row)
    await session.flush()
    return row


async def get_active_model(session: AsyncSession) -> ModelVersion | None:
    result = await session.execute(
        select(ModelVersion).where(ModelVersion.status == "active").order_by(ModelVersion.id)
    )
    return result.scalars().first()


async def get_model(session: AsyncSession, version: str) -> ModelVersion | None:
    result = await session.execute(select(ModelVersion).where(ModelVersion.version == version))
    return result.scalar_one_or_none()


async def list_models(session: AsyncSession) -> list[ModelVersion]:
    result = await session.execute(select(ModelVersion).order_by(ModelVersion.id.desc()))
    return list(result.scalars())


async def activate(session: AsyncSession, version: str) -> None:
    """Make ``version`` the only active model (its predecessor becomes inactive)."""
    await session.execute(
        update(ModelVersion).where(ModelVersion.status == "active").values(status="inactive")
    )
    await session.execute(
        update(ModelVersion)
        .where(ModelVersion.version == version)
        .values(status="active", activated_at=utcnow())
    )


async def previous_validated(session: AsyncSession, current: str | None) -> ModelVersion | None:
    """The most recently activated validated version other than ``current``."""
    stmt = (
        select(ModelVersion)
        .where(
            ModelVersion.validated.is_(True),
            ModelVersion.activated_at.is_not(None),
            ModelVersion.version != (current or ""),
        )
        .order_by(ModelVersion.activated_at.desc(), ModelVersion.id.desc())
    )
    return (await session.execute(stmt)).scalars().first()


# --- training runs and the audit log -------------------------------------------------

TRAINING_LOCK = 0x41464E54  # "AFNT": held (session level) for the whole of one training


async def try_training_lock(conn: Any) -> bool:
    """Take the cross-replica training lock on ``conn`` (an AsyncConnection).

    PostgreSQL: a session-level advisory lock, so it lasts while the training runs on
    other connections; False when another replica holds it. Other backends serve one
    process, whose own lock suffices: always True.
    """
    if conn.dialect.name != "postgresql":
        return True
    got = await conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": TRAINING_LOCK})
    return bool(got)


async def release_training_lock(conn: Any) -> None:
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": TRAINING_LOCK})


async def add_run(session: AsyncSession, run: TrainingRun) -> TrainingRun:
    session.add(run)
    await session.flush()
    return run


async def get_run(session: AsyncSession, run_id: str) -> TrainingRun | None:
    return await session.get(TrainingRun, run_id)


async def update_run(session: AsyncSession, run_id: str, **values: Any) -> None:
    await session.execute(
        update(TrainingRun).where(TrainingRun.id == run_id).values(heartbeat_at=utcnow(), **values)
    )


async def live_run(session: AsyncSession, fresh_after: datetime) -> TrainingRun | None:
    """The oldest queued or running training whose heartbeat is after ``fresh_after``."""
    stmt = (
        select(TrainingRun)
        .where(
            TrainingRun.status.in_(("queued", "running")),
            TrainingRun.heartbeat_at > fresh_after,
        )
        .order_by(TrainingRun.created_at)
    )
    return (await session.execute(stmt)).scalars().first()


async def latest_run(session: AsyncSession) -> TrainingRun | None:
    stmt = select(TrainingRun).order_by(TrainingRun.created_at.desc())
    return (await session.execute(stmt)).scalars().first()


async def audit(
    session: AsyncSession,
    action: str,
    *,
    actor: str,
    reason: str,
    version: str | None = None,
    previous: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        action=action,
        version=version,
        previous=previous,
        actor=actor,
        reason=reason,
        details=details or {},
        created_at=utcnow(),
    )
    session.add(entry)
    await session.flush()
    return entry


async def list_audit(session: AsyncSession, limit: int = 50) -> list[AuditEntry]:
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    return list((await session.execute(stmt)).scalars())
