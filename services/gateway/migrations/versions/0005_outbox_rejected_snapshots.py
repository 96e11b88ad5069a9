"""outbox: a terminal rejected state; prompt snapshots: one row per (version, mode)

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("rejected_at", UTCDateTime(), nullable=True))
        batch.create_index(batch.f("ix_outbox_rejected_at"), ["rejected_at"], unique=False)

    # {mode: prompts} per version becomes one row per (version, mode), so writers
    # upsert a row instead of reading, merging and rewriting a JSON document.
    old = sa.table("prompt_snapshots", sa.column("version", sa.String()),
                   sa.column("prompts", sa.JSON()), sa.column("fetched_at", UTCDateTime()))
    rows = op.get_bind().execute(sa.select(old.c.version, old.c.prompts, old.c.fetched_at)).all()
    op.drop_table("prompt_snapshots")
    snapshots = op.create_table(
        "prompt_snapshots",
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("prompts", sa.JSON(), nullable=False),
        sa.Column("fetched_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("version", "mode", name=op.f("pk_prompt_snapshots")),
    )
    op.bulk_insert(snapshots, [
        {"version": version, "mode": mode, "prompts": prompts, "fetched_at": fetched_at}
        for version, by_mode, fetched_at in rows for mode, prompts in (by_mode or {}).items()])


def downgrade() -> None:
    op.drop_table("prompt_snapshots")
    op.create_table(
        "prompt_snapshots",
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("prompts", sa.JSON(), nullable=False),
        sa.Column("fetched_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_prompt_snapshots")),
    )
    with op.batch_alter_table("outbox") as batch:
        batch.drop_index(batch.f("ix_outbox_rejected_at"))
        batch.drop_column("rejected_at")
