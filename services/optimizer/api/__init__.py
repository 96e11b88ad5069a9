"""HTTP routers of the optimizer (internal: every route needs the service token)."""

from services.optimizer.api.ml import router

__all__ = ["router"]
