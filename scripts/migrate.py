"""Apply one service's migrations (`python -m scripts.migrate <service>`).

Production runs this as a pre-start step (an ECS task or compose one-off) and
starts the services with ``<SERVICE>_MIGRATE_ON_START=false``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from services.common.db import run_migrations
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("service", choices=sorted(SETTINGS))
    args = parser.parse_args(argv)
    settings = load_settings(args.service)
    configure_logging(args.service, getattr(settings, "log_level", "INFO"))
    migrations = Path(__file__).resolve().parents[1] / "services" / args.service / "migrations"
    run_migrations(migrations, settings.database_url,  # type: ignore[attr-defined]
                   f"alembic_version_{args.service}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
