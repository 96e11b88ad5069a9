"""Recommendation history: one row per fitted model.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "recommendations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model_key", sa.String(length=64), nullable=False),
        sa.Column("observations_seen", sa.Integer(), nullable=False),
        sa.Column("observations_used", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("strength", sa.Float(), nullable=False),
        sa.Column("guidance", sa.Float(), nullable=False),
        sa.Column("structure", sa.Float(), nullable=False),
        sa.Column("predicted_rating", sa.Float(), nullable=False),
        sa.Column("interval_low", sa.Float(), nullable=False),
        sa.Column("interval_high", sa.Float(), nullable=False),
        sa.Column("rating_interval_low", sa.Float(), nullable=False),
        sa.Column("rating_interval_high", sa.Float(), nullable=False),
        sa.Column("probability_within", sa.Float(), nullable=True),
        sa.Column("expected_regret", sa.Float(), nullable=True),
        sa.Column("provider_posterior", sa.JSON(), nullable=False),
        sa.Column("mode", sa.String(length=32), nullable=True),
        sa.Column("prompt_version", sa.String(length=64), nullable=True),
        sa.Column("fit_seconds", sa.Float(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recommendations")),
        sa.UniqueConstraint("model_key", name=op.f("uq_recommendations_model_key")),
    )


def downgrade() -> None:
    op.drop_table("recommendations")
