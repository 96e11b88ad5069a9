"""Reports: the learning status and the rating history (the seeds' status and history).

Status gathers the three learning services' own status (each optional: a service
that is down is reported as such, never as an error) and the gateway's counts.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import func, select

from services.gateway.clients import optional_status
from services.gateway.context import Context, image_url
from services.gateway.models import Experiment, Rating, Variant
from services.gateway.outbox import pending_counts, rejected_counts
from services.gateway.ratings import phase1_status, rating_totals
from services.gateway.schemas import LiveAccuracy, TrainingHistory, TrainingStatus

log = logging.getLogger(__name__)


async def training_status(ctx: Context) -> TrainingStatus:
    """The status panel, in the seeds' ``/api/train/status`` shape plus service health."""
    optimizer, evolution, reward = await asyncio.gather(
        optional_status(ctx.clients.optimizer_status(sorted(ctx.providers))),
        optional_status(ctx.clients.evolution_status()),
        optional_status(ctx.clients.reward_status()),
    )
    async with ctx.sessions() as session:
        samples, best = await rating_totals(session)
        pending = await pending_counts(session)
        rejected = await rejected_counts(session)
        by_provider = (await session.execute(
            select(Variant.provider, func.avg(Rating.rating), func.count(Rating.rating))
            .join(Rating, Rating.variant_id == Variant.id).where(Rating.rating.is_not(None))
            .group_by(Variant.provider)
        )).all()
        live = (await session.execute(
            select(Variant.predicted_rating, Rating.rating)
            .join(Rating, Rating.variant_id == Variant.id)
            .where(Variant.predicted_rating.is_not(None), Rating.rating.is_not(None)))).all()
        best_row = (await session.execute(
            select(Variant.provider, Variant.parameters, Rating.rating)
            .join(Rating, Rating.variant_id == Variant.id).where(Rating.rating.is_not(None))
            .order_by(Rating.rating.desc(), Rating.created_at.desc()).limit(1)
        )).first()
    complete, reason = phase1_status(ctx.settings, samples, best, optimizer)
    convergence = optimizer.get("convergence_score") if optimizer else None
    remaining = max(ctx.settings.phase1_max_samples - samples, 0) if not complete else 0
    recommended = optimizer.get("best_parameters") if optimizer else None
    return TrainingStatus.model_validate({
        "phase_1": {
            "active": not complete,
            "samples_collected": samples,
            "best_rating": best,
            "convergence": convergence,
            "estimated_trials_remaining": remaining,
            "complete_reason": reason,
            "posterior_convergence": optimizer.get("posterior_convergence") if optimizer else None,
            "predicted_rating": optimizer.get("predicted_rating") if optimizer else None,
            "predicted_rating_interval":
                optimizer.get("predicted_rating_interval") if optimizer else None,
            "target_samples": ctx.settings.phase1_max_samples,
            "target_rating": ctx.settings.phase1_target_rating,
        },
        "phase_2": {
            "active": True,
            "training_samples": reward.get("observations") if reward else None,
            "model_accuracy": _model_accuracy(reward),
            "model_version": reward.get("model_version") if reward else None,
            "heldout_metrics": reward.get("heldout_metrics") if reward else None,
            "ready_for_inference": bool(reward and reward.get("ready_for_inference")),
            "live_accuracy": _live_accuracy(live),
        },
        "prompt_evolution": {
            "current_version": evolution.get("current_version") if evolution else None,
            "last_evolution": evolution.get("last_evolution") if evolution else None,
            "next_evolution_at_sample":
                evolution.get("next_evolution_at_sample") if evolution else None,
        },
        "current_best": {
            "api": best_row.provider if best_row else None,
            "avg_rating": next((float(a) for p, a, _ in by_provider
                                if best_row and p == best_row.provider), None),
            "parameters": best_row.parameters if best_row else None,
            "best_rating": float(best_row.rating) if best_row else None,
        },
        "recommended_parameters": recommended,
        "provider_posterior": {
            p: {"probability_best": v.get("probability_best"),
                "predicted_rating": v.get("predicted_rating")}
            for p, v in ((optimizer or {}).get("provider_posterior") or {}).items()},
        "api_performance": {p: {"avg_rating": round(float(a), 3), "count": int(c)}
                            for p, a, c in by_provider},
        "services": {"optimizer": optimizer is not None, "evolution": evolution is not None,
                     "reward": reward is not None},
        "pending_deliveries": pending,
        "rejected_deliveries": rejected,
    })


def _model_accuracy(reward: dict[str, Any] | None) -> float | None:
    """Held-out share of the active model's predictions within ±0.5 stars (the seeds'
    accuracy target), as the reward service measured it when the model was trained."""
    metrics = (reward or {}).get("heldout_metrics")
    value = metrics.get("within_05") if isinstance(metrics, dict) else None
    return float(value) if value is not None else None


def _live_accuracy(pairs: Any) -> LiveAccuracy:
    """How the reward model's recorded predictions compare with the ratings given later."""
    errors = [abs(float(predicted) - actual) for predicted, actual in pairs]
    if not errors:
        return LiveAccuracy(n=0, mae=None, within_half=None)
    return LiveAccuracy(n=len(errors), mae=round(sum(errors) / len(errors), 3),
                        within_half=round(sum(e <= 0.5 for e in errors) / len(errors), 3))


async def training_history(ctx: Context, limit: int = 50, min_rating: float | None = None,
                           api: str | None = None) -> TrainingHistory:
    """Rated experiments, newest first, and analytics over all ratings (seeds' shape)."""
    async with ctx.sessions() as session:
        query = (select(Rating, Variant).join(Variant, Variant.id == Rating.variant_id)
                 .order_by(Rating.created_at.desc(), Rating.option))
        rows = (await session.execute(query)).all()
        experiments_created = {e.id: e.created_at for e in (await session.execute(
            select(Experiment).where(Experiment.rated_at.is_not(None)))).scalars()}
    grouped: dict[str, list[dict[str, Any]]] = {}
    for rating, variant in rows:
        if min_rating is not None and (rating.rating is None or rating.rating < min_rating):
            continue
        if api is not None and variant.provider != api:
            continue
        grouped.setdefault(rating.experiment_id, []).append({
            "option": rating.option,
            "rating": float(rating.rating) if rating.rating is not None else None,
            "api": variant.provider,
            "parameters": variant.parameters, "prompt_version": variant.prompt_version,
            "comments": rating.comments, "rated_by": rating.rated_by,
            "image_url": image_url(variant.image_id) if variant.image_id else None,
            "rating_id": rating.id, "revision": rating.revision,
            "cannot_judge_reason": rating.cannot_judge_reason,
            "seconds_to_rate": rating.seconds_to_rate,
        })
    experiments = [
        {"experiment_id": eid, "created_at": experiments_created.get(eid),
         "options": sorted(opts, key=lambda o: o["option"])}
        for eid, opts in list(grouped.items())[:limit]
    ]
    # Analytics count stars only ("cannot judge" ratings have none), oldest first.
    starred = [(r.rating, v) for r, v in reversed(rows) if r.rating is not None]
    all_ratings = [stars for stars, _ in starred]
    trend = [round(sum(all_ratings[i:i + 10]) / len(all_ratings[i:i + 10]), 3)
             for i in range(0, len(all_ratings), 10)]
    per_api: dict[str, list[int]] = {}
    best_params = None
    best_value = -1
    for stars, variant in starred:
        per_api.setdefault(variant.provider, []).append(stars)
        if stars >= best_value:
            best_value, best_params = stars, variant.parameters
    return TrainingHistory.model_validate({
        "experiments": experiments,
        "analytics": {
            "total_samples": len(all_ratings),
            "avg_rating": round(sum(all_ratings) / len(all_ratings), 3) if all_ratings else None,
            "rating_trend": trend,
            "best_parameters": best_params,
            "api_performance": {p: {"avg_rating": round(sum(v) / len(v), 3), "count": len(v)}
                                for p, v in per_api.items()},
        },
    })
