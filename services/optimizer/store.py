"""Reading and writing observations (async SQLAlchemy; SQLite and PostgreSQL).

Ingestion is idempotent by ``rating_id``: rows go in with ``INSERT … ON CONFLICT``,
so a redelivered rating, a duplicate inside one batch, or two replicas ingesting
the same rating at the same moment store it exactly once. A trainer's correction
arrives as a higher ``revision`` of the same rating id and replaces the stored
rating in place (a lower or equal revision changes nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import utcnow
from services.optimizer.models import ObservationRow, Phase1ControlRow
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
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    values = insert(ObservationRow).values(rows)
    stmt = values.on_conflict_do_update(
        index_elements=["rating_id"],
        set_={"rating": values.excluded.rating, "revision": values.excluded.revision},
        where=ObservationRow.revision < values.excluded.revision,
    ).returning(ObservationRow.rating_id)
    result = await session.execute(stmt)
    return sum(rating_id not in known for rating_id in result.scalars())


async def load_observations(
    session: AsyncSession, providers: Sequence[str] | None = None
) -> list[Observation]:
    """Observations oldest first, optionally only those of ``providers``."""
    stmt = select(
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
    if providers is not None:
        stmt = stmt.where(ObservationRow.provider.in_(list(providers)))
    result = await session.execute(stmt)
    return [
        Observation(
            p,
            {"strength": s, "guidance": g, "structure": c},
            int(r),
            experiment_id=e,
            image_id=i,
            rater=who,
            mode=m,
            prompt_version=v,
        )
        for p, s, g, c, r, e, i, who, m, v in result.all()
    ]


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
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(Phase1ControlRow).values(values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["id"], set_={k: stmt.excluded[k] for k in values if k != "id"}
    )
    await session.execute(stmt)
    return Phase1Control(stopped, changed_by, note, now)
