"""Rater-quality repeats: re-show an earlier experiment's images, blind (seed 004, 3.5.A).

After a trainer rates, with probability ``settings.repeat_share`` (5 % by default)
the next pair they are offered is an earlier experiment's two images again, to the
same trainer or another one, in a random order and without the earlier ratings,
comments or parameters. Agreement on these repeated images is what
:mod:`services.gateway.agreement` measures.

How a repeat is stored: a new :class:`Experiment` with ``repeat_of`` = the earlier
experiment and the same original render, and one new :class:`Variant` per shown
option with ``repeat_of`` = the earlier variant, pointing at the *same* generated
image (nothing is generated again). Its ratings are ordinary ratings: they go
through the outbox like any other, so the optimizer sees another rating of the same
render and parameters by that trainer (its model already has render and rater
effects), and the reward model sees another label of the same image.

Which earlier experiment: one whose shown variants all succeeded and were all rated,
that is not itself a repeat, and that this trainer has not been shown again yet;
preferring experiments rated by *another* trainer half of the time, so that both
self-consistency and between-trainer agreement collect data.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import utcnow
from services.gateway.context import Context
from services.gateway.ids import new_id
from services.gateway.models import Experiment, Rating, Variant

log = logging.getLogger(__name__)


async def candidates(session: AsyncSession, trainer: str, limit: int = 500
                     ) -> list[tuple[Experiment, set[str]]]:
    """Earlier rated, fully rated, non-repeat experiments this trainer has not repeated
    yet, newest first, each with the set of trainers who rated it."""
    already = set((await session.execute(
        select(Experiment.repeat_of).join(Rating, Rating.experiment_id == Experiment.id)
        .where(Experiment.repeat_of.is_not(None), Rating.rated_by == trainer))).scalars())
    rows = (await session.execute(
        select(Experiment).where(Experiment.rated_at.is_not(None),
                                 Experiment.repeat_of.is_(None))
        .order_by(Experiment.rated_at.desc()).limit(limit))).scalars().all()
    ids = [e.id for e in rows if e.id not in already]
    if not ids:
        return []
    raters: dict[str, set[str]] = {}
    rated_options: dict[str, set[str]] = {}
    for experiment_id, option, rated_by in (await session.execute(
            select(Rating.experiment_id, Rating.option, Rating.rated_by)
            .where(Rating.experiment_id.in_(ids)))).all():
        raters.setdefault(experiment_id, set()).add(rated_by)
        rated_options.setdefault(experiment_id, set()).add(option)
    out = []
    for experiment in rows:
        if experiment.id not in ids:
            continue
        shown = [v for v in experiment.variants if v.option is not None]
        if (len(shown) >= 2 and all(v.status == "succeeded" and v.image_id for v in shown)
                and rated_options.get(experiment.id, set()) >= {v.option for v in shown}):
            out.append((experiment, raters.get(experiment.id, set())))
    return out


def choose(options: Sequence[tuple[Experiment, set[str]]], trainer: str,
           rng: random.Random) -> Experiment | None:
    """Half of the time prefer an experiment someone else rated (between-trainer
    agreement), otherwise one this trainer rated (self-consistency); fall back to any."""
    if not options:
        return None
    others = [e for e, who in options if trainer not in who]
    own = [e for e, who in options if trainer in who]
    first, second = (others, own) if rng.random() < 0.5 else (own, others)
    pool = first or second
    return rng.choice(pool)


async def create_repeat(ctx: Context, source_id: str, rng: random.Random | None = None
                        ) -> Experiment:
    """A new experiment that shows ``source_id``'s images again, options shuffled."""
    rng = rng or random.Random()
    async with ctx.sessions() as session, session.begin():
        source = await session.get(Experiment, source_id)
        if source is None:
            raise LookupError(source_id)
        await session.refresh(source, ["variants"])
        shown = sorted((v for v in source.variants if v.option is not None),
                       key=lambda v: v.option or "")
        letters = [v.option or "" for v in shown]
        rng.shuffle(shown)
        now = utcnow()
        repeat = Experiment(id=new_id("exp"), original_image_id=source.original_image_id,
                            mode=source.mode, project_id=source.project_id, strategy="pair",
                            repeat_of=source.id)
        session.add(repeat)
        await session.flush()
        for option, old in zip(letters, shown, strict=True):
            session.add(Variant(
                id=new_id("var"), experiment_id=repeat.id, option=option, candidate_index=0,
                provider=old.provider, parameters=old.parameters,
                suggestion_source=old.suggestion_source, prompt_version=old.prompt_version,
                prompt_arm=old.prompt_arm, prompt=old.prompt, negative_prompt=old.negative_prompt,
                status="succeeded", stage="done", progress=1.0, image_id=old.image_id,
                duration_ms=old.duration_ms, model=old.model, estimated_cost_usd=0.0,
                started_at=now, finished_at=now, repeat_of=old.id))
    log.info("rater-quality repeat %s of experiment %s", repeat.id, source_id)
    return repeat


async def maybe_repeat(ctx: Context, trainer: str, rng: random.Random | None = None,
                       share: float | None = None) -> Experiment | None:
    """With probability ``share`` (default: the configured ``repeat_share``), create a
    repeat for ``trainer``; None when not drawn or when nothing can be repeated."""
    rng = rng or random.Random()
    share = ctx.settings.repeat_share if share is None else share
    if share <= 0 or rng.random() >= share:
        return None
    async with ctx.sessions() as session:
        chosen = choose(await candidates(session, trainer), trainer, rng)
    if chosen is None:
        return None
    return await create_repeat(ctx, chosen.id, rng)
