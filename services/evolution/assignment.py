"""Which prompt version each option of a new experiment uses.

The champion is the active version. With no A/B test running every option gets
the champion. While a test runs (and its champion is still the active version),
the experiment is a *pair*: one option gets the challenger, the others the
champion, so both variants come from the same render and the same parameters
source and the render's difficulty cancels out in the comparison. With a
challenger, exactly one option gets it; which one is derived from a hash of the
experiment id, so asking twice for the same experiment gives the same answer and
the challenger lands on "A" and "B" equally often.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from services.evolution import store
from services.evolution.documents import prompts_for
from services.evolution.errors import NoActiveVersion
from services.evolution.models import PromptVersion


@dataclass(frozen=True)
class ArmChoice:
    option: str
    version: str
    arm: str  # "champion" | "challenger"


@dataclass(frozen=True)
class AssignedOption:
    option: str
    version: str
    arm: str
    prompts: dict[str, dict[str, str]]


def challenger_index(experiment_id: str, n_options: int) -> int:
    """Deterministic, evenly spread index of the option that gets the challenger."""
    digest = hashlib.sha256(experiment_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % n_options


def plan_arms(
    experiment_id: str, options: Sequence[str], champion: str, challenger: str | None = None
) -> list[ArmChoice]:
    """The version and arm of every option, in the order given."""
    if challenger is None or len(options) < 2:
        return [ArmChoice(option, champion, "champion") for option in options]
    pick = challenger_index(experiment_id, len(options))
    return [
        ArmChoice(option, challenger, "challenger")
        if i == pick
        else ArmChoice(option, champion, "champion")
        for i, option in enumerate(options)
    ]


async def assign(
    session: AsyncSession, experiment_id: str, mode: str, options: Sequence[str]
) -> list[AssignedOption]:
    """Versions and prompts for a new experiment (a champion/challenger pair during a test).

    Raises:
        NoActiveVersion: no version is active (start-up normally prevents this).
    """
    champion = await store.active_version(session)
    if champion is None:
        raise NoActiveVersion.because("check_loading")
    rows: dict[str, PromptVersion] = {champion.version: champion}
    challenger: str | None = None
    test = await store.running_test(session)
    if test is not None and test.champion == champion.version:
        row = await store.get_version(session, test.challenger)
        if row is not None:
            rows[row.version] = row
            challenger = row.version
    plan = plan_arms(experiment_id, options, champion.version, challenger=challenger)
    return [
        AssignedOption(
            choice.option,
            choice.version,
            choice.arm,
            prompts_for(rows[choice.version].document, mode),
        )
        for choice in plan
    ]
