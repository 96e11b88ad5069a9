"""Running a prompt evolution: from ratings to a new challenger under A/B test.

An evolution run goes through three steps, each in its own transaction so that
no database transaction waits on the LLM:

1. **claim** (:func:`claim`): check nothing blocks it (an undecided A/B test, a
   monitored new champion, another running evolution) and insert an
   ``evolution_runs`` row in state ``running`` (one at a time, across replicas);
2. **propose** (:func:`execute`): read the champion, the version history with
   scores, and per mode the trainers' ratings and comments; analyse the issues;
   ask the evolver for each distinct prompt pair of each mode;
3. **store**: if the champion is still the same, insert the new version
   (candidate, next patch number, ``created_by`` llm/offline, reasoning and
   changes), start the A/B test champion vs challenger, close the run and audit it.

:func:`after_results` is what ``POST /prompts/results`` schedules in the
background: decide the running A/B test, watch a promoted champion, then start
an evolution if a trigger is due (:mod:`services.evolution.triggers`).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.db import transaction, utcnow
from services.common.metrics import count_ab_decision
from services.evolution import lifecycle, store
from services.evolution.documents import (
    MODE_PROVIDER_ORDER,
    load_validator,
    validate_document,
)
from services.evolution.errors import EvolutionBlocked, NoActiveVersion, RunNotFound
from services.evolution.evolver import Evolver, ModeRequest, Proposal
from services.evolution.export import export_versions
from services.evolution.guardrails import hard_rules_text
from services.evolution.issues import IssueReport, RatedComment, analyse
from services.evolution.models import EvolutionRun, PromptVersion
from services.evolution.settings import EvolutionSettings
from services.evolution.triggers import TriggerRules, TriggerState, due_trigger

log = logging.getLogger(__name__)
MODES = ("structure", "surfaces")
COMMENT_WINDOW = 200
"""How many of the champion's newest ratings per mode feed the issue analysis."""


def trigger_rules(settings: EvolutionSettings) -> TriggerRules:
    return TriggerRules(
        evolve_every=settings.evolve_every, converged_rating=settings.converged_rating,
        plateau_samples=settings.plateau_samples, low_rating=settings.low_rating,
        low_after=settings.low_after, low_gap=settings.low_gap,
    )


async def best_rating(session: AsyncSession, settings: EvolutionSettings) -> float | None:
    """Best mean rating of any version with at least ``best_min_samples`` ratings."""
    stats = await store.performance(session)
    means = [p.avg_rating for p in stats.values()
             if p.avg_rating is not None and p.sample_count >= settings.best_min_samples]
    return max(means) if means else None


async def blocked_reason(session: AsyncSession) -> EvolutionBlocked | None:
    """Why no evolution may start now, or None."""
    test = await store.running_test(session)
    if test is not None:
        return EvolutionBlocked.because("ab_test", champion=test.champion,
                                        challenger=test.challenger)
    watching = await store.watching_test(session)
    if watching is not None:
        return EvolutionBlocked.because("monitoring", challenger=watching.challenger)
    return None


async def trigger_state(session: AsyncSession, settings: EvolutionSettings) -> TriggerState:
    active = await store.active_version(session)
    last = await store.last_run(session)
    return TriggerState(
        total=await store.total_samples(session),
        best=await best_rating(session, settings),
        last=last.total_samples if last is not None else None,
        improved=await store.samples_until(session, active.promoted_at if active else None),
        blocked=await blocked_reason(session) is not None,
    )


async def claim(sessions: async_sessionmaker[AsyncSession], settings: EvolutionSettings,
                trigger: str, actor: str = lifecycle.SYSTEM, reason: str = ""
                ) -> EvolutionRun | None:
    """Start a run if nothing blocks it; None for automatic triggers that are blocked.

    Raises:
        EvolutionBlocked: a manual request while a test, a monitor or another run is
            under way (409).
    """
    manual = trigger == "manual"
    async with transaction(sessions) as session:
        blocked = await blocked_reason(session)
        if blocked is not None:
            if manual:
                raise blocked
            return None
        active = await store.active_version(session)
        if active is None:
            raise NoActiveVersion.because()
        if not manual:
            state = await trigger_state(session, settings)
            if due_trigger(state, trigger_rules(settings)) != trigger:
                return None
        stale = utcnow() - timedelta(seconds=settings.run_stale_seconds)
        run = await store.claim_run(session, trigger=trigger, actor=actor,
                                    total=await store.total_samples(session),
                                    parent=active.version, stale_before=stale)
        if run is None:
            if manual:
                raise EvolutionBlocked.because("running")
            return None
        if reason:
            run.details = {"reason": reason}
        return run


@dataclass(frozen=True)
class _Group:
    mode: str
    providers: tuple[str, ...]
    request: ModeRequest


def _history(rows: list[PromptVersion], stats: dict[str, store.Performance], mode: str
             ) -> list[dict[str, Any]]:
    out = []
    for row in rows[-12:]:
        perf = stats.get(row.version, store.NO_SAMPLES)
        pair = row.document["providers"]["stablediffusion"]["modes"][mode]
        out.append({
            "version": row.version, "parent_version": row.parent_version,
            "created_by": row.created_by, "status": row.status,
            "avg_rating": perf.avg_rating, "sample_count": perf.sample_count,
            "changes": row.document.get("changes", []), "prompt": pair["prompt"],
            "negative_prompt": pair["negative_prompt"],
        })
    return out


async def _requests(session: AsyncSession, parent: PromptVersion, seed: int
                    ) -> tuple[list[_Group], dict[str, IssueReport]]:
    rows = await store.list_versions(session)
    stats = await store.performance(session)
    groups: list[_Group] = []
    reports: dict[str, IssueReport] = {}
    for mode in MODES:
        rated = await store.results(session, [parent.version], mode=mode, limit=COMMENT_WINDOW)
        report = analyse([RatedComment(r.rating, r.comments, r.mode, r.version) for r in rated])
        reports[mode] = report
        history = _history(rows, stats, mode)
        pairs: dict[tuple[str, str], list[str]] = {}
        for provider in MODE_PROVIDER_ORDER:
            pair = parent.document["providers"][provider]["modes"][mode]
            pairs.setdefault((pair["prompt"], pair["negative_prompt"]), []).append(provider)
        for (prompt, negative), providers in pairs.items():
            groups.append(_Group(mode, tuple(providers), ModeRequest(
                mode=mode, prompt=prompt, negative_prompt=negative,
                parent_version=parent.version, avg_rating=report.mean_rating,
                sample_count=report.samples, history=history, issues=report,
                hard_rules=tuple(hard_rules_text()), seed=seed)))
    return groups, reports


def _document(parent: PromptVersion, version: str, trigger: str,
              results: list[tuple[_Group, Proposal]]) -> dict[str, Any]:
    document = copy.deepcopy(parent.document)
    engines = sorted({p.engine for _, p in results})
    created_by = "llm" if "llm" in engines else "offline"
    changes: list[str] = []
    reasons: list[str] = []
    for group, proposal in results:
        label = group.mode if len(group.providers) > 1 else f"{group.mode}/{group.providers[0]}"
        for provider in group.providers:
            document["providers"][provider]["modes"][group.mode] = {
                "prompt": proposal.prompt, "negative_prompt": proposal.negative_prompt}
        changes.extend(f"{label}: {change}" for change in proposal.changes)
        reasons.append(f"[{label}] {proposal.reasoning}")
        reasons.extend(f"[{label}] note: {note}" for note in proposal.notes)
    document.update(
        version=version,
        created_at=utcnow().astimezone(UTC).isoformat().replace("+00:00", "Z"),
        created_by=created_by,
        parent_version=parent.version,
        reasoning=" ".join(reasons),
        changes=changes,
        metadata={"description": f"Evolved from {parent.version} by the {created_by} evolver "
                                 f"({trigger} trigger).",
                  "tags": ["evolved", created_by, trigger]},
    )
    return document


async def execute(sessions: async_sessionmaker[AsyncSession], settings: EvolutionSettings,
                  evolver: Evolver, run_id: int) -> EvolutionRun:
    """Propose, store and start testing a new version for a claimed run (never raises for
    evolver failures: the run ends ``failed`` with the reason)."""
    try:
        async with sessions() as session:
            run = await store.get_run(session, run_id)
            if run is None:
                raise RunNotFound.because(run=run_id)
            parent = await store.require_version(session, run.parent_version or "")
            groups, reports = await _requests(session, parent, seed=run_id)
            trigger = run.trigger
        proposals = [(group, await evolver.propose(group.request)) for group in groups]
        async with transaction(sessions) as session:
            run = await store.get_run(session, run_id)
            assert run is not None
            active = await store.active_version(session)
            blocked = await blocked_reason(session)
            if active is None or active.version != parent.version or blocked is not None:
                run.status, run.finished_at = "skipped", utcnow()
                run.error = "the champion changed or a test started while evolving"
                return run
            version = await store.next_version(session, parent.version)
            document = validate_document(
                _document(parent, version, trigger, proposals),
                load_validator(settings.prompts_dir / "schema.json"),
                f"evolution run {run_id}")
            await store.insert_version_if_absent(session, document, status="candidate")
            test = await store.start_test(session, parent.version, version)
            run.status, run.version, run.finished_at = "created", version, utcnow()
            run.engine = document["created_by"]
            run.details = {
                **(run.details or {}),
                "ab_test_id": test.id,
                "attempts": {f"{g.mode}:{'+'.join(g.providers)}": p.attempts
                             for g, p in proposals},
                "notes": [note for _, p in proposals for note in p.notes],
                "top_issues": {mode: [i.key for i in report.top(3)]
                               for mode, report in reports.items()},
            }
            await store.audit(session, "evolve", actor=run.actor,
                              reason=(run.details or {}).get("reason") or f"{trigger} trigger",
                              version=version, from_version=parent.version, to_version=version,
                              details={"run_id": run_id, "engine": run.engine,
                                       "changes": document["changes"]})
        log.info("evolution run %s (%s): %s -> %s by %s, A/B test started", run_id, trigger,
                 parent.version, version, run.engine)
        await export_versions(sessions, settings.exports_to)
        return run
    except Exception as exc:
        message = getattr(exc, "message_en", None) or f"{type(exc).__name__}: {exc}"
        log.warning("evolution run %s failed: %s", run_id, message)
        async with transaction(sessions) as session:
            failed = await store.get_run(session, run_id)
            if failed is None:
                raise
            failed.status, failed.finished_at, failed.error = "failed", utcnow(), message[:2000]
            return failed


async def after_results(sessions: async_sessionmaker[AsyncSession],
                        settings: EvolutionSettings, evolver: Evolver) -> EvolutionRun | None:
    """Decide the A/B test, watch a new champion, then evolve if a trigger is due."""
    changed = False
    try:
        async with transaction(sessions) as session:
            event = await lifecycle.review_test(session, lifecycle.decision_rule(settings))
        if event is not None:  # counted once committed
            count_ab_decision(event.action.removeprefix("ab_"))
            changed = True
        async with transaction(sessions) as session:
            event = await lifecycle.review_monitor(session, lifecycle.monitor_rule(settings))
        if event is not None:
            count_ab_decision(event.action)
            changed = True
    finally:
        if changed:
            await export_versions(sessions, settings.exports_to)
    async with sessions() as session:
        trigger = due_trigger(await trigger_state(session, settings), trigger_rules(settings))
    if trigger is None:
        return None
    run = await claim(sessions, settings, trigger)
    if run is None:
        return None
    return await execute(sessions, settings, evolver, run.id)
