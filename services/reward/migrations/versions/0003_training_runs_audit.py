"""Training runs (POST /ml/train answers 202) and the audit log of model changes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reward_training_runs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("version", sa.String(32), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'skipped')",
            name=op.f("ck_reward_training_runs_run_status_known"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reward_training_runs")),
    )
    op.create_index(
        op.f("ix_reward_training_runs_status"), "reward_training_runs", ["status"]
    )
    op.create_table(
        "reward_audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("version", sa.String(32), nullable=True),
        sa.Column("previous", sa.String(32), nullable=True),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reward_audit")),
    )
    op.create_index(op.f("ix_reward_audit_version"), "reward_audit", ["version"])
    op.create_index(op.f("ix_reward_audit_created_at"), "reward_audit", ["created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_reward_audit_created_at"), "reward_audit")
    op.drop_index(op.f("ix_reward_audit_version"), "reward_audit")
    op.drop_table("reward_audit")
    op.drop_index(op.f("ix_reward_training_runs_status"), "reward_training_runs")
    op.drop_table("reward_training_runs")
