"""rating page: blind option order, "cannot judge", rating revisions, time per rating

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("experiments") as batch:
        batch.add_column(sa.Column("options_swapped", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("created_by", sa.String(length=255), nullable=True))
    with op.batch_alter_table("ratings") as batch:
        batch.alter_column("rating", existing_type=sa.Integer(), nullable=True)
        batch.add_column(sa.Column("cannot_judge_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("revision", sa.Integer(), nullable=False,
                                   server_default="1"))
        batch.add_column(sa.Column("seconds_to_rate", sa.Float(), nullable=True))
        batch.add_column(sa.Column("updated_at", UTCDateTime(), nullable=True))
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("revision", sa.Integer(), nullable=False,
                                   server_default="1"))
        batch.drop_constraint("uq_outbox_rating_id", type_="unique")
        batch.create_unique_constraint("uq_outbox_rating_id", ["rating_id", "target", "revision"])


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_constraint("uq_outbox_rating_id", type_="unique")
        batch.create_unique_constraint("uq_outbox_rating_id", ["rating_id", "target"])
        batch.drop_column("revision")
    with op.batch_alter_table("ratings") as batch:
        for column in ("updated_at", "seconds_to_rate", "revision", "cannot_judge_reason"):
            batch.drop_column(column)
        batch.alter_column("rating", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("experiments") as batch:
        batch.drop_column("created_by")
        batch.drop_column("options_swapped")
