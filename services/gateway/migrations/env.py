"""Alembic environment for the gateway's own migration history."""

from services.common.alembic_env import run_env
from services.gateway.models import Base
from services.gateway.settings import GatewaySettings

run_env(Base.metadata, lambda: GatewaySettings().database_url, "alembic_version_gateway")
