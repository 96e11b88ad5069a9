"""``/ml/*`` routes: parse, call the domain modules, map the result.

CPU-bound model work runs in a worker thread so the event loop stays responsive.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from fastapi import APIRouter, Query, Request

from services.common.app import SessionDep
from services.common.errors import ValidationFailed
from services.common.parameter_space import from_native
from services.optimizer import store
from services.optimizer.convergence import convergence_score, phase_1_reason
from services.optimizer.model import ModelCache, assess
from services.optimizer.schemas import (
    ContextOut,
    ManualStopOut,
    Mode,
    ModelOut,
    Phase1Request,
    Phase1Response,
    PosteriorConvergenceOut,
    ProviderName,
    ProviderPosteriorOut,
    ProviderSeen,
    SpaceResponse,
    StatusResponse,
    SuggestionDetail,
    SuggestRequest,
    SuggestResponse,
    UpdateRequest,
    UpdateResponse,
)
from services.optimizer.settings import OptimizerSettings
from services.optimizer.space import Context, SearchSpace, describe, native
from services.optimizer.suggest import suggest

log = logging.getLogger(__name__)

router = APIRouter(prefix="/ml", tags=["ml"])


def _settings(request: Request) -> OptimizerSettings:
    settings: OptimizerSettings = request.app.state.settings
    return settings


def _models(request: Request) -> ModelCache:
    models: ModelCache = request.app.state.models
    return models


@router.post("/suggest_parameters", response_model=SuggestResponse)
async def suggest_parameters(
    body: SuggestRequest, session: SessionDep, request: Request
) -> SuggestResponse:
    """Parameter sets to try next (a space-filling design until ``n_initial_points``
    observations of the enabled providers), conditioned on the mode and prompt version."""
    settings = _settings(request)
    space = SearchSpace.for_providers(body.providers or settings.default_providers)
    observations = await store.load_observations(session)
    context = Context(body.mode, body.prompt_version)
    batch = await asyncio.to_thread(
        suggest,
        space,
        observations,
        body.num_suggestions,
        settings.gp_config(),
        _models(request),
        context,
    )
    used = sum(1 for o in observations if space.contains(o))
    log.info(
        "suggested %d (%s) for mode=%s providers=%s prompt_version=%s from %d observations",
        len(batch),
        ",".join(s.strategy for s in batch),
        body.mode,
        ",".join(space.providers),
        body.prompt_version,
        used,
    )
    return SuggestResponse(
        suggestions=[{**native(s.provider, s.values), "source": s.source} for s in batch],
        samples_seen=len(observations),
        observations_used=used,
        details=[
            SuggestionDetail(
                strategy=s.strategy,
                predicted_rating=s.predicted_rating,
                expected_improvement=s.expected_improvement,
                provider_probability=s.provider_probability,
            )
            for s in batch
        ],
        context=ContextOut(mode=body.mode, prompt_version=body.prompt_version),
    )


@router.post("/update_model", response_model=UpdateResponse)
async def update_model(body: UpdateRequest, session: SessionDep) -> UpdateResponse:
    """Store ratings (idempotent by ``rating_id``); the whole batch or nothing."""
    records = []
    for i, result in enumerate(body.results):
        try:
            provider, values = from_native(result.parameters)
        except (ValidationFailed, TypeError, ValueError) as exc:
            es = exc.message_es if isinstance(exc, ValidationFailed) else str(exc)
            en = exc.message_en if isinstance(exc, ValidationFailed) else str(exc)
            raise ValidationFailed(
                f"results[{i}].parameters: {es} No se ha guardado ninguna valoración del lote.",
                f"results[{i}].parameters: {en} No rating of the batch was stored.",
            ) from exc
        records.append(
            store.ObservationRecord(
                rating_id=result.rating_id,
                experiment_id=result.experiment_id,
                image_id=result.image_id,
                rater=result.rater,
                provider=provider,
                values=values,
                rating=result.rating,
                mode=result.mode,
                prompt_version=result.prompt_version,
                revision=result.revision,
            )
        )
    new = await store.insert_observations(session, records)
    summary = await store.summarise(session)
    log.info("update_model: %d results, %d new, %d total", len(records), new, summary.samples_seen)
    return UpdateResponse(
        updated=new > 0,
        new_observations=new,
        samples_seen=summary.samples_seen,
        convergence_score=convergence_score(summary.samples_seen, summary.best_rating),
    )


def _manual(control: store.Phase1Control) -> ManualStopOut:
    return ManualStopOut(
        stopped=control.stopped,
        changed_by=control.changed_by,
        note=control.note,
        changed_at=control.changed_at,
    )


@router.get("/status", response_model=StatusResponse)
async def status(
    session: SessionDep,
    request: Request,
    providers: Annotated[list[ProviderName] | None, Query()] = None,
    mode: Annotated[Mode | None, Query()] = None,
    prompt_version: Annotated[str | None, Query(max_length=64)] = None,
) -> StatusResponse:
    """Progress, the current recommendation and how sure the model is of it.

    ``providers`` (repeatable query parameter) restricts the recommendation to those
    providers; by default it is made over every provider that has observations.
    ``mode`` and ``prompt_version`` choose the context; by default that of the most
    recent rating.
    """
    settings = _settings(request)
    summary = await store.summarise(session)
    control = await store.get_phase_1_control(session)
    enabled: list[str] = list(providers) if providers else list(summary.providers)
    assessment = None
    if enabled:
        space = SearchSpace.for_providers(enabled)
        observations = await store.load_observations(session)
        context = None
        if mode is not None or prompt_version is not None:
            last = observations[-1] if observations else None
            context = Context(
                mode or (last.mode if last else None),
                prompt_version or (last.prompt_version if last else None),
            )
        assessment = await asyncio.to_thread(
            assess, space, observations, settings.gp_config(), _models(request), context
        )
    rec = assessment.recommendation if assessment else None
    reason = phase_1_reason(summary.samples_seen, summary.best_rating, control.stopped)
    response = StatusResponse(
        samples_seen=summary.samples_seen,
        best_rating=summary.best_rating,
        best_parameters=native(rec.provider, rec.values) if rec else None,
        predicted_rating=rec.predicted_rating if rec else None,
        predicted_rating_interval=rec.interval if rec else None,
        rating_interval=rec.rating_interval if rec else None,
        recommendation_source=rec.source if rec else None,
        convergence_score=convergence_score(summary.samples_seen, summary.best_rating),
        phase_1_complete=reason is not None,
        phase_1_reason=reason,
        manual_stop=_manual(control),
        n_initial_points=settings.n_initial_points,
        providers_seen={
            p: ProviderSeen(count=s.count, avg_rating=s.avg_rating)
            for p, s in summary.providers.items()
        },
    )
    if assessment is not None and assessment.probability_within is not None:
        response.posterior_convergence = PosteriorConvergenceOut(
            probability_within=assessment.probability_within,
            tolerance=assessment.tolerance or 0.0,
            expected_regret=assessment.expected_regret or 0.0,
        )
        response.provider_posterior = {
            p.provider: ProviderPosteriorOut(
                best_parameters=native(p.provider, p.values),
                predicted_rating=p.predicted_rating,
                predicted_rating_interval=p.interval,
                probability_best=p.probability_best,
            )
            for p in assessment.providers
        }
        if assessment.context is not None:
            response.context = ContextOut(
                mode=assessment.context.mode, prompt_version=assessment.context.prompt_version
            )
        response.model = ModelOut(
            observations_used=assessment.observations_used,
            hyperparameters=assessment.hyperparameters,
            trainer_bias=assessment.trainer_bias,
        )
    return response


async def _phase_1(session: SessionDep, stopped: bool, body: Phase1Request) -> Phase1Response:
    control = await store.set_phase_1_control(session, stopped, body.changed_by, body.note)
    summary = await store.summarise(session)
    reason = phase_1_reason(summary.samples_seen, summary.best_rating, control.stopped)
    log.info("phase 1 manually %s by %s", "stopped" if stopped else "resumed", body.changed_by)
    return Phase1Response(
        phase_1_complete=reason is not None, phase_1_reason=reason, manual_stop=_manual(control)
    )


@router.post("/phase_1/stop", response_model=Phase1Response)
async def stop_phase_1(session: SessionDep, body: Phase1Request | None = None) -> Phase1Response:
    """Admin override: declare phase 1 complete now (seed 002, "manual override")."""
    return await _phase_1(session, True, body or Phase1Request())


@router.post("/phase_1/resume", response_model=Phase1Response)
async def resume_phase_1(session: SessionDep, body: Phase1Request | None = None) -> Phase1Response:
    """Undo a manual stop; phase 1 stays complete if 50 samples or a 4-star rating say so."""
    return await _phase_1(session, False, body or Phase1Request())


@router.get("/space", response_model=SpaceResponse)
async def space(request: Request) -> SpaceResponse:
    """Bounds and native parameter names of the search space."""
    settings = _settings(request)
    return SpaceResponse(
        **describe(),
        default_providers=settings.default_providers,
        n_initial_points=settings.n_initial_points,
    )
