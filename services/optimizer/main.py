"""App factory of the optimizer service (``uvicorn services.optimizer.main:app``)."""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI

from services.common.app import build_app
from services.common.db import transaction
from services.optimizer import store
from services.optimizer.api import router
from services.optimizer.fitting import ProcessFitter, fit_model
from services.optimizer.history import record_recommendation
from services.optimizer.keeper import FitFunction, Fitted, ModelKeeper
from services.optimizer.settings import OptimizerSettings
from services.optimizer.space import Observation

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _import_model_libraries() -> None:
    for module in ("scipy.linalg", "scipy.optimize", "scipy.stats"):
        importlib.import_module(module)


async def _start(app: FastAPI) -> None:
    """Import SciPy in a worker thread after start-up, so the service starts fast and
    the first suggestion does not pay the imports; then fit the stored ratings, if
    any, in the background."""
    app.state.warm_up = asyncio.create_task(asyncio.to_thread(_import_model_libraries))
    app.state.keeper.changed()


async def _stop(app: FastAPI) -> None:
    await app.state.keeper.close()
    if app.state.process_fitter is not None:
        app.state.process_fitter.close()
    await app.state.warm_up


def create_app(
    settings: OptimizerSettings | None = None,
    *,
    fit: FitFunction | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> FastAPI:
    """Build the optimizer app; settings default to the environment.

    ``fit`` and ``clock`` are the model keeper's (tests pass gated fits and fake
    clocks); by default fits search hyperparameters in a child process
    (``fit_in_process``) or in the keeper's thread.
    """
    settings = settings or OptimizerSettings()
    app = build_app(
        settings,
        title="Afinador optimizer",
        description="Rating-aware Gaussian-process suggestions of generation parameters "
        "(Thompson sampling over providers, exploit + Expected Improvement batches), "
        "learned from trainers' ratings.",
        migrations_dir=MIGRATIONS_DIR,
        internal_routers=[router],
        on_startup=[_start],
        on_shutdown=[_stop],
    )

    app.state.observations = store.ObservationLog()

    async def load() -> list[Observation]:
        async with transaction(app.state.sessions) as session:
            return await app.state.observations.read(session)

    async def on_fitted(fitted: Fitted) -> None:
        await record_recommendation(app.state.sessions, app.state.keeper, fitted)

    app.state.process_fitter = None
    if fit is None:
        if settings.fit_in_process:
            app.state.process_fitter = fit = ProcessFitter()
        else:
            fit = fit_model
    app.state.keeper = ModelKeeper(
        settings.gp_config(), load=load, fit=fit, clock=clock, on_fitted=on_fitted
    )
    return app


app = create_app()
