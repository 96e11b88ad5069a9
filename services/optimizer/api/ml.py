"""``/ml/*`` routes: parse, call the domain modules, map the result.

Models are fitted in the background by the app's ``ModelKeeper``; a handler reads
the observations in a short transaction, then asks the keeper for the model
(waiting at most ``fit_wait_seconds``, ``status_fit_wait_seconds`` for the status
routes), and runs the CPU-bound posterior work in a
worker thread so the event loop stays responsive.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, cast

from fastapi import APIRouter, Query

from services.common.db import transaction
from services.common.errors import ValidationFailed
from services.common.parameter_space import DIMENSIONS, NATIVE_NAMES, from_native
from services.optimizer import store
from services.optimizer.api.deps import KeeperDep, ObservationsDep, SessionsDep, SettingsDep
from services.optimizer.convergence import convergence_score, phase_1_reason
from services.optimizer.dependence import Method, partial_dependence
from services.optimizer.errors import InvalidParameters
from services.optimizer.fitting import has_enough_data
from services.optimizer.keeper import ModelView
from services.optimizer.recommendation import assess
from services.optimizer.schemas import (
    ContextOut,
    EffectCurveOut,
    EffectPointOut,
    ManualStopOut,
    Mode,
    ModelOut,
    ParameterEffectOut,
    PartialDependenceResponse,
    Phase1Request,
    Phase1Response,
    PosteriorConvergenceOut,
    ProviderName,
    ProviderPosteriorOut,
    ProviderSeen,
    RecommendationHistoryResponse,
    RecommendationOut,
    SpaceResponse,
    StatusResponse,
    SuggestionDetail,
    SuggestRequest,
    SuggestResponse,
    UpdateRequest,
    UpdateResponse,
)
from services.optimizer.space import Context, Observation, SearchSpace, describe, native
from services.optimizer.suggest import suggest

log = logging.getLogger(__name__)

router = APIRouter(prefix="/ml", tags=["ml"])

ProvidersQuery = Annotated[list[ProviderName] | None, Query()]
ModeQuery = Annotated[Mode | None, Query()]
VersionQuery = Annotated[str | None, Query(max_length=64)]


@router.post("/suggest_parameters", response_model=SuggestResponse)
async def suggest_parameters(
    body: SuggestRequest,
    sessions: SessionsDep,
    stored: ObservationsDep,
    keeper: KeeperDep,
    settings: SettingsDep,
) -> SuggestResponse:
    """Parameter sets to try next (a space-filling design until ``n_initial_points``
    observations of the enabled providers), conditioned on the mode and prompt version."""
    space = SearchSpace.for_providers(body.providers or settings.default_providers)
    async with transaction(sessions) as session:
        observations = await stored.read(session)
    context = Context(body.mode, body.prompt_version)
    view = await keeper.view(observations, settings.fit_wait_seconds)
    batch = await asyncio.to_thread(
        suggest, space, observations, body.num_suggestions, settings.gp_config(), view.model,
        context,
    )
    used = sum(1 for o in observations if space.contains(o))
    log.info(
        "suggested %d (%s) for mode=%s providers=%s prompt_version=%s from %d observations "
        "(model %s)",
        len(batch),
        ",".join(s.strategy for s in batch),
        body.mode,
        ",".join(space.providers),
        body.prompt_version,
        used,
        view.state,
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
async def update_model(
    body: UpdateRequest, sessions: SessionsDep, keeper: KeeperDep
) -> UpdateResponse:
    """Store ratings (idempotent by ``rating_id``); the whole batch or nothing.

    Answers as soon as the ratings are committed: the model is refitted in the
    background (``GET /ml/status`` says how old the model in use is).
    """
    records = []
    for i, result in enumerate(body.results):
        try:
            provider, values = from_native(result.parameters)
        except (ValidationFailed, TypeError, ValueError) as exc:
            es = exc.message_es if isinstance(exc, ValidationFailed) else str(exc)
            en = exc.message_en if isinstance(exc, ValidationFailed) else str(exc)
            raise InvalidParameters(i, es, en) from exc
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
    async with transaction(sessions) as session:
        new = await store.insert_observations(session, records)
        summary = await store.summarise(session)
    if new:
        keeper.changed()
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


def _model_out(view: ModelView) -> ModelOut | None:
    fitted = view.fitted
    if fitted is None:
        return None
    return ModelOut(
        observations_used=fitted.model.n_observations,
        observations_seen=fitted.observations_seen,
        fitted_at=fitted.fitted_at,
        age_seconds=view.age_seconds or 0.0,
        fit_seconds=fitted.fit_seconds,
        hyperparameters=fitted.model.posterior.describe(),
        trainer_bias=fitted.model.trainer_biases(),
    )


def _context(
    observations: list[Observation], mode: str | None, prompt_version: str | None
) -> Context | None:
    """The requested context, the rest filled from the latest rating; ``None`` (the
    model's default, the latest rating's) when nothing was requested."""
    if mode is None and prompt_version is None:
        return None
    last = observations[-1] if observations else None
    return Context(
        mode or (last.mode if last else None),
        prompt_version or (last.prompt_version if last else None),
    )


@router.get("/status", response_model=StatusResponse)
async def status(
    sessions: SessionsDep,
    stored: ObservationsDep,
    keeper: KeeperDep,
    settings: SettingsDep,
    providers: ProvidersQuery = None,
    mode: ModeQuery = None,
    prompt_version: VersionQuery = None,
) -> StatusResponse:
    """Progress, the current recommendation and how sure the model is of it.

    ``providers`` (repeatable query parameter) restricts the recommendation to those
    providers; by default it is made over every provider that has observations.
    ``mode`` and ``prompt_version`` choose the context; by default that of the most
    recent rating. The answer comes from the latest fitted model (``model_state``,
    ``model.age_seconds``): this request never starts a fit of its own.
    """
    async with transaction(sessions) as session:
        summary = await store.summarise(session)
        control = await store.get_phase_1_control(session)
        observations = await stored.read(session)
    enabled: list[str] = list(providers) if providers else list(summary.providers)
    view = await keeper.view(observations, settings.status_fit_wait_seconds)
    assessment = None
    if enabled:
        space = SearchSpace.for_providers(enabled)
        context = _context(observations, mode, prompt_version)
        assessment = await asyncio.to_thread(assess, space, observations, view.model, context)
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
        model_state=view.state,
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
        response.model = _model_out(view)
    return response


@router.get("/partial_dependence", response_model=PartialDependenceResponse)
async def partial_dependence_route(
    sessions: SessionsDep,
    stored: ObservationsDep,
    keeper: KeeperDep,
    settings: SettingsDep,
    providers: ProvidersQuery = None,
    mode: ModeQuery = None,
    prompt_version: VersionQuery = None,
    method: Annotated[Method, Query(description="average | slice")] = "average",
    points: Annotated[int, Query(ge=3, le=101, description="Values per parameter.")] = 21,
) -> PartialDependenceResponse:
    """Each parameter's effect on the predicted rating, with its 90 % band, per provider.

    ``average``: the posterior of the rating averaged over the other parameters
    (uniformly over the space), as each parameter moves from its low to its high
    end. ``slice``: the other parameters held at each provider's recommended values.
    Providers and context as in ``GET /ml/status``. ``available`` is false while
    there is no fitted model for those providers.
    """
    async with transaction(sessions) as session:
        observations = await stored.read(session)
    enabled = list(providers) if providers else sorted({o.provider for o in observations})
    view = await keeper.view(observations, settings.status_fit_wait_seconds)
    model = view.model
    answer = PartialDependenceResponse(
        available=False,
        method=method,
        providers=[cast(ProviderName, p) for p in SearchSpace.for_providers(enabled).providers]
        if enabled else [],
        model_state=view.state,
        model=_model_out(view),
    )
    if not enabled or model is None:
        return answer
    space = SearchSpace.for_providers(enabled)
    if not has_enough_data(space, observations, model.config):
        return answer
    context = _context(observations, mode, prompt_version) or model.default_context()
    effects = await asyncio.to_thread(
        model.memo,
        ("partial_dependence", space.providers, context, method, points),
        lambda: partial_dependence(model, space, context, points=points, method=method),
    )
    answer.available = True
    answer.context = ContextOut(mode=context.mode, prompt_version=context.prompt_version)
    answer.parameters = [
        ParameterEffectOut(
            name=dim.name,
            label_es=dim.label_es,
            label_en=dim.label_en,
            low=dim.low,
            high=dim.high,
            curves=[
                EffectCurveOut(
                    provider=cast(ProviderName, e.provider),
                    native_name=NATIVE_NAMES[e.provider][dim.name],
                    points=[
                        EffectPointOut(value=p.value, mean=p.mean, low=p.low, high=p.high)
                        for p in e.points
                    ],
                )
                for e in effects
                if e.parameter == dim.name
            ],
        )
        for dim in DIMENSIONS
    ]
    return answer


@router.get("/recommendations", response_model=RecommendationHistoryResponse)
async def recommendations(
    sessions: SessionsDep,
    limit: Annotated[int, Query(ge=1, le=5000, description="Most recent rows to return.")] = 500,
) -> RecommendationHistoryResponse:
    """How the recommendation moved: one row per fitted set of ratings, oldest first
    (the recommendation over every rated provider, in the latest rating's context)."""
    async with transaction(sessions) as session:
        rows, total = await store.load_recommendations(session, limit)
    return RecommendationHistoryResponse(
        total=total,
        items=[
            RecommendationOut(
                created_at=r.created_at,  # type: ignore[arg-type]
                observations_seen=r.observations_seen,
                observations_used=r.observations_used,
                parameters=native(r.provider, r.values),
                values={k: round(v, 4) for k, v in r.values.items()},
                predicted_rating=r.predicted_rating,
                predicted_rating_interval=r.interval,
                rating_interval=r.rating_interval,
                probability_within=r.probability_within,
                expected_regret=r.expected_regret,
                provider_probability={
                    p: float(v["probability_best"]) for p, v in r.provider_posterior.items()
                },
                provider_posterior={
                    p: ProviderPosteriorOut(
                        best_parameters=native(p, v["values"]),
                        predicted_rating=v["predicted_rating"],
                        predicted_rating_interval=tuple(v["interval"]),
                        probability_best=v["probability_best"],
                    )
                    for p, v in r.provider_posterior.items()
                },
                context=ContextOut(mode=r.mode, prompt_version=r.prompt_version),
                fit_seconds=r.fit_seconds,
            )
            for r in rows
        ],
    )


async def _phase_1(
    sessions: SessionsDep, stopped: bool, body: Phase1Request
) -> Phase1Response:
    # Committed before the answer leaves, so a read that follows sees it.
    async with transaction(sessions) as session:
        control = await store.set_phase_1_control(session, stopped, body.changed_by, body.note)
        summary = await store.summarise(session)
    reason = phase_1_reason(summary.samples_seen, summary.best_rating, control.stopped)
    log.info("phase 1 manually %s by %s", "stopped" if stopped else "resumed", body.changed_by)
    return Phase1Response(
        phase_1_complete=reason is not None, phase_1_reason=reason, manual_stop=_manual(control)
    )


@router.post("/phase_1/stop", response_model=Phase1Response)
async def stop_phase_1(sessions: SessionsDep, body: Phase1Request | None = None) -> Phase1Response:
    """Admin override: declare phase 1 complete now (seed 002, "manual override")."""
    return await _phase_1(sessions, True, body or Phase1Request())


@router.post("/phase_1/resume", response_model=Phase1Response)
async def resume_phase_1(
    sessions: SessionsDep, body: Phase1Request | None = None
) -> Phase1Response:
    """Undo a manual stop; phase 1 stays complete if 50 samples or a 4-star rating say so."""
    return await _phase_1(sessions, False, body or Phase1Request())


@router.get("/space", response_model=SpaceResponse)
async def space(settings: SettingsDep) -> SpaceResponse:
    """Bounds and native parameter names of the search space."""
    return SpaceResponse(
        **describe(),
        default_providers=settings.default_providers,
        n_initial_points=settings.n_initial_points,
    )
