"""Tables of the evolution service: prompt versions, the ratings they received,
A/B tests, evolution runs and the audit log.

``prompt_versions`` keeps the full version document (prompts and default
parameters per provider) plus its lifecycle status; at most one row is
``active`` (a partial unique index enforces it on SQLite and PostgreSQL).
``prompt_results`` holds one row per rating, unique by the gateway's rating id,
so re-delivered ratings are never counted twice. Per-version sample count and
average rating are computed from ``prompt_results``, never stored.

``ab_tests`` holds one row per champion/challenger test; at most one is
``running`` (partial unique index), and after a promotion the same row tracks the
post-promotion monitoring (``monitor_status``). ``evolution_runs`` records every
evolution attempt (trigger, engine, outcome); at most one is ``running``, which is
how replicas agree that only one evolution happens at a time. ``prompt_audit`` is
append-only: who did what to which version, when and why.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.db import UTCDateTime, service_metadata, utcnow


class Base(DeclarativeBase):
    metadata = service_metadata()

STATUSES = ("active", "candidate", "retired")
MODES = ("structure", "surfaces")
AB_STATUSES = ("running", "promoted", "rolled_back", "stopped")
MONITOR_STATUSES = ("watching", "passed", "rolled_back", "stopped")
RUN_STATUSES = ("running", "created", "failed", "skipped")

DocumentType = JSON().with_variant(JSONB(), "postgresql")


class PromptVersion(Base):
    __tablename__ = "prompt_versions"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'candidate', 'retired')", name="status"),
        Index(
            "uq_prompt_versions_one_active",
            "status",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version: Mapped[str] = mapped_column(String(32), unique=True)
    parent_version: Mapped[str | None] = mapped_column(String(32))
    created_by: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="candidate")
    document: Mapped[dict[str, Any]] = mapped_column(DocumentType)
    reasoning: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    promoted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PromptResult(Base):
    __tablename__ = "prompt_results"
    __table_args__ = (
        CheckConstraint("rating BETWEEN 1 AND 5", name="rating_range"),
        CheckConstraint("mode IN ('structure', 'surfaces')", name="mode"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rating_id: Mapped[str] = mapped_column(String(64), unique=True)
    version: Mapped[str] = mapped_column(
        String(32), ForeignKey("prompt_versions.version"), index=True
    )
    experiment_id: Mapped[str] = mapped_column(String(64), index=True)
    option: Mapped[str] = mapped_column(String(8))
    mode: Mapped[str] = mapped_column(String(16))
    rating: Mapped[int] = mapped_column(Integer)
    comments: Mapped[str | None] = mapped_column(Text)
    rater: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # A trainer's correction: a higher revision of the rating id replaces the row.
    revision: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


class AbTest(Base):
    __tablename__ = "ab_tests"
    __table_args__ = (
        CheckConstraint(
            "status IN ('running', 'promoted', 'rolled_back', 'stopped')", name="status"
        ),
        CheckConstraint(
            "monitor_status IS NULL OR monitor_status IN "
            "('watching', 'passed', 'rolled_back', 'stopped')",
            name="monitor_status",
        ),
        Index(
            "uq_ab_tests_one_running",
            "status",
            unique=True,
            sqlite_where=text("status = 'running'"),
            postgresql_where=text("status = 'running'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    champion: Mapped[str] = mapped_column(String(32), ForeignKey("prompt_versions.version"))
    challenger: Mapped[str] = mapped_column(
        String(32), ForeignKey("prompt_versions.version"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), default="running")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_reason: Mapped[str | None] = mapped_column(Text)
    last_look: Mapped[int] = mapped_column(Integer, default=0)
    n_pairs: Mapped[int] = mapped_column(Integer, default=0)
    mean_diff: Mapped[float | None] = mapped_column(Float)
    p_better: Mapped[float | None] = mapped_column(Float)
    p_worse: Mapped[float | None] = mapped_column(Float)
    monitor_status: Mapped[str | None] = mapped_column(String(16))
    monitor_decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    monitor_p_degraded: Mapped[float | None] = mapped_column(Float)


class EvolutionRun(Base):
    __tablename__ = "evolution_runs"
    __table_args__ = (
        CheckConstraint(
            "status IN ('running', 'created', 'failed', 'skipped')", name="status"
        ),
        Index(
            "uq_evolution_runs_one_running",
            "status",
            unique=True,
            sqlite_where=text("status = 'running'"),
            postgresql_where=text("status = 'running'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    trigger: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="running")
    parent_version: Mapped[str | None] = mapped_column(String(32))
    version: Mapped[str | None] = mapped_column(String(32))
    engine: Mapped[str | None] = mapped_column(String(16))
    total_samples: Mapped[int] = mapped_column(Integer, default=0)
    actor: Mapped[str] = mapped_column(String(128), default="system")
    error: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(DocumentType, default=dict)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditEntry(Base):
    __tablename__ = "prompt_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    action: Mapped[str] = mapped_column(String(32))
    version: Mapped[str | None] = mapped_column(String(32), index=True)
    from_version: Mapped[str | None] = mapped_column(String(32))
    to_version: Mapped[str | None] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(DocumentType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
