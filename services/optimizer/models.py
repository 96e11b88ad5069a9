"""Tables owned by the optimizer: ``observations``, one row per rating it was told;
``phase_1_control``, the admin's manual stop of phase 1 (one row at most); and
``recommendations``, the recommendation after each model fit (its history).

``rating_id`` (the gateway's rating id) is unique: ingestion is idempotent and a
redelivered rating is never counted twice. Parameters are stored in normalised
names; the provider's native names are derived on the way out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, Float, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.db import UTCDateTime, service_metadata, utcnow


class Base(DeclarativeBase):
    metadata = service_metadata()


class ObservationRow(Base):
    """A rated point of the parameter space."""

    __tablename__ = "observations"
    __table_args__ = (CheckConstraint("rating >= 1 AND rating <= 5", name="rating_range"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rating_id: Mapped[str] = mapped_column(String(128), unique=True)
    experiment_id: Mapped[str] = mapped_column(String(128))
    image_id: Mapped[str] = mapped_column(String(128))
    rater: Mapped[str] = mapped_column(String(255))
    provider: Mapped[str] = mapped_column(String(32))
    strength: Mapped[float] = mapped_column(Float)
    guidance: Mapped[float] = mapped_column(Float)
    structure: Mapped[float] = mapped_column(Float)
    rating: Mapped[int] = mapped_column(Integer)
    mode: Mapped[str | None] = mapped_column(String(32), nullable=True)
    prompt_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A trainer's correction arrives as a higher revision of the same rating id and
    # replaces the stored rating (still one observation).
    revision: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


class Phase1ControlRow(Base):
    """Whether an admin stopped phase 1 by hand (seed 002: "manual override").

    A single row with ``id = 1``; absent means "not stopped".
    """

    __tablename__ = "phase_1_control"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    stopped: Mapped[bool] = mapped_column(Boolean)
    changed_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    note: Mapped[str | None] = mapped_column(String(500), nullable=True)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RecommendationRow(Base):
    """The recommendation of one fitted model (one row per fitted observation set).

    ``model_key`` names the model (a hash of its observations and configuration), so
    replicas that fit the same set store it once. Parameters are normalised; the
    context is that of the most recent rating, the providers all that were rated.
    """

    __tablename__ = "recommendations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_key: Mapped[str] = mapped_column(String(64), unique=True)
    observations_seen: Mapped[int] = mapped_column(Integer)
    observations_used: Mapped[int] = mapped_column(Integer)
    provider: Mapped[str] = mapped_column(String(32))
    strength: Mapped[float] = mapped_column(Float)
    guidance: Mapped[float] = mapped_column(Float)
    structure: Mapped[float] = mapped_column(Float)
    predicted_rating: Mapped[float] = mapped_column(Float)
    interval_low: Mapped[float] = mapped_column(Float)
    interval_high: Mapped[float] = mapped_column(Float)
    rating_interval_low: Mapped[float] = mapped_column(Float)
    rating_interval_high: Mapped[float] = mapped_column(Float)
    probability_within: Mapped[float | None] = mapped_column(Float, nullable=True)
    expected_regret: Mapped[float | None] = mapped_column(Float, nullable=True)
    provider_posterior: Mapped[dict[str, Any]] = mapped_column(JSON)
    mode: Mapped[str | None] = mapped_column(String(32), nullable=True)
    prompt_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    fit_seconds: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
