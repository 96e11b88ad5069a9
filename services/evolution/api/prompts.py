"""Routes under ``/prompts``: parse, call the store or a domain module, map the result."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, BackgroundTasks, Request

from services.common.app import SessionDep
from services.common.db import transaction
from services.common.metrics import observe_ratings
from services.evolution import assignment, evolution, store
from services.evolution.api.convert import ab_test_out
from services.evolution.engine import llm_configured
from services.evolution.errors import NoActiveVersion
from services.evolution.models import PromptVersion
from services.evolution.schedule import next_evolution_at
from services.evolution.schemas import (
    AssignRequest,
    AssignResponse,
    CurrentVersion,
    EvolutionStatus,
    Performance,
    ResultsRequest,
    ResultsResponse,
    VersionDetail,
    VersionList,
    VersionSummary,
)
from services.evolution.settings import EvolutionSettings

router = APIRouter(prefix="/prompts", tags=["prompts"])


def _performance(stats: dict[str, store.Performance], version: str) -> Performance:
    perf = stats.get(version, store.NO_SAMPLES)
    return Performance(sample_count=perf.sample_count, avg_rating=perf.avg_rating)


def _summary(row: PromptVersion, stats: dict[str, store.Performance]) -> VersionSummary:
    return VersionSummary(
        version=row.version,
        parent_version=row.parent_version,
        created_by=row.created_by,
        status=row.status,
        created_at=row.created_at,
        performance=_performance(stats, row.version),
    )


async def _require_active(session: SessionDep) -> PromptVersion:
    row = await store.active_version(session)
    if row is None:
        raise NoActiveVersion.because()
    return row


@router.get("/current", response_model=CurrentVersion)
async def current(session: SessionDep) -> CurrentVersion:
    """The active prompt version with its full document and performance."""
    row = await _require_active(session)
    stats = await store.performance(session, [row.version])
    return CurrentVersion(
        version=row.version, document=row.document, performance=_performance(stats, row.version)
    )


@router.get("/versions", response_model=VersionList)
async def versions(session: SessionDep) -> VersionList:
    """Every version, oldest first, with its status and performance."""
    rows = await store.list_versions(session)
    stats = await store.performance(session)
    return VersionList(versions=[_summary(row, stats) for row in rows])


@router.get("/versions/{version}", response_model=VersionDetail)
async def version_detail(version: str, session: SessionDep) -> VersionDetail:
    """One version in full (404 if unknown)."""
    row = await store.require_version(session, version)
    stats = await store.performance(session, [row.version])
    return VersionDetail(
        **_summary(row, stats).model_dump(),
        reasoning=row.reasoning,
        promoted_at=row.promoted_at,
        document=row.document,
    )


@router.post("/assign", response_model=AssignResponse)
async def assign(body: AssignRequest, session: SessionDep) -> AssignResponse:
    """Prompt version, arm and prompts per provider for each option of a new experiment."""
    assigned = await assignment.assign(session, body.experiment_id, body.mode, body.options)
    return AssignResponse.model_validate({"assignments": [asdict(a) for a in assigned]})


@router.post("/results", response_model=ResultsResponse)
async def results(
    body: ResultsRequest, request: Request, background: BackgroundTasks
) -> ResultsResponse:
    """Record ratings per version (idempotent by rating_id; all or nothing).

    When new ratings were stored, the A/B test, the post-promotion monitor and the
    evolution triggers are reviewed in the background, after the answer is sent.
    """
    rows = [r.model_dump() for r in body.results]
    async with transaction(request.app.state.sessions) as session:
        new = await store.record_results(session, rows)
        named = sorted({r["version"] for r in rows})
        stats = await store.performance(session, named)
    observe_ratings(new)
    if new:
        background.add_task(
            evolution.after_results,
            request.app.state.sessions,
            request.app.state.settings,
            request.app.state.evolver,
        )
    return ResultsResponse(recorded=len(new), versions={v: _performance(stats, v) for v in named})


@router.get("/status", response_model=EvolutionStatus)
async def status(request: Request, session: SessionDep) -> EvolutionStatus:
    """Sample totals and when the next evolution is due."""
    settings: EvolutionSettings = request.app.state.settings
    row = await _require_active(session)
    total = await store.total_samples(session)
    blocked = await evolution.blocked_reason(session)
    test = await store.running_test(session)
    watching = await store.watching_test(session)
    return EvolutionStatus(
        current_version=row.version,
        total_samples=total,
        evolve_every=settings.evolve_every,
        next_evolution_at_sample=next_evolution_at(total, settings.evolve_every),
        last_evolution=await store.last_evolution(session),
        versions_count=await store.count_versions(session),
        best_rating=await evolution.best_rating(session, settings),
        evolution_engine="llm" if llm_configured(settings) else "offline",
        evolution_blocked=blocked.message_es if blocked else None,
        ab_test=ab_test_out(test) if test else None,
        monitor=ab_test_out(watching) if watching else None,
    )
