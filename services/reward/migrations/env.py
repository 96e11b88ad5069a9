"""Alembic environment of the reward service (history table ``alembic_version_reward``)."""

from __future__ import annotations

from services.common.alembic_env import run_env
from services.reward.models import Base
from services.reward.settings import RewardSettings

run_env(Base.metadata, lambda: RewardSettings().database_url, "alembic_version_reward")
