"""Reward service app factory: ``uvicorn services.reward.main:app --port 8003``."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.common.app import build_app
from services.reward.api import ml_router
from services.reward.extraction import get_extractor
from services.reward.runtime import start
from services.reward.settings import RewardSettings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def create_app(settings: RewardSettings | None = None) -> FastAPI:
    """Build the reward app; settings default to the environment (``REWARD_*``)."""
    settings = settings or RewardSettings()
    extractor = get_extractor(settings)

    async def startup(app: FastAPI) -> None:
        app.state.reward = await start(settings, extractor, app.state.sessions)

    async def shutdown(app: FastAPI) -> None:
        runtime = getattr(app.state, "reward", None)
        if runtime is not None:
            await runtime.close()

    app = build_app(
        settings,
        title="Afinador reward",
        description=(
            "Image features, labelled observations and the reward model (registry, "
            "validation gate, predictions with uncertainty). All /ml routes need the "
            "service token."
        ),
        migrations_dir=MIGRATIONS_DIR,
        internal_routers=[ml_router],
        on_startup=[startup],
        on_shutdown=[shutdown],
    )
    app.state.extractor = extractor
    return app


app = create_app()
