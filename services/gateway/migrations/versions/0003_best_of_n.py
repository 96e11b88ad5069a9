"""best-of-N candidates, reward predictions and selection reasons

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("experiments") as batch:
        batch.add_column(sa.Column("strategy", sa.String(length=16), nullable=False,
                                   server_default="pair"))
        batch.add_column(sa.Column("selected_at", UTCDateTime(), nullable=True))
    with op.batch_alter_table("variants") as batch:
        batch.alter_column("option", existing_type=sa.String(length=1), nullable=True)
        batch.add_column(sa.Column("candidate_index", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("predicted_rating", sa.Float(), nullable=True))
        batch.add_column(sa.Column("predicted_std", sa.Float(), nullable=True))
        batch.add_column(sa.Column("reward_model_version", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("selection_reason", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("variants") as batch:
        for column in ("selection_reason", "reward_model_version", "predicted_std",
                       "predicted_rating", "candidate_index"):
            batch.drop_column(column)
        batch.alter_column("option", existing_type=sa.String(length=1), nullable=False)
    with op.batch_alter_table("experiments") as batch:
        batch.drop_column("selected_at")
        batch.drop_column("strategy")
