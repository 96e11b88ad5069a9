"""App factory shared by the services: lifespan (migrations, engine), request ids,
error handlers, ``/livez``, ``/readyz`` (alias ``/healthz``), Prometheus metrics
(``/metrics``, token required; see :mod:`services.common.metrics`) and the
service-token dependency.

A service's ``main.py`` calls :func:`build_app` with its settings, its migrations
folder and its routers; extra start-up/shut-down work (background workers, model
loading) goes in ``on_startup``/``on_shutdown`` hooks that receive the app.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.auth import service_token_dependency
from services.common.db import create_engine, run_migrations, session_factory
from services.common.errors import install_error_handlers
from services.common.logging import configure_logging, request_id_var
from services.common.metrics import install_metrics, metrics_router
from services.common.settings import ServiceSettings

log = logging.getLogger(__name__)

Hook = Callable[[FastAPI], Awaitable[None]]


async def migrate(settings: ServiceSettings, migrations_dir: Path) -> None:
    """Apply migrations in a worker thread (Alembic's env runs its own event loop)."""
    if settings.migrate_on_start:
        await asyncio.to_thread(
            run_migrations,
            migrations_dir,
            settings.database_url,
            f"alembic_version_{settings.service_name}",
        )


def build_app(
    settings: ServiceSettings,
    *,
    title: str,
    migrations_dir: Path,
    internal_routers: Sequence[APIRouter] = (),
    public_routers: Sequence[APIRouter] = (),
    on_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
    description: str = "",
) -> FastAPI:
    """Create a service app. Internal routers require the service token; public ones don't."""
    configure_logging(settings.service_name, settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await migrate(settings, migrations_dir)
        app.state.engine = create_engine(settings.database_url)
        app.state.sessions = session_factory(app.state.engine)
        for hook in on_startup:
            await hook(app)
        log.info("%s ready on %s:%s", settings.service_name, settings.host, settings.port)
        try:
            yield
        finally:
            for hook in on_shutdown:
                await hook(app)
            await app.state.engine.dispose()

    app = FastAPI(title=title, description=description, lifespan=lifespan)
    app.state.settings = settings
    install_error_handlers(app)
    token_required = [Depends(service_token_dependency(settings.service_token))]
    for router in (*internal_routers, metrics_router):
        app.include_router(router, dependencies=token_required)
    for router in public_routers:
        app.include_router(router)

    @app.middleware("http")
    async def _request_id(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        rid = request.headers.get("x-request-id") or uuid.uuid4().hex[:12]
        token = request_id_var.set(rid)
        try:
            response = await call_next(request)
        finally:
            request_id_var.reset(token)
        response.headers["X-Request-ID"] = rid
        return response

    install_metrics(app, settings.service_name)

    @app.get("/livez", tags=["ops"])
    async def livez() -> dict[str, str]:
        """The process is alive and serving (for ECS/compose restarts; touches nothing)."""
        return {"status": "ok", "service": settings.service_name}

    @app.get("/readyz", tags=["ops"])
    async def readyz(request: Request) -> dict[str, str]:
        """Ready for traffic: the database answers (for the load balancer). 503 otherwise."""
        async with request.app.state.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return {"status": "ok", "service": settings.service_name}

    app.add_api_route("/healthz", readyz, methods=["GET"], tags=["ops"],
                      summary="Same as /readyz (kept for existing health checks).")

    return app


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request; commits when the handler returns, rolls back on error."""
    async with request.app.state.sessions() as session, session.begin():
        yield session


def get_settings_from(request: Request) -> Any:
    return request.app.state.settings


SessionDep = Annotated[AsyncSession, Depends(get_session)]
