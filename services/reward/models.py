"""Tables the reward service owns (and only it reads).

* ``reward_observations``: one labelled image per gateway rating, keyed uniquely by
  ``rating_id`` so redelivered ratings are stored once. It keeps the features the
  image had under ``feature_version`` so a reward model can be trained from this
  table alone.
* ``feature_cache``: features of an image content hash under one feature version,
  so the same bytes are decoded and featurised once. The same table holds CLIP
  embeddings (version ``clip:<model>``) and structure blocks of an (image, original)
  pair (key: SHA-256 of both hashes, version ``structure-v1@<size>``).
* ``reward_models``: the model registry. One row per trained version with its
  held-out metrics, training-set size and feature set; the fitted model itself is a
  blob (``blob_key``, checked against ``blob_sha256`` before loading). At most one
  row has ``status = 'active'``; ``validated`` says it passed the validation gate.
* ``reward_training_runs``: trainings requested over ``POST /ml/train`` (or started
  automatically), with their stage, progress and result, so any replica can answer
  ``GET /ml/train/{id}``.
* ``reward_audit``: every gate decision and rollback, with its figures.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    Integer,
    SmallInteger,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.db import UTCDateTime, service_metadata, utcnow


class Base(DeclarativeBase):
    metadata = service_metadata()


class Observation(Base):
    """A trainer's 1–5 rating of one image, with that image's features."""

    __tablename__ = "reward_observations"
    __table_args__ = (CheckConstraint("rating BETWEEN 1 AND 5", name="rating_range"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rating_id: Mapped[str] = mapped_column(String(64), unique=True)
    image_sha256: Mapped[str] = mapped_column(String(64), index=True)
    experiment_id: Mapped[str] = mapped_column(String(64), index=True)
    variant_id: Mapped[str | None] = mapped_column(String(64))
    option: Mapped[str] = mapped_column(String(32))
    rater: Mapped[str] = mapped_column(String(255))
    rating: Mapped[int] = mapped_column(SmallInteger)
    mode: Mapped[str | None] = mapped_column(String(32))
    prompt_version: Mapped[str | None] = mapped_column(String(64))
    feature_version: Mapped[str] = mapped_column(String(64))
    features: Mapped[list[float]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Added in 0002: the render the image was made from, and the structure block.
    original_sha256: Mapped[str | None] = mapped_column(String(64))
    structure: Mapped[list[float] | None] = mapped_column(JSON)
    # Added in 0003: a trainer's correction is a higher revision that replaces ``rating``.
    revision: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


class CachedFeatures(Base):
    """Features of the image whose bytes hash to ``image_sha256``."""

    __tablename__ = "feature_cache"

    image_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    feature_version: Mapped[str] = mapped_column(String(64), primary_key=True)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    features: Mapped[list[float]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ModelVersion(Base):
    """One trained reward model and how it did on held-out observations."""

    __tablename__ = "reward_models"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'inactive', 'rejected')", name="status_known"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version: Mapped[str] = mapped_column(String(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(64))
    feature_set: Mapped[str] = mapped_column(String(32))
    feature_version: Mapped[str] = mapped_column(String(128))
    n_train: Mapped[int] = mapped_column(Integer)
    n_holdout: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    baseline: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    validated: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str] = mapped_column(Text)
    trigger: Mapped[str] = mapped_column(String(16))
    blob_key: Mapped[str] = mapped_column(String(255))
    blob_sha256: Mapped[str] = mapped_column(String(64))
    trained_through_id: Mapped[int] = mapped_column(Integer)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class TrainingRun(Base):
    """One requested training: queued, running, then succeeded, failed or skipped.

    ``result`` holds the trained version's figures and the gate's decision;
    ``heartbeat_at`` is refreshed at every stage so a run whose replica died is
    recognised as stale (``REWARD_TRAIN_STALE_SECONDS``).
    """

    __tablename__ = "reward_training_runs"
    __table_args__ = (
        CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'skipped')",
            name="run_status_known",
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    trigger: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    stage: Mapped[str] = mapped_column(String(32))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    version: Mapped[str | None] = mapped_column(String(32))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditEntry(Base):
    """What changed which model was live, who or what did it, and why."""

    __tablename__ = "reward_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    action: Mapped[str] = mapped_column(String(32))  # gate_passed | gate_rejected | rollback
    version: Mapped[str | None] = mapped_column(String(32), index=True)
    previous: Mapped[str | None] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
