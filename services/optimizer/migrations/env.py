"""Alembic environment of the optimizer (version table ``alembic_version_optimizer``)."""

from __future__ import annotations

from services.common.alembic_env import run_env
from services.optimizer.models import Base
from services.optimizer.settings import OptimizerSettings

run_env(Base.metadata, lambda: OptimizerSettings().database_url, "alembic_version_optimizer")
