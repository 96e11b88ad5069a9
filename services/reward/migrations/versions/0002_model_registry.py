"""Reward model registry; observations keep the original render and structure block.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reward_observations") as batch:
        batch.add_column(sa.Column("original_sha256", sa.String(64), nullable=True))
        batch.add_column(sa.Column("structure", sa.JSON(), nullable=True))
    op.create_table(
        "reward_models",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("feature_set", sa.String(32), nullable=False),
        sa.Column("feature_version", sa.String(128), nullable=False),
        sa.Column("n_train", sa.Integer(), nullable=False),
        sa.Column("n_holdout", sa.Integer(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("baseline", sa.JSON(), nullable=True),
        sa.Column("validated", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("blob_key", sa.String(255), nullable=False),
        sa.Column("blob_sha256", sa.String(64), nullable=False),
        sa.Column("trained_through_id", sa.Integer(), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('active', 'inactive', 'rejected')",
            name=op.f("ck_reward_models_status_known"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reward_models")),
        sa.UniqueConstraint("version", name=op.f("uq_reward_models_version")),
    )
    op.create_index(op.f("ix_reward_models_status"), "reward_models", ["status"])


def downgrade() -> None:
    op.drop_index(op.f("ix_reward_models_status"), "reward_models")
    op.drop_table("reward_models")
    with op.batch_alter_table("reward_observations") as batch:
        batch.drop_column("structure")
        batch.drop_column("original_sha256")
