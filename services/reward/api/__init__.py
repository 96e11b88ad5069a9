"""HTTP routers of the reward service (internal: every route needs the service token)."""

from services.reward.api.ml import router as ml_router

__all__ = ["ml_router"]
