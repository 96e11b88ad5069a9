"""HTTP routers of the evolution service (all internal: they need the service token)."""

from services.evolution.api.evolution import router as evolution_router
from services.evolution.api.prompts import router as prompts_router

__all__ = ["evolution_router", "prompts_router"]
