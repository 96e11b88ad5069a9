"""Gateway tables: images, experiments, variants, generation jobs, ratings, outbox.

One experiment = one uploaded render + the variants shown as options A and B. With
the ``best_of_n`` strategy (phase 2) an experiment first generates N hidden
candidates (``option`` NULL) and the reward model picks which two are shown. Each
variant has exactly one generation job. Each rating writes one outbox row per
downstream service in the same transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from services.common.db import UTCDateTime, service_metadata, utcnow


class Base(DeclarativeBase):
    metadata = service_metadata()


class Image(Base):
    __tablename__ = "images"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # original | enhanced
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    blob_key: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(32))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    original_filename: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Experiment(Base):
    __tablename__ = "experiments"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    original_image_id: Mapped[str] = mapped_column(ForeignKey("images.id"))
    mode: Mapped[str] = mapped_column(String(16))
    project_id: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    rated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    strategy: Mapped[str] = mapped_column(String(16), default="pair", server_default="pair")
    selected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Rater quality: this experiment re-shows the images of an earlier one, blind.
    repeat_of: Mapped[str | None] = mapped_column(String(40), index=True)
    # Blind rating: True when the second generated variant is shown as option A.
    options_swapped: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Who uploaded the render from the rating page (her "pendientes" list); None: the API.
    created_by: Mapped[str | None] = mapped_column(String(255))

    variants: Mapped[list[Variant]] = relationship(
        back_populates="experiment", order_by="Variant.option", lazy="selectin"
    )


class Variant(Base):
    __tablename__ = "variants"
    __table_args__ = (UniqueConstraint("experiment_id", "option"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    experiment_id: Mapped[str] = mapped_column(ForeignKey("experiments.id"), index=True)
    option: Mapped[str | None] = mapped_column(String(1))  # None: a hidden best-of-N candidate
    candidate_index: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    provider: Mapped[str] = mapped_column(String(32))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    suggestion_source: Mapped[str] = mapped_column(String(32))
    prompt_version: Mapped[str] = mapped_column(String(32))
    prompt_arm: Mapped[str] = mapped_column(String(16), default="champion")
    prompt: Mapped[str] = mapped_column(Text)
    negative_prompt: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    stage: Mapped[str] = mapped_column(String(32), default="queued")
    progress: Mapped[float] = mapped_column(default=0.0)
    image_id: Mapped[str | None] = mapped_column(ForeignKey("images.id"))
    # The failure: ``error_code`` is its catalogue key and ``error_params`` its parameters
    # (said in the page's language); ``error`` the Spanish sentence, all that rows from
    # before migration 0008 have.
    error: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[str | None] = mapped_column(String(80))
    error_params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    model: Mapped[str | None] = mapped_column(String(128))
    estimated_cost_usd: Mapped[float | None] = mapped_column()
    predicted_rating: Mapped[float | None] = mapped_column()
    predicted_std: Mapped[float | None] = mapped_column()
    reward_model_version: Mapped[str | None] = mapped_column(String(64))
    # best_predicted | most_uncertain | fallback (reward unavailable); None outside best-of-N
    selection_reason: Mapped[str | None] = mapped_column(String(32))
    # Rater quality: the earlier variant whose image this one shows again.
    repeat_of: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    experiment: Mapped[Experiment] = relationship(back_populates="variants")


class GenerationJob(Base):
    __tablename__ = "generation_jobs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    variant_id: Mapped[str] = mapped_column(ForeignKey("variants.id"), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    available_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Rating(Base):
    __tablename__ = "ratings"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    experiment_id: Mapped[str] = mapped_column(ForeignKey("experiments.id"), index=True)
    variant_id: Mapped[str] = mapped_column(ForeignKey("variants.id"), unique=True)
    option: Mapped[str] = mapped_column(String(1))
    # None with ``cannot_judge_reason`` set: the trainer could not judge this variant
    # (never sent to the optimizer, evolution or reward services).
    rating: Mapped[int | None] = mapped_column(Integer)
    comments: Mapped[str] = mapped_column(Text, default="")
    rated_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    cannot_judge_reason: Mapped[str | None] = mapped_column(Text)
    # 1 at first; each edit (undo, history) stores the new value as revision + 1 and
    # delivers it again; the receivers replace a lower revision of the same rating id.
    revision: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # Seconds from both variants shown to submit, minus time the tab was hidden.
    seconds_to_rate: Mapped[float | None] = mapped_column()
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OutboxMessage(Base):
    __tablename__ = "outbox"
    __table_args__ = (UniqueConstraint("rating_id", "target", "revision"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rating_id: Mapped[str] = mapped_column(ForeignKey("ratings.id"), index=True)
    target: Mapped[str] = mapped_column(String(16))  # optimizer | evolution | reward
    revision: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    # Terminal: the receiver refused the message (4xx); it is never sent again.
    rejected_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PromptSnapshot(Base):
    """The last prompts the evolution service gave per version and mode, for when it is
    down. One row per (version, mode), written by an idempotent upsert."""

    __tablename__ = "prompt_snapshots"

    version: Mapped[str] = mapped_column(String(32), primary_key=True)
    mode: Mapped[str] = mapped_column(String(16), primary_key=True)
    # {provider: {prompt, negative_prompt}}
    prompts: Mapped[dict[str, Any]] = mapped_column(JSON)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# accounts -----------------------------------------------------------------------------
class User(Base):
    """A person who may use the gateway: an ``admin`` or a ``trainer``.

    ``username`` is stored lower-case and is what ratings record as their rater.
    Deactivated users keep their ratings; their sessions and tokens stop working.
    """

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    username: Mapped[str] = mapped_column(String(120), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # admin | trainer
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UserSession(Base):
    """A signed-in browser. The cookie carries a random token; only its SHA-256 is kept."""

    __tablename__ = "user_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ip: Mapped[str | None] = mapped_column(String(64))


class ApiToken(Base):
    """A bearer token for programmatic clients; only its SHA-256 is kept, revocable."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditEntry(Base):
    """Who did what, when and from where (logins, user changes, prompt decisions…)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str | None] = mapped_column(String(120), index=True)
    action: Mapped[str] = mapped_column(String(40), index=True)
    target: Mapped[str | None] = mapped_column(String(255))
    ip: Mapped[str | None] = mapped_column(String(64), index=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
