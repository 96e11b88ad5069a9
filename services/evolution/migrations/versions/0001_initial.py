"""Prompt versions and per-version rating results.

Revision ID: 0001
Revises:
Create Date: 2025-01-19 10:00:00

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from services.common.db import UTCDateTime

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "prompt_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("parent_version", sa.String(32), nullable=True),
        sa.Column("created_by", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column(
            "document",
            sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
            nullable=False,
        ),
        sa.Column("reasoning", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("promoted_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "status IN ('active', 'candidate', 'retired')", name="ck_prompt_versions_status"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_prompt_versions"),
        sa.UniqueConstraint("version", name="uq_prompt_versions_version"),
    )
    op.create_index(
        "uq_prompt_versions_one_active",
        "prompt_versions",
        ["status"],
        unique=True,
        sqlite_where=sa.text("status = 'active'"),
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_table(
        "prompt_results",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("rating_id", sa.String(64), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("experiment_id", sa.String(64), nullable=False),
        sa.Column("option", sa.String(8), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=False),
        sa.Column("comments", sa.Text(), nullable=True),
        sa.Column("rater", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("rating BETWEEN 1 AND 5", name="ck_prompt_results_rating_range"),
        sa.CheckConstraint("mode IN ('structure', 'surfaces')", name="ck_prompt_results_mode"),
        sa.ForeignKeyConstraint(
            ["version"],
            ["prompt_versions.version"],
            name="fk_prompt_results_version_prompt_versions",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_prompt_results"),
        sa.UniqueConstraint("rating_id", name="uq_prompt_results_rating_id"),
    )
    op.create_index("ix_prompt_results_version", "prompt_results", ["version"])
    op.create_index("ix_prompt_results_experiment_id", "prompt_results", ["experiment_id"])
    op.create_index("ix_prompt_results_created_at", "prompt_results", ["created_at"])


def downgrade() -> None:
    op.drop_table("prompt_results")
    op.drop_index("uq_prompt_versions_one_active", table_name="prompt_versions")
    op.drop_table("prompt_versions")
