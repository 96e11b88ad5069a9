"""Experiments: create one from an upload, describe it, retry or cancel a variant.

Nothing here knows about HTTP; the JSON API and the HTMX pages both call these.
Creating an experiment validates the upload, asks evolution for prompts and the
optimizer for parameters, stores the original, the experiment, its variants and
their generation jobs in one transaction, and wakes the job runner.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Annotated

from pydantic import StringConstraints, TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import utcnow
from services.common.messages import Name
from services.gateway import jobs, prompts, selection, suggestions
from services.gateway.context import Context, image_url
from services.gateway.errors import (
    ExperimentNotFound,
    GatewayConflict,
    GatewayNotFound,
    InvalidRequest,
)
from services.gateway.ids import new_id
from services.gateway.models import Experiment, GenerationJob, Image, Rating, Variant
from services.gateway.providers import messages
from services.gateway.schemas import ExperimentOut, OptionOut
from services.gateway.uploads import normalise_upload

log = logging.getLogger(__name__)

MODES = ("structure", "surfaces")
PROJECT_ID_MAX = 100
OPTIONS = ["A", "B"]


async def create_experiment(ctx: Context, data: bytes, filename: str | None, mode: str,
                            project_id: str | None, created_by: str | None = None
                            ) -> Experiment:
    """Validate the upload, choose prompts and parameters, store everything, queue jobs.

    Nothing is stored when any step fails.
    """
    if mode not in MODES:
        raise InvalidRequest.because("mode", mode=mode)
    project_id = _checked_project_id(project_id)
    settings = ctx.settings
    image = await asyncio.to_thread(
        normalise_upload, data, max_bytes=settings.max_upload_bytes,
        max_pixels=settings.max_upload_pixels)

    experiment_id = new_id("exp")
    assignments = await prompts.assign_prompts(
        ctx.clients, ctx.sessions, settings.prompts_dir, experiment_id, mode, OPTIONS)
    enabled = sorted(ctx.providers)
    # Phase 2: with a validated reward model, generate N candidates and let it choose
    # which two to show — except during a prompt A/B test, which needs clean pairs.
    ab_test_running = any(a.arm != "champion" for a in assignments)
    best_of_n = (settings.best_of_n_enabled and not ab_test_running
                 and await selection.reward_ready(ctx))
    costs = [float(getattr(ctx.providers[p], "cost_per_image_usd", 0.0) or 0.0) for p in enabled]
    count = selection.candidate_count(settings, costs) if best_of_n else len(OPTIONS)
    chosen = await suggestions.suggest(ctx.clients, mode, count, enabled,
                                       assignments[0].version)
    swapped = False
    if best_of_n:
        options: list[str | None] = [None] * len(chosen)
        planned = [assignments[0]] * len(chosen)
    else:
        options, planned = list(OPTIONS), assignments
        # Blind rating: which suggestion is shown as A is drawn at random and recorded
        # (prompt assignments stay with their option, as the evolution service gave them).
        swapped = settings.shuffle_options and secrets.randbelow(2) == 1
        if swapped:
            chosen = list(reversed(chosen))

    image_id = new_id("img")
    blob_key = f"originals/{image_id}.jpg"
    await ctx.blobs.put(blob_key, image.data, image.content_type)
    try:
        async with ctx.sessions() as session, session.begin():
            session.add(Image(id=image_id, kind="original", sha256=image.sha256,
                              blob_key=blob_key, content_type=image.content_type,
                              width=image.width, height=image.height,
                              original_filename=(filename or "")[:255] or None))
            await session.flush()
            experiment = Experiment(id=experiment_id, original_image_id=image_id, mode=mode,
                                    project_id=project_id or None,
                                    strategy="best_of_n" if best_of_n else "pair",
                                    options_swapped=swapped, created_by=created_by)
            session.add(experiment)
            await session.flush()
            for index, (option, assignment, (params, source)) in enumerate(
                zip(options, planned, chosen, strict=True)
            ):
                provider = str(params["api"])
                prompt = assignment.for_provider(provider)
                variant = Variant(
                    id=new_id("var"), experiment_id=experiment_id, option=option,
                    candidate_index=index,
                    provider=provider, parameters=params, suggestion_source=source,
                    prompt_version=assignment.version, prompt_arm=assignment.arm,
                    prompt=prompt["prompt"], negative_prompt=prompt["negative_prompt"])
                session.add(variant)
                await session.flush()
                session.add(GenerationJob(id=new_id("job"), variant_id=variant.id,
                                          max_attempts=settings.job_max_attempts))
    except BaseException:
        await ctx.blobs.delete(blob_key)
        raise
    ctx.jobs.notify()
    log.info("experiment %s created (%s, %s)", experiment_id, mode,
             ", ".join(f"{p['api']}/{s}" for p, s in chosen))
    return experiment


_PROJECT_ID = TypeAdapter(Annotated[Name, StringConstraints(max_length=PROJECT_ID_MAX)])


def _checked_project_id(project_id: str | None) -> str | None:
    if project_id is None or not project_id.strip():
        return None
    try:
        return _PROJECT_ID.validate_python(project_id)
    except PydanticValidationError as exc:
        raise InvalidRequest.because("project_id", max=PROJECT_ID_MAX) from exc


async def load_experiment(session: AsyncSession, experiment_id: str) -> Experiment:
    experiment = await session.get(Experiment, experiment_id)
    if experiment is None:
        raise ExperimentNotFound.because(experiment=experiment_id)
    await session.refresh(experiment, ["variants"])
    return experiment


def said_error(variant: Variant, lang: str) -> str | None:
    """The variant's error in ``lang``: said from its catalogue key and parameters, or the
    Spanish sentence stored with it when it has no key (a row from before migration
    0008) or the key no longer fits the catalogue."""
    if variant.error is None or not variant.error_code:
        return variant.error
    try:
        return messages.say(variant.error_code, lang, variant.error_params or {})
    except (KeyError, IndexError, ValueError) as exc:
        log.warning("variant %s: error %r can no longer be said (%r); showing the stored text",
                    variant.id, variant.error_code, exc)
        return variant.error


async def describe_experiment(ctx: Context, experiment_id: str, lang: str = "es"
                              ) -> ExperimentOut:
    async with ctx.sessions() as session:
        experiment = await load_experiment(session, experiment_id)
        ratings = {r.variant_id: r for r in (await session.execute(
            select(Rating).where(Rating.experiment_id == experiment_id))).scalars()}
    options = []
    shown = [v for v in experiment.variants if v.option is not None]
    finished = sum(v.status in ("succeeded", "failed", "cancelled") for v in experiment.variants)
    for v in sorted(shown, key=lambda v: v.option or ""):
        rating = ratings.get(v.id)
        options.append(OptionOut(
            option=v.option or "", variant_id=v.id, status=v.status, stage=v.stage,
            progress=v.progress, provider=v.provider,
            provider_label=ctx.provider_label(v.provider, lang), parameters=v.parameters,
            suggestion_source=v.suggestion_source, prompt_version=v.prompt_version,
            prompt_arm=v.prompt_arm, url=image_url(v.image_id) if v.image_id else None,
            image_id=v.image_id, error=said_error(v, lang), error_code=v.error_code,
            error_params=v.error_params, duration_ms=v.duration_ms, model=v.model,
            estimated_cost_usd=v.estimated_cost_usd,
            rating=rating.rating if rating else None,
            comments=rating.comments if rating else None,
            rating_id=rating.id if rating else None,
            cannot_judge_reason=rating.cannot_judge_reason if rating else None,
            revision=rating.revision if rating else None,
            predicted_rating=v.predicted_rating, predicted_std=v.predicted_std,
            reward_model_version=v.reward_model_version, selection_reason=v.selection_reason))
    if experiment.rated_at is not None:
        status = "rated"
    elif experiment.strategy == "best_of_n" and experiment.selected_at is None:
        status = "generating"
    elif options and all(o.status in ("succeeded", "failed", "cancelled") for o in options):
        status = "ready"
    else:
        status = "generating"
    return ExperimentOut(
        experiment_id=experiment.id, mode=experiment.mode, project_id=experiment.project_id,
        created_at=experiment.created_at, status=status,
        original_url=image_url(experiment.original_image_id), options=options,
        strategy=experiment.strategy, candidates_total=len(experiment.variants),
        candidates_finished=finished)


async def change_variant(ctx: Context, variant_id: str, action: str) -> Variant:
    """Retry a failed or cancelled variant, or cancel one still queued or running."""
    async with ctx.sessions() as session, session.begin():
        variant = await session.get(Variant, variant_id)
        if variant is None:
            raise GatewayNotFound.because("variant", variant=variant_id)
        changed = await (jobs.retry_variant(session, variant_id) if action == "retry"
                         else jobs.cancel_variant(session, variant_id))
        if not changed:
            raise GatewayConflict.because("variant_not_retryable" if action == "retry"
                                   else "variant_not_cancellable", status=variant.status)
    if action == "retry":
        ctx.jobs.notify()
    return variant


async def experiment_of_variant(ctx: Context, variant_id: str) -> str:
    """The id of the experiment a variant belongs to."""
    async with ctx.sessions() as session:
        variant = await session.get(Variant, variant_id)
    if variant is None:
        raise GatewayNotFound.because("variant_gone")
    return variant.experiment_id


async def seconds_since_queued(ctx: Context, variant_ids: list[str]) -> dict[str, int]:
    """For each variant, whole seconds since it was queued (the page's elapsed timer)."""
    if not variant_ids:
        return {}
    now = utcnow()
    async with ctx.sessions() as session:
        rows = (await session.execute(select(Variant.id, Variant.created_at)
                                      .where(Variant.id.in_(variant_ids)))).all()
    return {vid: int((now - created).total_seconds()) for vid, created in rows}
