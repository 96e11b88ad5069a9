"""Reading and writing observations, the phase-1 control and the recommendation
history (async SQLAlchemy; SQLite and PostgreSQL).

Ingestion is idempotent by ``rating_id``: rows go in with ``INSERT … ON CONFLICT``,
so a redelivered rating, a duplicate inside one batch, or two replicas ingesting
the same rating at the same moment store it exactly once. A trainer's correction
arrives as a higher ``revision`` of the same rating id and replaces the stored
rating in place (a lower or equal revision changes nothing). The recommendation
history is idempotent by the model's key in the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import utcnow
from services.optimizer.models import ObservationRow, Phase1ControlRow, RecommendationRow
from services.optimizer.space import Observation


@dataclass(frozen=True)
class ObservationRecord:
    """A validated rating ready to be stored (values in normalised names)."""

    rating_id: str
    experiment_id: str
    image_id: str
    rater: str
    provider: str
    values: dict[str, float]
    rating: int
    mode: str | None = None
    prompt_version: str | None = None
    revision: int = 1


@dataclass(frozen=True)
class ProviderStats:
    count: int
    avg_rating: float


@dataclass(frozen=True)
class Summary:
    """Aggregates over every stored observation."""

    samples_seen: int
    best_rating: int | None
    providers: dict[str, ProviderStats] = field(default_factory=dict)


def _insert(session: AsyncSession) -> Any:
    dialect = session.get_bind().dialect.name
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


async def insert_observations(session: AsyncSession, records: Sequence[ObservationRecord]) -> int:
    """Store ``records``, skipping rating ids already stored (unless a record is a higher
    revision, which replaces the stored rating); returns how many were new."""
    unique: dict[str, ObservationRecord] = {}
    for record in records:
        kept = unique.get(record.rating_id)
        if kept is None or record.revision > kept.revision:
            unique[record.rating_id] = record
    if not unique:
        return 0
    known = set(
        (
            await session.execute(
                select(ObservationRow.rating_id).where(ObservationRow.rating_id.in_(list(unique)))
            )
        ).scalars()
    )
    rows = [
        {
            "rating_id": r.rating_id,
            "experiment_id": r.experiment_id,
            "image_id": r.image_id,
            "rater": r.rater,
            "provider": r.provider,
            "strength": r.values["strength"],
            "guidance": r.values["guidance"],
            "structure": r.values["structure"],
            "rating": r.rating,
            "mode": r.mode,
            "prompt_version": r.prompt_version,
            "revision": r.revision,
        }
        # Rating-id order: concurrent batches lock conflicting rows in the same order.
        for r in sorted(unique.values(), key=lambda r: r.rating_id)
    ]
    values = _insert(session)(ObservationRow).values(rows)
    stmt = values.on_conflict_do_update(
        index_elements=["rating_id"],
        set_={"rating": values.excluded.rating, "revision": values.excluded.revision},
        where=ObservationRow.revision < values.excluded.revision,
    ).returning(ObservationRow.rating_id)
    result = await session.execute(stmt)
    return sum(rating_id not in known for rating_id in result.scalars())


def _observation_query() -> Any:
    return select(
        ObservationRow.id,
        ObservationRow.provider,
        ObservationRow.strength,
        ObservationRow.guidance,
        ObservationRow.structure,
        ObservationRow.rating,
        ObservationRow.experiment_id,
        ObservationRow.image_id,
        ObservationRow.rater,
        ObservationRow.mode,
        ObservationRow.prompt_version,
    ).order_by(ObservationRow.id)


def _observation(row: Any) -> tuple[int, Observation]:
    row_id, p, s, g, c, r, e, i, who, m, v = row
    return row_id, Observation(
        p,
        {"strength": s, "guidance": g, "structure": c},
        int(r),
        experiment_id=e,
        image_id=i,
        rater=who,
        mode=m,
        prompt_version=v,
    )


async def load_observations(
    session: AsyncSession, providers: Sequence[str] | None = None
) -> list[Observation]:
    """Observations oldest first, optionally only those of ``providers``."""
    stmt = _observation_query()
    if providers is not None:
        stmt = stmt.where(ObservationRow.provider.in_(list(providers)))
    result = await session.execute(stmt)
    return [_observation(row)[1] for row in result.all()]


class ObservationLog:
    """Every stored observation, oldest first, kept in memory and brought up to date
    on each read with the rows added since (observations are never deleted; a
    trainer's correction rewrites a row in place with a higher ``revision``).

    Each read counts the rows and sums their revisions; if either is not what the
    memory plus the new rows make (a row with a smaller id committed after a larger
    one was read, another process wrote meanwhile, or a rating was corrected),
    everything is reloaded. So a read usually costs a count and the new rows, not
    the whole table, and returns exactly what :func:`load_observations` would.

    For one event loop (an ``asyncio.Lock`` orders concurrent reads).
    """

    def __init__(self) -> None:
        self._observations: list[Observation] = []
        self._last_id = 0
        self._revisions = 0
        self._lock = asyncio.Lock()
        self.full_loads = 0

    async def read(self, session: AsyncSession) -> list[Observation]:
        async with self._lock:
            revisions = func.coalesce(func.sum(ObservationRow.revision), 0)
            total, revised = (await session.execute(
                select(func.count(ObservationRow.id), revisions))).one()
            new = (await session.execute(
                _observation_query().where(ObservationRow.id > self._last_id)
            )).all()
            new_revisions = (await session.execute(
                select(revisions).where(ObservationRow.id > self._last_id))).scalar_one()
            if (len(self._observations) + len(new) != total
                    or self._revisions + int(new_revisions) != int(revised)):
                new = (await session.execute(_observation_query())).all()
                self._observations, self._last_id = [], 0
                self.full_loads += 1
            self._revisions = int(revised)
            for row in new:
                row_id, observation = _observation(row)
                self._observations.append(observation)
                self._last_id = max(self._last_id, row_id)
            return list(self._observations)


async def summarise(session: AsyncSession) -> Summary:
    """Count, best rating and per-provider count/average over all observations."""
    stmt = select(
        ObservationRow.provider,
        func.count(ObservationRow.id),
        func.avg(ObservationRow.rating),
        func.max(ObservationRow.rating),
    ).group_by(ObservationRow.provider)
    rows = (await session.execute(stmt)).all()
    providers = {p: ProviderStats(int(n), round(float(avg), 4)) for p, n, avg, _ in sorted(rows)}
    total = sum(s.count for s in providers.values())
    best = max((int(m) for *_, m in rows), default=None)
    return Summary(total, best, providers)


async def count_observations(session: AsyncSession) -> int:
    return int((await session.execute(select(func.count(ObservationRow.id)))).scalar_one())


@dataclass(frozen=True)
class Phase1Control:
    """The admin's manual stop of phase 1 (``stopped=False`` when never set)."""

    stopped: bool
    changed_by: str | None = None
    note: str | None = None
    changed_at: datetime | None = None


async def get_phase_1_control(session: AsyncSession) -> Phase1Control:
    row = await session.get(Phase1ControlRow, 1)
    if row is None:
        return Phase1Control(False)
    return Phase1Control(row.stopped, row.changed_by, row.note, row.changed_at)


async def set_phase_1_control(
    session: AsyncSession, stopped: bool, changed_by: str | None, note: str | None
) -> Phase1Control:
    """Stop or resume phase 1 by hand (an upsert of the single control row)."""
    now = utcnow()
    values = {
        "id": 1,
        "stopped": stopped,
        "changed_by": changed_by,
        "note": note,
        "changed_at": now,
    }
    stmt = _insert(session)(Phase1ControlRow).values(values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["id"], set_={k: stmt.excluded[k] for k in values if k != "id"}
    )
    await session.execute(stmt)
    return Phase1Control(stopped, changed_by, note, now)


@dataclass(frozen=True)
class RecommendationRecord:
    """The recommendation of one fitted model, as stored in the history.

    ``provider_posterior`` maps each rated provider to its posterior best:
    ``{"values": {...}, "predicted_rating": x, "interval": [lo, hi], "probability_best": p}``.
    """

    model_key: str
    observations_seen: int
    observations_used: int
    provider: str
    values: dict[str, float]
    predicted_rating: float
    interval: tuple[float, float]
    rating_interval: tuple[float, float]
    probability_within: float | None
    expected_regret: float | None
    provider_posterior: dict[str, dict[str, Any]]
    mode: str | None
    prompt_version: str | None
    fit_seconds: float
    created_at: datetime | None = None


async def insert_recommendation(session: AsyncSession, record: RecommendationRecord) -> bool:
    """Append ``record`` to the history; ``False`` if that model was already stored."""
    row = {
        "model_key": record.model_key,
        "observations_seen": record.observations_seen,
        "observations_used": record.observations_used,
        "provider": record.provider,
        "strength": record.values["strength"],
        "guidance": record.values["guidance"],
        "structure": record.values["structure"],
        "predicted_rating": record.predicted_rating,
        "interval_low": record.interval[0],
        "interval_high": record.interval[1],
        "rating_interval_low": record.rating_interval[0],
        "rating_interval_high": record.rating_interval[1],
        "probability_within": record.probability_within,
        "expected_regret": record.expected_regret,
        "provider_posterior": record.provider_posterior,
        "mode": record.mode,
        "prompt_version": record.prompt_version,
        "fit_seconds": record.fit_seconds,
        "created_at": record.created_at or utcnow(),
    }
    stmt = (
        _insert(session)(RecommendationRow)
        .values(row)
        .on_conflict_do_nothing(index_elements=["model_key"])
        .returning(RecommendationRow.id)
    )
    return len((await session.execute(stmt)).all()) == 1


async def load_recommendations(
    session: AsyncSession, limit: int
) -> tuple[list[RecommendationRecord], int]:
    """The ``limit`` most recent history rows, oldest first, and how many there are."""
    total = int(
        (await session.execute(select(func.count(RecommendationRow.id)))).scalar_one()
    )
    stmt = select(RecommendationRow).order_by(RecommendationRow.id.desc()).limit(limit)
    rows = list((await session.execute(stmt)).scalars())
    rows.reverse()
    return [
        RecommendationRecord(
            model_key=r.model_key,
            observations_seen=r.observations_seen,
            observations_used=r.observations_used,
            provider=r.provider,
            values={"strength": r.strength, "guidance": r.guidance, "structure": r.structure},
            predicted_rating=r.predicted_rating,
            interval=(r.interval_low, r.interval_high),
            rating_interval=(r.rating_interval_low, r.rating_interval_high),
            probability_within=r.probability_within,
            expected_regret=r.expected_regret,
            provider_posterior=dict(r.provider_posterior),
            mode=r.mode,
            prompt_version=r.prompt_version,
            fit_seconds=r.fit_seconds,
            created_at=r.created_at,
        )
        for r in rows
    ], total
