"""Gateway app factory: ``uvicorn services.gateway.main:app``."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from services.common.app import build_app
from services.common.background import stop_gracefully
from services.common.blobs import from_url
from services.common.errors import DATABASE_DOWN
from services.gateway import accounts, gauges, selection
from services.gateway.api import (
    auth,
    enhance,
    images,
    insight,
    pages,
    prompts_pages,
    rating_page,
    train,
)
from services.gateway.api.errors import install_error_handlers
from services.gateway.clients import ServiceClients
from services.gateway.context import Context
from services.gateway.jobs import JobRunner
from services.gateway.outbox import OutboxDeliverer
from services.gateway.providers import build_providers
from services.gateway.security import install_security
from services.gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

# Front-end packages installed from npm (web/package.json) and served as /vendor/<name>.
VENDOR = {
    "htmx": "htmx.org/dist",
    "htmx-ext-sse": "htmx-ext-sse/dist",
    "panzoom": "@panzoom/panzoom/dist",
    "img-comparison-slider": "img-comparison-slider/dist",
}


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()

    async def start_background(app: FastAPI) -> None:
        blobs = from_url(settings.storage_url, default_dir=settings.blob_dir,
                         endpoint_url=settings.s3_endpoint_url, region=settings.aws_region)
        clients = ServiceClients(settings)
        providers = build_providers(settings)
        runner = JobRunner(app.state.sessions, blobs, providers, settings)
        outbox = OutboxDeliverer(app.state.sessions, clients, blobs, settings)
        ctx = Context(settings, app.state.sessions, blobs, clients, providers, runner, outbox)
        app.state.context = ctx

        async def after_generation(variant_id: str) -> None:
            await selection.after_generation(ctx, variant_id)

        runner.on_finished = after_generation
        try:
            async with app.state.sessions() as session, session.begin():
                created = await accounts.ensure_first_admin(session, settings)
        except DATABASE_DOWN as exc:  # start anyway: /livez answers, /readyz says why not
            log.warning("could not check for a first admin: the database is not answering "
                        "(%s)", type(exc).__name__)
            created = None
        if created:
            log.warning("no users yet: created admin %r with one-time password %r; sign in at "
                        "/login and change it on /admin/users (or add users with "
                        "`python -m scripts.users add NAME --role admin|trainer`)", *created)
        runner.start()
        outbox.start()
        app.state.stop_gauges = asyncio.Event()
        app.state.gauges = asyncio.create_task(
            gauges.keep_refreshed(app.state.sessions, app.state.stop_gauges), name="gauges")
        log.info("providers enabled: %s", ", ".join(sorted(providers)))

    async def stop_background(app: FastAPI) -> None:
        ctx: Context = app.state.context
        app.state.stop_gauges.set()
        await stop_gracefully([app.state.gauges], settings.shutdown_grace_seconds)
        await ctx.jobs.stop()
        await ctx.outbox.stop()
        await ctx.clients.aclose()
        await ctx.blobs.aclose()

    app = build_app(
        settings,
        title="Afinador gateway",
        description="Trainer pages and the public training API.",
        migrations_dir=Path(__file__).parent / "migrations",
        public_routers=[auth.router, enhance.router, train.router, images.router,
                        insight.router, rating_page.router, pages.router,
                        prompts_pages.router],
        on_startup=[start_background],
        on_shutdown=[stop_background],
    )
    install_error_handlers(app)
    install_security(app, settings)
    app.state.templates = Jinja2Templates(directory=str(settings.web_dir / "templates"))
    app.mount("/static", StaticFiles(directory=settings.web_dir / "static"), name="static")
    for prefix, dist in VENDOR.items():
        directory = settings.web_dir / "node_modules" / dist
        if directory.is_dir():
            app.mount(f"/vendor/{prefix}", StaticFiles(directory=directory), name=prefix)
        else:
            log.warning("%s is not installed (%s missing): run `make run` or "
                        "`npm ci --prefix web`; pages will not be interactive", prefix, directory)
    return app


app = create_app()
