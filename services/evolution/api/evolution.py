"""Routes for evolution, A/B tests, manual promotion/rollback, audit and review data.

    POST /prompts/evolve                manual evolution (202, runs in the background)
    GET  /prompts/runs[/{id}]           evolution attempts and their outcome
    GET  /prompts/abtests               A/B tests (newest first) and the decision rule
    POST /prompts/{v}/promote           make v the champion by hand (audited)
    POST /prompts/{v}/rollback          withdraw v (champion → parent or `to`; or end its test)
    GET  /prompts/audit                 who changed what, when and why
    GET  /prompts/issues                issue analysis of a version's comments
    GET  /prompts/versions/{v}/ratings  a version's ratings: histogram, per mode, recent
    GET  /prompts/lineage               every version with parent, changes and reasoning
    GET  /prompts/diff?from=&to=        term diff between two versions
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Request
from fastapi.responses import JSONResponse

from services.common.app import SessionDep
from services.common.db import transaction
from services.evolution import evolution, lifecycle, store
from services.evolution.api.convert import ab_test_out, audit_out, run_out
from services.evolution.diff import diff_documents
from services.evolution.errors import RunNotFound
from services.evolution.export import export_versions
from services.evolution.issues import RatedComment, analyse
from services.evolution.schemas import (
    AbTestList,
    AuditList,
    DecisionRuleOut,
    EvolveRequest,
    IssueReportOut,
    Lineage,
    LineageEntry,
    Mode,
    Performance,
    RatingOut,
    RunList,
    RunOut,
    TransitionRequest,
    TransitionResponse,
    VersionRatings,
)
from services.evolution.settings import EvolutionSettings

router = APIRouter(prefix="/prompts", tags=["evolution"])


def _settings(request: Request) -> EvolutionSettings:
    settings: EvolutionSettings = request.app.state.settings
    return settings


@router.post("/evolve", status_code=202, response_model=RunOut)
async def evolve(body: EvolveRequest, request: Request, background: BackgroundTasks
                 ) -> JSONResponse:
    """Start an evolution now (409 while an A/B test or a monitor is undecided).

    Answers 202 with the run in state ``running``; poll ``GET /prompts/runs/{id}``.
    """
    settings = _settings(request)
    sessions = request.app.state.sessions
    run = await evolution.claim(sessions, settings, "manual", actor=body.actor,
                                reason=body.reason)
    assert run is not None  # manual claims raise instead of returning None
    background.add_task(evolution.execute, sessions, settings, request.app.state.evolver,
                        run.id)
    return JSONResponse(run_out(run).model_dump(mode="json"), status_code=202,
                        headers={"Location": f"/prompts/runs/{run.id}"})


@router.get("/runs", response_model=RunList)
async def runs(session: SessionDep, limit: Annotated[int, Query(ge=1, le=200)] = 20) -> RunList:
    return RunList(runs=[run_out(r) for r in await store.list_runs(session, limit)])


@router.get("/runs/{run_id}", response_model=RunOut)
async def run_detail(run_id: int, session: SessionDep) -> RunOut:
    run = await store.get_run(session, run_id)
    if run is None:
        raise RunNotFound.because(run=run_id)
    return run_out(run)


@router.get("/abtests", response_model=AbTestList)
async def abtests(request: Request, session: SessionDep,
                  limit: Annotated[int, Query(ge=1, le=200)] = 50) -> AbTestList:
    settings = _settings(request)
    rule = lifecycle.decision_rule(settings)
    return AbTestList(
        tests=[ab_test_out(t) for t in await store.list_tests(session, limit)],
        rule=DecisionRuleOut(
            promote_probability=rule.promote_probability,
            rollback_probability=rule.rollback_probability,
            min_pairs=rule.min_pairs, max_pairs=rule.max_pairs, looks=list(rule.looks),
            prior_pairs=rule.prior_pairs, prior_sd=rule.prior_sd,
            prior_sd_weight=rule.prior_sd_weight,
            monitor_min_samples=settings.monitor_min_samples,
            monitor_max_samples=settings.monitor_max_samples,
            monitor_rollback_probability=settings.monitor_rollback_probability,
        ),
    )


@router.post("/{version}/promote", response_model=TransitionResponse)
async def promote(version: str, body: TransitionRequest, request: Request
                  ) -> TransitionResponse:
    """Make ``version`` the champion by hand; stops a running test or monitor; audited."""
    sessions = request.app.state.sessions
    async with transaction(sessions) as session:
        outcome = await lifecycle.promote(session, version, actor=body.actor, reason=body.reason)
    await export_versions(sessions, _settings(request).exports_to)
    return TransitionResponse(**outcome)


@router.post("/{version}/rollback", response_model=TransitionResponse)
async def rollback(version: str, body: TransitionRequest, request: Request
                   ) -> TransitionResponse:
    """Withdraw ``version`` (the champion goes back to ``to`` or its parent); audited."""
    sessions = request.app.state.sessions
    async with transaction(sessions) as session:
        outcome = await lifecycle.rollback(session, version, actor=body.actor,
                                           reason=body.reason, to=body.to)
    await export_versions(sessions, _settings(request).exports_to)
    return TransitionResponse(**outcome)


@router.get("/audit", response_model=AuditList)
async def audit(session: SessionDep, limit: Annotated[int, Query(ge=1, le=500)] = 100
                ) -> AuditList:
    return AuditList(entries=[audit_out(e) for e in await store.list_audit(session, limit)])


@router.get("/issues", response_model=IssueReportOut)
async def issues(session: SessionDep, version: str | None = None, mode: Mode | None = None,
                 limit: Annotated[int, Query(ge=1, le=2000)] = 200) -> IssueReportOut:
    """Issue analysis of a version's comments (default: the active version)."""
    if version is None:
        active = await store.active_version(session)
        version = active.version if active else ""
    row = await store.require_version(session, version)
    rated = await store.results(session, [row.version], mode=mode, limit=limit)
    report = analyse([RatedComment(r.rating, r.comments, r.mode, r.version) for r in rated])
    return IssueReportOut.model_validate({"version": row.version, "mode": mode,
                                          **report.as_dict()})


@router.get("/versions/{version}/ratings", response_model=VersionRatings)
async def version_ratings(version: str, session: SessionDep,
                          limit: Annotated[int, Query(ge=1, le=500)] = 50) -> VersionRatings:
    row = await store.require_version(session, version)
    rated = await store.results(session, [row.version])
    histogram = {str(star): 0 for star in range(1, 6)}
    by_mode: dict[str, list[int]] = {}
    for r in rated:
        histogram[str(r.rating)] += 1
        by_mode.setdefault(r.mode, []).append(r.rating)

    def perf(values: list[int]) -> Performance:
        return Performance(sample_count=len(values),
                           avg_rating=round(sum(values) / len(values), 4) if values else None)

    return VersionRatings(
        version=row.version,
        performance=perf([r.rating for r in rated]),
        histogram=histogram,
        by_mode={mode: perf(values) for mode, values in sorted(by_mode.items())},
        recent=[RatingOut.model_validate(r, from_attributes=True) for r in rated[:limit]],
    )


@router.get("/lineage", response_model=Lineage)
async def lineage(session: SessionDep) -> Lineage:
    """Every version, oldest first, with its parent, status, performance, changes, reasoning."""
    rows = await store.list_versions(session)
    stats = await store.performance(session)
    return Lineage(versions=[
        LineageEntry(
            version=r.version, parent_version=r.parent_version, created_by=r.created_by,
            status=r.status, created_at=r.created_at, promoted_at=r.promoted_at,
            reasoning=r.reasoning, changes=list(r.document.get("changes", [])),
            performance=Performance(
                sample_count=stats.get(r.version, store.NO_SAMPLES).sample_count,
                avg_rating=stats.get(r.version, store.NO_SAMPLES).avg_rating),
        )
        for r in rows
    ])


@router.get("/diff")
async def diff(session: SessionDep, from_: Annotated[str, Query(alias="from")],
               to: str) -> dict[str, object]:
    """Term-by-term diff of prompts and negative prompts between two versions."""
    old = await store.require_version(session, from_)
    new = await store.require_version(session, to)
    return diff_documents(old.document, new.document)
