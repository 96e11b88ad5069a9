"""Alembic environment of the evolution service (shared body in services.common)."""

from __future__ import annotations

from services.common.alembic_env import run_env
from services.evolution.models import Base
from services.evolution.settings import EvolutionSettings

run_env(Base.metadata, lambda: EvolutionSettings().database_url, "alembic_version_evolution")
