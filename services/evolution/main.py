"""App factory of the evolution service: wires settings, migrations, the seed
loader (run at start-up), the evolver (LLM or offline, from settings), the
export of versions for review and the ``/prompts`` routers.

Run with ``uvicorn services.evolution.main:app --port 8002``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.common.app import build_app
from services.evolution.api import evolution_router, prompts_router
from services.evolution.engine import build_evolver
from services.evolution.export import export_versions
from services.evolution.seed_loader import load_seed_versions_into
from services.evolution.settings import EvolutionSettings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


async def load_seed_versions(app: FastAPI) -> None:
    """Start-up hook: load prompts/versions/v*.json into the database."""
    settings: EvolutionSettings = app.state.settings
    await load_seed_versions_into(app.state.sessions, settings.prompts_dir)


async def start_evolution(app: FastAPI) -> None:
    """Start-up hook: pick the evolver and export the current versions for review."""
    settings: EvolutionSettings = app.state.settings
    app.state.evolver = build_evolver(settings)
    await export_versions(app.state.sessions, settings.exports_to)


def create_app(settings: EvolutionSettings | None = None) -> FastAPI:
    settings = settings or EvolutionSettings()
    return build_app(
        settings,
        title="Afinador evolution",
        description="Prompt versions, per-version ratings, prompt evolution, paired A/B "
        "tests with Bayesian promotion and rollback.",
        migrations_dir=MIGRATIONS_DIR,
        internal_routers=[prompts_router, evolution_router],
        on_startup=[load_seed_versions, start_evolution],
    )


app = create_app()
