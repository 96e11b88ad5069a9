"""rater-quality repeats: an experiment (and its variants) may re-show earlier images

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("experiments") as batch:
        batch.add_column(sa.Column("repeat_of", sa.String(length=40), nullable=True))
        batch.create_index("ix_experiments_repeat_of", ["repeat_of"])
    with op.batch_alter_table("variants") as batch:
        batch.add_column(sa.Column("repeat_of", sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("variants") as batch:
        batch.drop_column("repeat_of")
    with op.batch_alter_table("experiments") as batch:
        batch.drop_index("ix_experiments_repeat_of")
        batch.drop_column("repeat_of")
