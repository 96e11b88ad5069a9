"""The hand-written migration matches the models, and downgrades cleanly."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from services.common.db import create_engine, run_migrations
from services.reward.main import MIGRATIONS_DIR
from services.reward.models import Base

VERSION_TABLE = "alembic_version_reward"


def _inspect(url: str) -> tuple[list[Any], set[str]]:
    async def run() -> tuple[list[Any], set[str]]:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:

                def check(sync_conn: Any) -> tuple[list[Any], set[str]]:
                    context = MigrationContext.configure(
                        sync_conn,
                        opts={
                            "compare_type": True,
                            "include_name": lambda name, kind, _: (
                                not (kind == "table" and name == VERSION_TABLE)
                            ),
                        },
                    )
                    tables = set(inspect(sync_conn).get_table_names())
                    return compare_metadata(context, Base.metadata), tables

                return await conn.run_sync(check)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_migration_matches_models_and_downgrades(database_url: str) -> None:
    run_migrations(MIGRATIONS_DIR, database_url, VERSION_TABLE)
    diff, tables = _inspect(database_url)
    assert diff == []
    assert {"reward_observations", "feature_cache", VERSION_TABLE} <= tables

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["version_table"] = VERSION_TABLE
    command.downgrade(config, "base")
    _, tables = _inspect(database_url)
    assert not {"reward_observations", "feature_cache"} & tables
