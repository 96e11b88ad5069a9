"""Public JSON API: create an experiment, follow it, retry or cancel a variant."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import StreamingResponse

from services.common.errors import Conflict, NotFound
from services.gateway import jobs, training
from services.gateway.api.deps import ContextDep, LangDep
from services.gateway.models import Variant
from services.gateway.schemas import ExperimentOut

router = APIRouter(tags=["training"])


async def read_upload(ctx: training.Context, image: UploadFile) -> bytes:
    """Read at most one byte over the limit, so huge uploads are refused cheaply."""
    return await image.read(ctx.settings.max_upload_bytes + 1)


@router.post("/api/enhance/train", status_code=202)
async def enhance_train(
    ctx: ContextDep,
    lang: LangDep,
    image: UploadFile = File(..., description="The render: JPEG, PNG or WebP."),
    mode: str = Form("structure"),
    project_id: str | None = Form(None),
    site_visit_id: str | None = Form(None),
) -> ExperimentOut:
    """Upload a render; answers at once with the experiment and its two queued options."""
    data = await read_upload(ctx, image)
    experiment = await training.create_experiment(ctx, data, image.filename, mode, project_id)
    return await training.describe_experiment(ctx, experiment.id, lang)


@router.get("/api/experiments/{experiment_id}")
async def get_experiment(experiment_id: str, ctx: ContextDep, lang: LangDep) -> ExperimentOut:
    """Each option's status, progress and image URL once it is ready."""
    return await training.describe_experiment(ctx, experiment_id, lang)


@router.get("/api/experiments/{experiment_id}/events")
async def experiment_events(experiment_id: str, request: Request, ctx: ContextDep,
                            lang: LangDep) -> StreamingResponse:
    """Server-sent events: the experiment (same shape as above) each time it changes,
    then ``event: done`` once no option is still generating. Clients that cannot use
    SSE poll ``GET /api/experiments/{id}`` instead."""
    await training.describe_experiment(ctx, experiment_id, lang)  # 404 before streaming
    interval = ctx.settings.events_poll_seconds

    async def stream() -> AsyncIterator[str]:
        last, last_sent = "", time.monotonic()
        yield "retry: 2000\n\n"
        while not await request.is_disconnected():
            experiment = await training.describe_experiment(ctx, experiment_id, lang)
            payload = experiment.model_dump_json()
            if payload != last:
                yield f"event: experiment\ndata: {payload}\n\n"
                last, last_sent = payload, time.monotonic()
            elif time.monotonic() - last_sent > 15:
                yield ": keep-alive\n\n"
                last_sent = time.monotonic()
            if experiment.status != "generating":
                yield "event: done\ndata: {}\n\n"
                return
            await asyncio.sleep(interval)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _change_variant(ctx: training.Context, variant_id: str, action: str) -> Variant:
    async with ctx.sessions() as session, session.begin():
        variant = await session.get(Variant, variant_id)
        if variant is None:
            raise NotFound(f"No existe la variante {variant_id}.",
                           f"Variant {variant_id} does not exist.")
        changed = await (jobs.retry_variant(session, variant_id) if action == "retry"
                         else jobs.cancel_variant(session, variant_id))
        if not changed:
            raise Conflict(
                f"La variante está en estado «{variant.status}» y no se puede "
                f"{'reintentar' if action == 'retry' else 'cancelar'}.",
                f"The variant is {variant.status} and cannot be {action}ed.")
    if action == "retry":
        ctx.jobs.notify()
    return variant


@router.post("/api/variants/{variant_id}/retry")
async def retry(variant_id: str, ctx: ContextDep, lang: LangDep) -> ExperimentOut:
    variant = await _change_variant(ctx, variant_id, "retry")
    return await training.describe_experiment(ctx, variant.experiment_id, lang)


@router.post("/api/variants/{variant_id}/cancel")
async def cancel(variant_id: str, ctx: ContextDep, lang: LangDep) -> ExperimentOut:
    variant = await _change_variant(ctx, variant_id, "cancel")
    return await training.describe_experiment(ctx, variant.experiment_id, lang)
