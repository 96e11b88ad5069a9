"""Phase 2 in the gateway: best-of-N candidates, active learning, prediction records.

When the reward service has a *validated* model, a new experiment generates N
candidates (``best_of_n``; N from settings, bounded by the cost of paid providers)
instead of two. Once every candidate has finished, the reward model scores them
and the trainer is shown

- the candidate with the highest predicted rating (exploitation), and
- among the rest, the one the model is least sure about (highest
  predicted std: active learning — its rating teaches the model the most).

Each shown variant keeps its prediction and the reason it was chosen, so live
accuracy (predicted vs the trainer's rating) is measured on the status page.
While a prompt A/B test runs, experiments stay paired (champion vs challenger) so
the test is not confounded by selection. If the reward service is unreachable at
selection time, the first two successful candidates are shown (reason
``fallback``) and nothing is lost.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from typing import Any, cast

import httpx
from sqlalchemy import CursorResult, select, update

from services.common.db import utcnow
from services.common.errors import ServiceUnavailable
from services.gateway.context import Context
from services.gateway.models import Experiment, Image, Variant
from services.gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

READINESS_TTL_SECONDS = 30.0
_readiness: dict[str, tuple[float, bool]] = {}


async def reward_ready(ctx: Context) -> bool:
    """Whether a validated reward model is active (cached for 30 s)."""
    cached = _readiness.get(ctx.settings.reward_url)
    now = time.monotonic()
    if cached and now - cached[0] < READINESS_TTL_SECONDS:
        return cached[1]
    try:
        status = await ctx.clients.reward_status()
        ready = bool(status.get("ready_for_inference"))
    except (ServiceUnavailable, httpx.HTTPError):
        ready = False
    _readiness[ctx.settings.reward_url] = (now, ready)
    return ready


def forget_readiness() -> None:
    _readiness.clear()


def candidate_count(settings: GatewaySettings, costs_per_image: list[float]) -> int:
    """N for best-of-N: the configured count, bounded by the per-experiment cost cap."""
    wanted = max(2, settings.best_of_n_candidates)
    dearest = max(costs_per_image, default=0.0)
    if dearest > 0:
        affordable = math.floor(settings.best_of_n_max_cost_usd / dearest)
        wanted = min(wanted, max(2, affordable))
    return min(wanted, 8)


async def after_generation(ctx: Context, variant_id: str) -> None:
    """Called by the job runner whenever a variant reaches a final state."""
    async with ctx.sessions() as session:
        variant = await session.get(Variant, variant_id)
        if variant is None:
            return
        experiment = await session.get(Experiment, variant.experiment_id)
        assert experiment is not None
        if experiment.strategy == "best_of_n":
            siblings = (await session.execute(
                select(Variant.status).where(Variant.experiment_id == experiment.id))).scalars()
            if all(s in ("succeeded", "failed", "cancelled") for s in siblings):
                pending_selection = experiment.selected_at is None
            else:
                return
        else:
            pending_selection = False
    if pending_selection:
        await select_candidates(ctx, experiment.id)
    elif variant.status == "succeeded" and await reward_ready(ctx):
        await record_predictions(ctx, [variant_id])


async def _images(ctx: Context, variant_ids: list[str]) -> tuple[list[Variant], list[bytes]]:
    async with ctx.sessions() as session:
        variants = list((await session.execute(
            select(Variant).where(Variant.id.in_(variant_ids)).order_by(Variant.candidate_index)
        )).scalars())
        keys = {}
        for v in variants:
            image = await session.get(Image, v.image_id) if v.image_id else None
            if image is not None:
                keys[v.id] = image.blob_key
    ready = [v for v in variants if v.id in keys]
    return ready, [await ctx.blobs.get(keys[v.id]) for v in ready]


async def _predict(ctx: Context, images: list[bytes]) -> tuple[list[dict[str, Any]], str] | None:
    try:
        answer = await ctx.clients.predict_ratings(images)
    except (ServiceUnavailable, httpx.HTTPError) as exc:
        log.warning("reward prediction unavailable: %s", exc)
        return None
    predictions = sorted(answer.get("predictions", []), key=lambda p: p["index"])
    if len(predictions) != len(images):
        log.warning("reward service returned %d predictions for %d images",
                    len(predictions), len(images))
        return None
    return predictions, str(answer.get("model_version", ""))


async def record_predictions(ctx: Context, variant_ids: list[str]) -> None:
    """Store the active model's prediction for already-shown variants (live accuracy)."""
    variants, images = await _images(ctx, variant_ids)
    if not variants:
        return
    result = await _predict(ctx, images)
    if result is None:
        return
    predictions, version = result
    async with ctx.sessions() as session, session.begin():
        for variant, prediction in zip(variants, predictions, strict=True):
            await session.execute(update(Variant).where(Variant.id == variant.id).values(
                predicted_rating=float(prediction["mean"]),
                predicted_std=float(prediction["std"]), reward_model_version=version))


async def select_candidates(ctx: Context, experiment_id: str) -> None:
    """Choose which two candidates the trainer sees (exactly once per experiment)."""
    async with ctx.sessions() as session, session.begin():
        claimed = await session.execute(
            update(Experiment)
            .where(Experiment.id == experiment_id, Experiment.selected_at.is_(None))
            .values(selected_at=utcnow()))
        if not cast(CursorResult[Any], claimed).rowcount:
            return  # another worker selected already
        everyone = list((await session.execute(
            select(Variant).where(Variant.experiment_id == experiment_id)
            .order_by(Variant.candidate_index))).scalars())
    succeeded = [v.id for v in everyone if v.status == "succeeded"]
    chosen: list[tuple[str, str, dict[str, Any] | None]] = []
    version = None
    if len(succeeded) >= 2:
        variants, images = await _images(ctx, succeeded)
        result = await _predict(ctx, images)
        if result is not None:
            predictions, version = result
            scored = list(zip(variants, predictions, strict=True))
            best = max(scored, key=lambda vp: vp[1]["mean"])
            rest = [vp for vp in scored if vp[0].id != best[0].id]
            uncertain = max(rest, key=lambda vp: vp[1]["std"])
            chosen = [(best[0].id, "best_predicted", best[1]),
                      (uncertain[0].id, "most_uncertain", uncertain[1])]
    if not chosen:
        # Reward unavailable, or too few successes: show what there is, failures included,
        # so the trainer sees the error and can retry.
        ordered = succeeded + [v.id for v in everyone if v.id not in succeeded]
        chosen = [(vid, "fallback", None) for vid in ordered[:2]]
    # Blind rating: which of the two is shown as A is drawn at random and recorded.
    swapped = (ctx.settings.shuffle_options and len(chosen) == 2
               and secrets.randbelow(2) == 1)
    if swapped:
        chosen.reverse()
    async with ctx.sessions() as session, session.begin():
        await session.execute(update(Experiment).where(Experiment.id == experiment_id)
                              .values(options_swapped=swapped))
        for option, (variant_id, reason, prediction) in zip("AB", chosen, strict=False):
            values: dict[str, Any] = {"option": option, "selection_reason": reason}
            if prediction is not None:
                values.update(predicted_rating=float(prediction["mean"]),
                              predicted_std=float(prediction["std"]),
                              reward_model_version=version)
            await session.execute(update(Variant).where(Variant.id == variant_id).values(**values))
    log.info("experiment %s: showing %s", experiment_id,
             ", ".join(f"{r} {v}" for v, r, _ in chosen))
