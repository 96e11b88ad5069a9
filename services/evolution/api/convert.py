"""ORM rows to response shapes (shared by the routers)."""

from __future__ import annotations

from services.evolution.models import AbTest, AuditEntry, EvolutionRun
from services.evolution.schemas import AbTestOut, AuditOut, RunOut


def ab_test_out(test: AbTest) -> AbTestOut:
    return AbTestOut.model_validate(test, from_attributes=True)


def run_out(run: EvolutionRun) -> RunOut:
    return RunOut.model_validate(run, from_attributes=True)


def audit_out(entry: AuditEntry) -> AuditOut:
    return AuditOut.model_validate(entry, from_attributes=True)
