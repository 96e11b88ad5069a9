"""A/B tests with post-promotion monitoring, evolution runs and the audit log.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-10 10:00:00

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from services.common.db import UTCDateTime

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "ab_tests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("champion", sa.String(32), nullable=False),
        sa.Column("challenger", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("last_look", sa.Integer(), nullable=False),
        sa.Column("n_pairs", sa.Integer(), nullable=False),
        sa.Column("mean_diff", sa.Float(), nullable=True),
        sa.Column("p_better", sa.Float(), nullable=True),
        sa.Column("p_worse", sa.Float(), nullable=True),
        sa.Column("monitor_status", sa.String(16), nullable=True),
        sa.Column("monitor_decided_at", UTCDateTime(), nullable=True),
        sa.Column("monitor_p_degraded", sa.Float(), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'promoted', 'rolled_back', 'stopped')",
            name="ck_ab_tests_status",
        ),
        sa.CheckConstraint(
            "monitor_status IS NULL OR monitor_status IN "
            "('watching', 'passed', 'rolled_back', 'stopped')",
            name="ck_ab_tests_monitor_status",
        ),
        sa.ForeignKeyConstraint(
            ["champion"], ["prompt_versions.version"], name="fk_ab_tests_champion_prompt_versions"
        ),
        sa.ForeignKeyConstraint(
            ["challenger"],
            ["prompt_versions.version"],
            name="fk_ab_tests_challenger_prompt_versions",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_ab_tests"),
    )
    op.create_index("ix_ab_tests_challenger", "ab_tests", ["challenger"])
    op.create_index(
        "uq_ab_tests_one_running",
        "ab_tests",
        ["status"],
        unique=True,
        sqlite_where=sa.text("status = 'running'"),
        postgresql_where=sa.text("status = 'running'"),
    )
    op.create_table(
        "evolution_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("parent_version", sa.String(32), nullable=True),
        sa.Column("version", sa.String(32), nullable=True),
        sa.Column("engine", sa.String(16), nullable=True),
        sa.Column("total_samples", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("details", _JSON, nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'created', 'failed', 'skipped')",
            name="ck_evolution_runs_status",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_evolution_runs"),
    )
    op.create_index("ix_evolution_runs_started_at", "evolution_runs", ["started_at"])
    op.create_index(
        "uq_evolution_runs_one_running",
        "evolution_runs",
        ["status"],
        unique=True,
        sqlite_where=sa.text("status = 'running'"),
        postgresql_where=sa.text("status = 'running'"),
    )
    op.create_table(
        "prompt_audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("version", sa.String(32), nullable=True),
        sa.Column("from_version", sa.String(32), nullable=True),
        sa.Column("to_version", sa.String(32), nullable=True),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("details", _JSON, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_prompt_audit"),
    )
    op.create_index("ix_prompt_audit_version", "prompt_audit", ["version"])
    op.create_index("ix_prompt_audit_created_at", "prompt_audit", ["created_at"])


def downgrade() -> None:
    op.drop_table("prompt_audit")
    op.drop_index("uq_evolution_runs_one_running", table_name="evolution_runs")
    op.drop_table("evolution_runs")
    op.drop_index("uq_ab_tests_one_running", table_name="ab_tests")
    op.drop_table("ab_tests")
