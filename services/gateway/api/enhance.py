"""Public JSON API: create an experiment, follow it, retry or cancel a variant."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.sse import EventSourceResponse, ServerSentEvent

from services.gateway import experiments
from services.gateway.api.deps import ContextDep, LangDep, require_trainer
from services.gateway.schemas import ExperimentOut
from services.gateway.uploads import read_limited

router = APIRouter(tags=["training"], dependencies=[Depends(require_trainer)])


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
    data = await read_limited(image, ctx.settings.max_upload_bytes)
    experiment = await experiments.create_experiment(ctx, data, image.filename, mode, project_id)
    return await experiments.describe_experiment(ctx, experiment.id, lang)


@router.get("/api/experiments/{experiment_id}")
async def get_experiment(experiment_id: str, ctx: ContextDep, lang: LangDep) -> ExperimentOut:
    """Each option's status, progress and image URL once it is ready."""
    return await experiments.describe_experiment(ctx, experiment_id, lang)


async def existing_experiment(experiment_id: str, ctx: ContextDep, lang: LangDep
                              ) -> ExperimentOut:
    """The experiment, or 404 before a stream starts."""
    return await experiments.describe_experiment(ctx, experiment_id, lang)


@router.get("/api/experiments/{experiment_id}/events", response_class=EventSourceResponse)
async def experiment_events(
    request: Request, ctx: ContextDep, lang: LangDep,
    first: Annotated[ExperimentOut, Depends(existing_experiment)],
) -> AsyncIterator[ServerSentEvent]:
    """Server-sent events: the experiment (same shape as above) each time it changes,
    then ``event: done`` once no option is still generating. Clients that cannot use
    SSE poll ``GET /api/experiments/{id}`` instead."""
    yield ServerSentEvent(comment="stream open", retry=2000)
    experiment, last = first, ""
    while True:
        payload = experiment.model_dump_json()
        if payload != last:
            yield ServerSentEvent(raw_data=payload, event="experiment")
            last = payload
        if experiment.status != "generating" or await request.is_disconnected():
            break
        await asyncio.sleep(ctx.settings.events_poll_seconds)
        experiment = await experiments.describe_experiment(ctx, first.experiment_id, lang)
    yield ServerSentEvent(raw_data="{}", event="done")


@router.post("/api/variants/{variant_id}/{action}")
async def change_variant(variant_id: str, action: Literal["retry", "cancel"], ctx: ContextDep,
                         lang: LangDep) -> ExperimentOut:
    """Retry a failed or cancelled option, or cancel one still queued or running."""
    variant = await experiments.change_variant(ctx, variant_id, action)
    return await experiments.describe_experiment(ctx, variant.experiment_id, lang)
