"""The gateway's hand-written migrations create exactly the tables the models describe."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Float

from scripts.users import MIGRATIONS
from services.common.db import create_engine, run_migrations
from services.gateway.models import Base


def test_migrations_match_the_models(database_url: str) -> None:
    run_migrations(MIGRATIONS, database_url, "alembic_version_gateway")

    async def diff() -> list[Any]:
        engine = create_engine(database_url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True}),
                    Base.metadata))
        finally:
            await engine.dispose()

    changes = [c for c in asyncio.run(diff()) if not _equivalent(c)]
    assert changes == []


def _equivalent(change: Any) -> bool:
    """Differences that are not differences: Alembic's own version table, and a plain
    ``Float`` that PostgreSQL reflects as ``DOUBLE PRECISION`` (the same 8-byte type)."""
    if isinstance(change, tuple) and change[0] == "remove_table":
        return bool(change[1].name.startswith("alembic_version"))
    if isinstance(change, list) and all(c[0] == "modify_type" for c in change):
        return all(isinstance(c[5], Float) and isinstance(c[6], Float) for c in change)
    return False
