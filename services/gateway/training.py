"""The training loop as the gateway runs it: create experiments, save ratings, report.

These functions know nothing about HTTP; the JSON API and the HTMX pages both call
them. ``Context`` bundles what they need (sessions, blob store, clients, jobs,
outbox, settings).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.db import utcnow
from services.common.errors import ServiceUnavailable, ValidationFailed
from services.gateway import prompts, selection, suggestions
from services.gateway.clients import ServiceClients
from services.gateway.errors import ExperimentNotFound, RatingRejected
from services.gateway.ids import new_id
from services.gateway.jobs import JobRunner
from services.gateway.models import Experiment, GenerationJob, Image, Rating, Variant
from services.gateway.outbox import OutboxDeliverer, outbox_messages, pending_counts
from services.gateway.providers import Provider
from services.gateway.schemas import ExperimentOut, OptionOut, RateIn, RateOut
from services.gateway.settings import GatewaySettings
from services.gateway.storage import BlobStore
from services.gateway.uploads import normalise_upload

log = logging.getLogger(__name__)

MODES = ("structure", "surfaces")
OPTIONS = ["A", "B"]


@dataclass
class Context:
    settings: GatewaySettings
    sessions: async_sessionmaker[AsyncSession]
    blobs: BlobStore
    clients: ServiceClients
    providers: dict[str, Provider]
    jobs: JobRunner
    outbox: OutboxDeliverer


def image_url(image_id: str) -> str:
    return f"/images/{image_id}"


def provider_label(ctx: Context, provider: str, lang: str = "es") -> str:
    impl = ctx.providers.get(provider)
    if impl is None:
        return provider
    return impl.label_en if lang == "en" else impl.label_es


# creating experiments --------------------------------------------------------------
async def create_experiment(ctx: Context, data: bytes, filename: str | None, mode: str,
                            project_id: str | None) -> Experiment:
    """Validate the upload, choose prompts and parameters, store everything, queue jobs.

    Nothing is stored when any step fails.
    """
    if mode not in MODES:
        raise ValidationFailed(
            f"Modo desconocido {mode!r}: elige 'structure' (estructura) "
            "o 'surfaces' (superficies).",
            f"Unknown mode {mode!r}: choose 'structure' or 'surfaces'.",
        )
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
    count = selection.candidate_count(ctx, enabled) if best_of_n else len(OPTIONS)
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
                                    options_swapped=swapped)
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


async def load_experiment(session: AsyncSession, experiment_id: str) -> Experiment:
    experiment = await session.get(Experiment, experiment_id)
    if experiment is None:
        raise ExperimentNotFound(
            f"No existe el experimento {experiment_id}.",
            f"Experiment {experiment_id} does not exist.")
    await session.refresh(experiment, ["variants"])
    return experiment


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
            provider_label=provider_label(ctx, v.provider, lang), parameters=v.parameters,
            suggestion_source=v.suggestion_source, prompt_version=v.prompt_version,
            prompt_arm=v.prompt_arm, url=image_url(v.image_id) if v.image_id else None,
            image_id=v.image_id, error=v.error, duration_ms=v.duration_ms, model=v.model,
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


# rating ------------------------------------------------------------------------------
async def rating_totals(session: AsyncSession) -> tuple[int, float | None]:
    count, best = (await session.execute(select(func.count(Rating.rating), func.max(Rating.rating)))
                   ).one()
    return int(count), (float(best) if best is not None else None)


def phase1_status(settings: GatewaySettings, samples: int, best: float | None,
                  optimizer: dict[str, Any] | None) -> tuple[bool, str | None]:
    """Phase 1 is complete by the seeds' rule (50 samples, or a best rating of at least
    4.0) or when the optimizer says so (it also knows about an administrator's manual
    stop). Returns (complete, reason)."""
    if optimizer and optimizer.get("phase_1_complete"):
        return True, optimizer.get("phase_1_reason")
    if samples >= settings.phase1_max_samples:
        return True, "samples"
    if best is not None and best >= settings.phase1_target_rating:
        return True, "best_rating"
    return False, None


async def rate_experiment(ctx: Context, body: RateIn) -> RateOut:
    """Save the trainer's ratings and their outbox rows in one transaction, then try to
    deliver them at once (the outbox keeps retrying in the background if that fails)."""
    options = [r.option for r in body.ratings]
    if len(set(options)) != len(options):
        raise ValidationFailed("Cada opción solo puede puntuarse una vez por envío.",
                               "Each option can be rated only once per submission.")
    rating_ids: list[str] = []
    try:
        async with ctx.sessions() as session, session.begin():
            experiment = await load_experiment(session, body.experiment_id)
            by_option = {v.option: v for v in experiment.variants if v.option is not None}
            original = await session.get(Image, experiment.original_image_id)
            assert original is not None
            already = set((await session.execute(
                select(Rating.option).where(Rating.experiment_id == experiment.id))).scalars())
            for item in body.ratings:
                variant = by_option.get(item.option)
                if variant is None:
                    raise ValidationFailed(f"El experimento no tiene la opción {item.option}.",
                                           f"The experiment has no option {item.option}.")
                if item.option in already:
                    raise RatingRejected(
                        f"La opción {item.option} ya fue puntuada; no se guardó nada nuevo.",
                        f"Option {item.option} was already rated; nothing new was saved.")
                if variant.status != "succeeded" or variant.image_id is None:
                    raise RatingRejected(
                        f"La opción {item.option} no tiene imagen (estado: {variant.status}); "
                        "espera a que termine o reinténtala.",
                        f"Option {item.option} has no image (status: {variant.status}); "
                        "wait for it or retry it.")
                enhanced = await session.get(Image, variant.image_id)
                assert enhanced is not None
                rating = Rating(id=new_id("rat"), experiment_id=experiment.id,
                                variant_id=variant.id, option=item.option, rating=item.rating,
                                cannot_judge_reason=item.cannot_judge_reason,
                                comments=item.comments.strip(), rated_by=body.rated_by.strip(),
                                seconds_to_rate=body.seconds_to_rate)
                session.add(rating)
                await session.flush()
                session.add_all(outbox_messages(rating, variant, experiment, enhanced.blob_key,
                                                original.blob_key))
                rating_ids.append(rating.id)
            experiment.rated_at = utcnow()
    except IntegrityError as exc:
        raise RatingRejected("Estas opciones ya fueron puntuadas (envío duplicado).",
                             "These options were already rated (duplicate submission).") from exc

    try:
        deliveries = await asyncio.wait_for(ctx.outbox.deliver_due(rating_ids),
                                            ctx.settings.rate_delivery_timeout_seconds)
    except TimeoutError:
        deliveries = {}
    ctx.outbox.notify()

    async with ctx.sessions() as session:
        samples, best = await rating_totals(session)
    ml_updated = deliveries.get("optimizer", False)
    optimizer = await _optional(ctx.clients.optimizer_status(sorted(ctx.providers))
                                ) if ml_updated else None
    return RateOut(
        success=True,
        message="Puntuaciones guardadas" + ("" if ml_updated else
                                            "; el optimizador las recibirá en cuanto responda"),
        ml_updated=ml_updated, current_best_rating=best, samples_collected=samples,
        phase_1_complete=phase1_status(ctx.settings, samples, best, optimizer)[0],
        rating_ids=rating_ids, deliveries=deliveries)


# status and history --------------------------------------------------------------------
async def _optional(coro: Any) -> dict[str, Any] | None:
    try:
        return dict(await asyncio.wait_for(coro, 3.0))
    except (ServiceUnavailable, TimeoutError, OSError) as exc:
        log.info("status: a service is unavailable: %s", exc)
        return None
    except Exception:
        log.exception("status: unexpected error from a service")
        return None


async def training_status(ctx: Context) -> dict[str, Any]:
    """The status panel, in the seeds' ``/api/train/status`` shape plus service health."""
    optimizer, evolution, reward = await asyncio.gather(
        _optional(ctx.clients.optimizer_status(sorted(ctx.providers))),
        _optional(ctx.clients.evolution_status()),
        _optional(ctx.clients.reward_status()),
    )
    async with ctx.sessions() as session:
        samples, best = await rating_totals(session)
        pending = await pending_counts(session)
        by_provider = (await session.execute(
            select(Variant.provider, func.avg(Rating.rating), func.count(Rating.rating))
            .join(Rating, Rating.variant_id == Variant.id).where(Rating.rating.is_not(None))
            .group_by(Variant.provider)
        )).all()
        live = (await session.execute(
            select(Variant.predicted_rating, Rating.rating)
            .join(Rating, Rating.variant_id == Variant.id)
            .where(Variant.predicted_rating.is_not(None), Rating.rating.is_not(None)))).all()
        best_row = (await session.execute(
            select(Variant.provider, Variant.parameters, Rating.rating)
            .join(Rating, Rating.variant_id == Variant.id).where(Rating.rating.is_not(None))
            .order_by(Rating.rating.desc(), Rating.created_at.desc()).limit(1)
        )).first()
    complete, reason = phase1_status(ctx.settings, samples, best, optimizer)
    convergence = optimizer.get("convergence_score") if optimizer else None
    remaining = max(ctx.settings.phase1_max_samples - samples, 0) if not complete else 0
    recommended = optimizer.get("best_parameters") if optimizer else None
    return {
        "phase_1": {
            "active": not complete,
            "samples_collected": samples,
            "best_rating": best,
            "convergence": convergence,
            "estimated_trials_remaining": remaining,
            "complete_reason": reason,
            "posterior_convergence": optimizer.get("posterior_convergence") if optimizer else None,
            "predicted_rating": optimizer.get("predicted_rating") if optimizer else None,
            "predicted_rating_interval":
                optimizer.get("predicted_rating_interval") if optimizer else None,
            "target_samples": ctx.settings.phase1_max_samples,
            "target_rating": ctx.settings.phase1_target_rating,
        },
        "phase_2": {
            "active": True,
            "training_samples": reward.get("observations") if reward else None,
            "model_accuracy": _model_accuracy(reward),
            "model_version": reward.get("model_version") if reward else None,
            "heldout_metrics": reward.get("heldout_metrics") if reward else None,
            "ready_for_inference": bool(reward and reward.get("ready_for_inference")),
            "live_accuracy": _live_accuracy(live),
        },
        "prompt_evolution": {
            "current_version": evolution.get("current_version") if evolution else None,
            "last_evolution": evolution.get("last_evolution") if evolution else None,
            "next_evolution_at_sample":
                evolution.get("next_evolution_at_sample") if evolution else None,
        },
        "current_best": {
            "api": best_row.provider if best_row else None,
            "avg_rating": next((float(a) for p, a, _ in by_provider
                                if best_row and p == best_row.provider), None),
            "parameters": best_row.parameters if best_row else None,
            "best_rating": float(best_row.rating) if best_row else None,
        },
        "recommended_parameters": recommended,
        "provider_posterior": {
            p: {"probability_best": v.get("probability_best"),
                "predicted_rating": v.get("predicted_rating")}
            for p, v in ((optimizer or {}).get("provider_posterior") or {}).items()},
        "api_performance": {p: {"avg_rating": round(float(a), 3), "count": int(c)}
                            for p, a, c in by_provider},
        "services": {"optimizer": optimizer is not None, "evolution": evolution is not None,
                     "reward": reward is not None},
        "pending_deliveries": pending,
    }


def _model_accuracy(reward: dict[str, Any] | None) -> float | None:
    """Held-out share of the active model's predictions within ±0.5 stars (the seeds'
    accuracy target), as the reward service measured it when the model was trained."""
    metrics = (reward or {}).get("heldout_metrics")
    value = metrics.get("within_05") if isinstance(metrics, dict) else None
    return float(value) if value is not None else None


def _live_accuracy(pairs: Any) -> dict[str, Any]:
    """How the reward model's recorded predictions compare with the ratings given later."""
    errors = [abs(float(predicted) - actual) for predicted, actual in pairs]
    if not errors:
        return {"n": 0, "mae": None, "within_half": None}
    return {"n": len(errors), "mae": round(sum(errors) / len(errors), 3),
            "within_half": round(sum(e <= 0.5 for e in errors) / len(errors), 3)}


async def training_history(ctx: Context, limit: int = 50, min_rating: float | None = None,
                           api: str | None = None) -> dict[str, Any]:
    """Rated experiments, newest first, and analytics over all ratings (seeds' shape)."""
    async with ctx.sessions() as session:
        query = (select(Rating, Variant).join(Variant, Variant.id == Rating.variant_id)
                 .order_by(Rating.created_at.desc(), Rating.option))
        rows = (await session.execute(query)).all()
        experiments_created = {e.id: e.created_at for e in (await session.execute(
            select(Experiment).where(Experiment.rated_at.is_not(None)))).scalars()}
    grouped: dict[str, list[dict[str, Any]]] = {}
    for rating, variant in rows:
        if min_rating is not None and (rating.rating is None or rating.rating < min_rating):
            continue
        if api is not None and variant.provider != api:
            continue
        grouped.setdefault(rating.experiment_id, []).append({
            "option": rating.option,
            "rating": float(rating.rating) if rating.rating is not None else None,
            "api": variant.provider,
            "parameters": variant.parameters, "prompt_version": variant.prompt_version,
            "comments": rating.comments, "rated_by": rating.rated_by,
            "image_url": image_url(variant.image_id) if variant.image_id else None,
            "rating_id": rating.id, "revision": rating.revision,
            "cannot_judge_reason": rating.cannot_judge_reason,
            "seconds_to_rate": rating.seconds_to_rate,
        })
    experiments = [
        {"experiment_id": eid, "created_at": experiments_created.get(eid),
         "options": sorted(opts, key=lambda o: o["option"])}
        for eid, opts in list(grouped.items())[:limit]
    ]
    # Analytics count stars only ("cannot judge" ratings have none), oldest first.
    starred = [(r.rating, v) for r, v in reversed(rows) if r.rating is not None]
    all_ratings = [stars for stars, _ in starred]
    trend = [round(sum(all_ratings[i:i + 10]) / len(all_ratings[i:i + 10]), 3)
             for i in range(0, len(all_ratings), 10)]
    per_api: dict[str, list[int]] = {}
    best_params = None
    best_value = -1
    for stars, variant in starred:
        per_api.setdefault(variant.provider, []).append(stars)
        if stars >= best_value:
            best_value, best_params = stars, variant.parameters
    return {
        "experiments": experiments,
        "analytics": {
            "total_samples": len(all_ratings),
            "avg_rating": round(sum(all_ratings) / len(all_ratings), 3) if all_ratings else None,
            "rating_trend": trend,
            "best_parameters": best_params,
            "api_performance": {p: {"avg_rating": round(sum(v) / len(v), 3), "count": len(v)}
                                for p, v in per_api.items()},
        },
    }
