"""Manual stop of phase 1.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "phase_1_control",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("stopped", sa.Boolean(), nullable=False),
        sa.Column("changed_by", sa.String(length=255), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_phase_1_control")),
    )


def downgrade() -> None:
    op.drop_table("phase_1_control")
