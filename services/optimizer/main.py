"""App factory of the optimizer service (``uvicorn services.optimizer.main:app``)."""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path

from fastapi import FastAPI

from services.common.app import build_app
from services.optimizer.api import router
from services.optimizer.model import ModelCache
from services.optimizer.settings import OptimizerSettings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _import_model_libraries() -> None:
    for module in ("scipy.linalg", "scipy.optimize", "scipy.stats"):
        importlib.import_module(module)


async def _start_warm_up(app: FastAPI) -> None:
    """Import SciPy in a worker thread after start-up, so the service starts fast
    and the first suggestion does not pay the imports."""
    app.state.warm_up = asyncio.create_task(asyncio.to_thread(_import_model_libraries))


async def _finish_warm_up(app: FastAPI) -> None:
    await app.state.warm_up


def create_app(settings: OptimizerSettings | None = None) -> FastAPI:
    """Build the optimizer app; settings default to the environment."""
    settings = settings or OptimizerSettings()
    app = build_app(
        settings,
        title="Afinador optimizer",
        description="Rating-aware Gaussian-process suggestions of generation parameters "
        "(Thompson sampling over providers, exploit + Expected Improvement batches), "
        "learned from trainers' ratings.",
        migrations_dir=MIGRATIONS_DIR,
        internal_routers=[router],
        on_startup=[_start_warm_up],
        on_shutdown=[_finish_warm_up],
    )
    app.state.models = ModelCache(settings.model_cache_size)
    return app


app = create_app()
