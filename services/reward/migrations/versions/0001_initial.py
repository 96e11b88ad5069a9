"""Reward service initial schema: labelled observations and the feature cache.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reward_observations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("rating_id", sa.String(64), nullable=False),
        sa.Column("image_sha256", sa.String(64), nullable=False),
        sa.Column("experiment_id", sa.String(64), nullable=False),
        sa.Column("variant_id", sa.String(64), nullable=True),
        sa.Column("option", sa.String(32), nullable=False),
        sa.Column("rater", sa.String(255), nullable=False),
        sa.Column("rating", sa.SmallInteger(), nullable=False),
        sa.Column("mode", sa.String(32), nullable=True),
        sa.Column("prompt_version", sa.String(64), nullable=True),
        sa.Column("feature_version", sa.String(64), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "rating BETWEEN 1 AND 5", name=op.f("ck_reward_observations_rating_range")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reward_observations")),
        sa.UniqueConstraint("rating_id", name=op.f("uq_reward_observations_rating_id")),
    )
    op.create_index(
        op.f("ix_reward_observations_image_sha256"), "reward_observations", ["image_sha256"]
    )
    op.create_index(
        op.f("ix_reward_observations_experiment_id"), "reward_observations", ["experiment_id"]
    )
    op.create_table(
        "feature_cache",
        sa.Column("image_sha256", sa.String(64), nullable=False),
        sa.Column("feature_version", sa.String(64), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("image_sha256", "feature_version", name=op.f("pk_feature_cache")),
    )


def downgrade() -> None:
    op.drop_table("feature_cache")
    op.drop_index(op.f("ix_reward_observations_experiment_id"), "reward_observations")
    op.drop_index(op.f("ix_reward_observations_image_sha256"), "reward_observations")
    op.drop_table("reward_observations")
