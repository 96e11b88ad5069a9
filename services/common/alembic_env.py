"""Shared body of every service's Alembic ``env.py``.

A service's ``migrations/env.py`` calls :func:`run_env` with its metadata. The URL
comes from the Alembic config (set by :func:`services.common.db.run_migrations`) or,
when Alembic is run from the command line, from the service's settings.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable

from alembic import context
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import async_engine_from_config
from sqlalchemy.pool import NullPool


def lock_key(version_table: str) -> int:
    """A stable advisory-lock key for one migration history (signed 32-bit range)."""
    return zlib.crc32(f"afinador-migrate:{version_table}".encode()) - 2**31


def run_env(metadata: MetaData, default_url: Callable[[], str], version_table: str) -> None:
    config = context.config
    url = config.get_main_option("sqlalchemy.url") or default_url()
    table = config.attributes.get("version_table", version_table)

    def configure(connection: Connection | None = None) -> None:
        kwargs = dict(
            target_metadata=metadata,
            version_table=table,
            render_as_batch=url.startswith("sqlite"),
            compare_type=True,
        )
        if connection is None:
            context.configure(url=url, literal_binds=True, **kwargs)
        else:
            context.configure(connection=connection, **kwargs)

    if context.is_offline_mode():
        configure()
        with context.begin_transaction():
            context.run_migrations()
        return

    def do_run(connection: Connection) -> None:
        # Two tasks starting together must not migrate at once: on PostgreSQL the
        # second waits on an advisory lock (per version table) and then finds
        # nothing left to do.
        locked = connection.dialect.name == "postgresql"
        if locked:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": lock_key(table)})
        try:
            configure(connection)
            with context.begin_transaction():
                context.run_migrations()
        finally:
            if locked:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"),
                                   {"key": lock_key(table)})

    async def run_async() -> None:
        engine = async_engine_from_config(
            {"sqlalchemy.url": url}, prefix="sqlalchemy.", poolclass=NullPool
        )
        async with engine.connect() as connection:
            await connection.run_sync(do_run)
            await connection.commit()
        await engine.dispose()

    connection = config.attributes.get("connection")
    if connection is not None:
        do_run(connection)
    else:
        asyncio.run(run_async())
