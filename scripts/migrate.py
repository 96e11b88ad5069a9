"""Create a service's database if needed and apply its migrations.

    python -m scripts.migrate gateway            # one service
    python -m scripts.migrate all                # the four, in turn

Production runs this as the first container of each ECS task (the service's
container waits for it to succeed) and as compose's `migrate` one-off, and starts
the services with ``<SERVICE>_MIGRATE_ON_START=false``. On PostgreSQL it creates
the database named in the service's URL when it does not exist yet, and holds an
advisory lock while migrating, so two tasks starting together never migrate at once.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
from pathlib import Path

from sqlalchemy import make_url, text
from sqlalchemy.exc import IntegrityError, ProgrammingError
from sqlalchemy.ext.asyncio import create_async_engine

from services.common.db import is_postgres, run_migrations
from services.common.logging import configure_logging

SETTINGS = {
    "gateway": "services.gateway.settings:GatewaySettings",
    "optimizer": "services.optimizer.settings:OptimizerSettings",
    "evolution": "services.evolution.settings:EvolutionSettings",
    "reward": "services.reward.settings:RewardSettings",
}


def load_settings(service: str) -> object:
    module, name = SETTINGS[service].split(":")
    return getattr(importlib.import_module(module), name)()


async def ensure_database(url: str) -> bool:
    """Create the PostgreSQL database ``url`` names if it is missing; True if created."""
    if not is_postgres(url):
        return False
    target = make_url(url)
    name = target.database
    admin = create_async_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            exists = (await conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                         {"n": name})).first()
            if exists:
                return False
            try:
                await conn.execute(text(f'CREATE DATABASE "{name}"'))
            except (ProgrammingError, IntegrityError):  # created meanwhile by another task
                return False
            return True
    finally:
        await admin.dispose()


def migrate(service: str) -> None:
    settings = load_settings(service)
    url: str = settings.database_url  # type: ignore[attr-defined]
    if asyncio.run(ensure_database(url)):
        logging.getLogger(__name__).info("created database %s", make_url(url).database)
    migrations = Path(__file__).resolve().parents[1] / "services" / service / "migrations"
    run_migrations(migrations, url, f"alembic_version_{service}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("service", choices=[*sorted(SETTINGS), "all"])
    args = parser.parse_args(argv)
    services = sorted(SETTINGS) if args.service == "all" else [args.service]
    configure_logging("migrate", "INFO")
    for service in services:
        migrate(service)
    return 0


if __name__ == "__main__":
    sys.exit(main())
