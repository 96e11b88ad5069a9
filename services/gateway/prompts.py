"""Which prompt each option of a new experiment uses.

Asks the evolution service; when it is down, falls back to the last assignment it
gave (kept in ``prompt_snapshots``) and, on a fresh install, to the baseline
version file in ``prompts/versions``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.db import utcnow
from services.common.errors import ServiceUnavailable
from services.gateway.clients import ServiceClients
from services.gateway.models import PromptSnapshot

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PromptAssignment:
    option: str
    version: str
    arm: str
    prompts: dict[str, dict[str, str]]  # provider -> {prompt, negative_prompt}
    source: str  # evolution | snapshot | baseline_file

    def for_provider(self, provider: str) -> dict[str, str]:
        return self.prompts.get(provider) or self.prompts["stablediffusion"]


def baseline_prompts(prompts_dir: Path, mode: str) -> tuple[str, dict[str, dict[str, str]]]:
    """The prompts of the newest baseline file (``v1.0.0.json``) for ``mode``."""
    document = json.loads((prompts_dir / "versions" / "v1.0.0.json").read_text())
    prompts = {
        provider: dict(spec["modes"][mode])
        for provider, spec in document["providers"].items()
    }
    prompts.setdefault("local", prompts["stablediffusion"])
    return document["version"], prompts


async def assign_prompts(
    clients: ServiceClients,
    sessions: async_sessionmaker[AsyncSession],
    prompts_dir: Path,
    experiment_id: str,
    mode: str,
    options: list[str],
) -> list[PromptAssignment]:
    try:
        answer = await clients.assign_prompts(experiment_id, mode, options)
    except ServiceUnavailable as exc:
        log.warning("evolution unavailable, using last known prompt: %s", exc)
        return await _fallback(sessions, prompts_dir, mode, options)
    assignments = [
        PromptAssignment(a["option"], a["version"], a.get("arm", "champion"),
                         {p: {"prompt": v["prompt"], "negative_prompt": v["negative_prompt"]}
                          for p, v in a["prompts"].items()}, "evolution")
        for a in answer
    ]
    await _remember(sessions, mode, assignments)
    return assignments


async def _remember(sessions: async_sessionmaker[AsyncSession], mode: str,
                    assignments: list[PromptAssignment]) -> None:
    """Keep the champion's prompts for ``mode``: an upsert, so concurrent first uploads
    of a version (first start, every new challenger) both succeed."""
    champion = next((a for a in assignments if a.arm == "champion"), assignments[0])
    async with sessions() as session, session.begin():
        dialect = session.get_bind().dialect.name
        insert = sqlite_insert if dialect == "sqlite" else postgres_insert
        statement = insert(PromptSnapshot).values(
            version=champion.version, mode=mode, prompts=champion.prompts, fetched_at=utcnow())
        await session.execute(statement.on_conflict_do_update(
            index_elements=["version", "mode"],
            set_={"prompts": statement.excluded.prompts,
                  "fetched_at": statement.excluded.fetched_at}))


async def _fallback(sessions: async_sessionmaker[AsyncSession], prompts_dir: Path, mode: str,
                    options: list[str]) -> list[PromptAssignment]:
    async with sessions() as session:
        snapshot = (await session.execute(
            select(PromptSnapshot).where(PromptSnapshot.mode == mode)
            .order_by(PromptSnapshot.fetched_at.desc()).limit(1))).scalar_one_or_none()
    if snapshot is not None and snapshot.prompts:
        prompts: Any = snapshot.prompts
        return [PromptAssignment(o, snapshot.version, "champion", prompts, "snapshot")
                for o in options]
    version, prompts = baseline_prompts(prompts_dir, mode)
    return [PromptAssignment(o, version, "champion", prompts, "baseline_file") for o in options]
