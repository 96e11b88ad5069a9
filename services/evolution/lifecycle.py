"""Which version is the champion: A/B outcomes, post-promotion monitoring, and the
admin's manual promotion and rollback. Every change of champion is audited.

States of a version: ``active`` (the champion; exactly one), ``candidate`` (a
challenger under test, or a version never tested) and ``retired`` (lost a test,
was rolled back, or was replaced by a newer champion; a retired version can be
promoted again by hand).

Functions take the caller's session and do not commit. Reviews overlap (each
delivery of results schedules one in the background, and every replica runs its
own), so every write to a test is a conditional update whose loser sees 0 rows:

* a look is claimed before it is judged (``SET last_look = :look WHERE status =
  'running' AND last_look < :look``). Only the review that changed the row may
  promote at that look, so each look is judged once, on the pairs its claimer
  read; a review that lost the claim may still roll back or record statistics;
* deciding a test: ``… WHERE status = 'running'``; ending a monitor:
  ``… WHERE monitor_status = 'watching'``;
* statistics of an undecided test: ``… WHERE status = 'running' AND n_pairs <=
  :n``, so an older review neither rewrites a decided test's statistics nor
  turns newer ones back (pairs only ever grow).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import utcnow
from services.evolution import store
from services.evolution.ab_test import Decision, DecisionRule, MonitorCheck, MonitorRule, decide
from services.evolution.ab_test import monitor as monitor_check
from services.evolution.errors import InvalidTransition, NoActiveVersion
from services.evolution.models import AbTest
from services.evolution.settings import EvolutionSettings

log = logging.getLogger(__name__)
SYSTEM = "system"


def decision_rule(settings: EvolutionSettings) -> DecisionRule:
    return DecisionRule(
        promote_probability=settings.ab_promote_probability,
        rollback_probability=settings.ab_rollback_probability,
        min_pairs=settings.ab_min_pairs,
        max_pairs=settings.ab_max_pairs,
        looks=tuple(settings.ab_looks),
        prior_pairs=settings.ab_prior_pairs,
        prior_sd=settings.ab_prior_sd,
        prior_sd_weight=settings.ab_prior_sd_weight,
    )


def monitor_rule(settings: EvolutionSettings) -> MonitorRule:
    return MonitorRule(
        min_samples=settings.monitor_min_samples,
        max_samples=settings.monitor_max_samples,
        rollback_probability=settings.monitor_rollback_probability,
    )


async def _switch(session: AsyncSession, old: str | None, new: str) -> None:
    """Make ``new`` the champion; ``old`` (the current one) is retired first."""
    if old is not None and old != new:
        await store.set_status(session, old, "retired")
        await session.flush()
    await store.set_status(session, new, "active")


async def _close_test(session: AsyncSession, test: AbTest, status: str, reason: str,
                      **values: Any) -> bool:
    """Move a running test to ``status``; False if someone else already decided it."""
    result = await session.execute(
        update(AbTest).where(AbTest.id == test.id, AbTest.status == "running")
        .values(status=status, decided_at=utcnow(), decision_reason=reason, **values)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


async def _claim_look(session: AsyncSession, test: AbTest, look: int) -> bool:
    """Take ``look`` for this review; False if another review took it (or decided the test)."""
    result = await session.execute(
        update(AbTest)
        .where(AbTest.id == test.id, AbTest.status == "running", AbTest.last_look < look)
        .values(last_look=look)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


async def _record_statistics(session: AsyncSession, test: AbTest, decision: Decision) -> None:
    """Store an undecided test's statistics unless the test was decided or newer ones exist."""
    await session.execute(
        update(AbTest)
        .where(AbTest.id == test.id, AbTest.status == "running",
               AbTest.n_pairs <= decision.n_pairs)
        .values(n_pairs=decision.n_pairs, mean_diff=decision.mean_diff,
                p_better=decision.p_better, p_worse=decision.p_worse)
    )


async def _update_monitor(session: AsyncSession, test: AbTest, **values: Any) -> bool:
    """Change a monitor that is still watching; False if it already ended."""
    result = await session.execute(
        update(AbTest).where(AbTest.id == test.id, AbTest.monitor_status == "watching")
        .values(**values)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


@dataclass(frozen=True)
class Event:
    """Something that changed the champion or ended a test (for logs and exports)."""

    action: str
    version: str
    detail: str


async def review_test(session: AsyncSession, rule: DecisionRule) -> Event | None:
    """Apply the A/B decision to the running test, if any."""
    test = await store.running_test(session)
    if test is None:
        return None
    active = await store.active_version(session)
    if active is None or active.version != test.champion:
        if await _close_test(session, test, "stopped", "the champion changed during the test"):
            return Event("ab_stopped", test.challenger, "champion changed")
        return None
    diffs = await store.paired_differences(session, test)
    judged_after = test.last_look
    look = rule.look_reached(len(diffs), judged_after)
    if look is not None and not await _claim_look(session, test, look):
        judged_after = look  # another review judged this look: no promotion here
    decision: Decision = decide(diffs, rule, judged_after)
    stats = {"n_pairs": decision.n_pairs, "mean_diff": decision.mean_diff,
             "p_better": decision.p_better, "p_worse": decision.p_worse}
    if decision.outcome == "promote":
        if not await _close_test(session, test, "promoted", decision.reason,
                                 monitor_status="watching", **stats):
            return None
        await _switch(session, test.champion, test.challenger)
        await store.audit(session, "ab_promote", actor=SYSTEM, reason=decision.reason,
                          version=test.challenger, from_version=test.champion,
                          to_version=test.challenger, details=decision.as_dict())
        log.info("A/B test %s: promoted %s over %s (%s)", test.id, test.challenger,
                 test.champion, decision.reason)
        return Event("ab_promote", test.challenger, decision.reason)
    if decision.outcome == "rollback":
        if not await _close_test(session, test, "rolled_back", decision.reason, **stats):
            return None
        await store.set_status(session, test.challenger, "retired")
        await store.audit(session, "ab_rollback", actor=SYSTEM, reason=decision.reason,
                          version=test.challenger, from_version=test.challenger,
                          to_version=test.champion, details=decision.as_dict())
        log.info("A/B test %s: kept %s, retired %s (%s)", test.id, test.champion,
                 test.challenger, decision.reason)
        return Event("ab_rollback", test.challenger, decision.reason)
    await _record_statistics(session, test, decision)
    return None


async def review_monitor(session: AsyncSession, rule: MonitorRule) -> Event | None:
    """Watch a freshly promoted champion; roll it back automatically if it degrades."""
    test = await store.watching_test(session)
    if test is None:
        return None
    active = await store.active_version(session)
    if active is None or active.version != test.challenger:
        await _update_monitor(session, test, monitor_status="stopped",
                              monitor_decided_at=utcnow())
        return None
    new = [float(r.rating) for r in await store.results(session, [test.challenger],
                                                         since=test.decided_at)]
    reference = await store.paired_champion_ratings(session, test)
    check: MonitorCheck = monitor_check(new, reference, rule)
    if check.outcome == "watching":
        await _update_monitor(session, test, monitor_p_degraded=check.p_degraded)
        return None
    status = "rolled_back" if check.outcome == "rollback" else "passed"
    if not await _update_monitor(session, test, monitor_status=status,
                                 monitor_decided_at=utcnow(),
                                 monitor_p_degraded=check.p_degraded):
        return None
    details = {"n_new": check.n_new, "n_reference": check.n_reference, "delta": check.delta,
               "p_degraded": check.p_degraded}
    if check.outcome == "rollback":
        await _switch(session, test.challenger, test.champion)
        await store.audit(session, "auto_rollback", actor=SYSTEM, reason=check.reason,
                          version=test.challenger, from_version=test.challenger,
                          to_version=test.champion, details=details)
        log.warning("monitor: %s degraded after promotion, rolled back to %s (%s)",
                    test.challenger, test.champion, check.reason)
        return Event("auto_rollback", test.challenger, check.reason)
    await store.audit(session, "monitor_passed", actor=SYSTEM, reason=check.reason,
                      version=test.challenger, details=details)
    return Event("monitor_passed", test.challenger, check.reason)


async def _stop_open_work(session: AsyncSession, why: str) -> None:
    test = await store.running_test(session)
    if test is not None:
        await _close_test(session, test, "stopped", why)
    watching = await store.watching_test(session)
    if watching is not None:
        await _update_monitor(session, watching, monitor_status="stopped",
                              monitor_decided_at=utcnow())


async def promote(session: AsyncSession, version: str, *, actor: str, reason: str
                  ) -> dict[str, Any]:
    """Make ``version`` the champion by hand (stops a running test or monitor).

    Raises:
        VersionNotFound: unknown version.
        InvalidTransition: the version is already the champion.
    """
    row = await store.require_version(session, version)
    active = await store.active_version(session)
    if active is not None and active.version == version:
        raise InvalidTransition.because("already_active", version=version)
    previous = active.version if active else None
    await _stop_open_work(session, f"stopped: {actor} promoted {version} by hand")
    await _switch(session, previous, row.version)
    entry = await store.audit(session, "promote", actor=actor, reason=reason, version=version,
                              from_version=previous, to_version=version)
    return {"action": "promote", "active": version, "previous": previous, "audit_id": entry.id}


async def rollback(session: AsyncSession, version: str, *, actor: str, reason: str,
                   to: str | None = None) -> dict[str, Any]:
    """Withdraw ``version``: the champion goes back to ``to`` (default: its parent),
    or a challenger under test is retired and its test stopped.

    Raises:
        VersionNotFound: unknown version (or unknown ``to``).
        InvalidTransition: the version is neither the champion nor under test, or
            there is no version to go back to.
    """
    row = await store.require_version(session, version)
    active = await store.active_version(session)
    if active is None:
        raise NoActiveVersion.because()
    test = await store.running_test(session)
    if active.version == version:
        target = to or row.parent_version
        if target is None or target == version:
            raise InvalidTransition.because("no_earlier_version", version=version)
        await store.require_version(session, target)
        await _stop_open_work(session, f"stopped: {actor} rolled back {version}")
        await _switch(session, version, target)
        entry = await store.audit(session, "rollback", actor=actor, reason=reason,
                                  version=version, from_version=version, to_version=target)
        return {"action": "rollback", "active": target, "previous": version,
                "audit_id": entry.id}
    if test is not None and test.challenger == version:
        await _close_test(session, test, "stopped", f"stopped: {actor} rolled back {version}")
        await store.set_status(session, version, "retired")
        entry = await store.audit(session, "rollback", actor=actor, reason=reason,
                                  version=version, from_version=version,
                                  to_version=active.version)
        return {"action": "rollback", "active": active.version, "previous": active.version,
                "audit_id": entry.id}
    raise InvalidTransition.because("nothing_to_roll_back", version=version)
