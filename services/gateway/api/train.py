"""Public JSON API: ratings, learning status and history (the seeds' contract)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from services.gateway import ratings, reports
from services.gateway.api.deps import ContextDep, TrainerDep, require_user
from services.gateway.schemas import RateIn, RateOut, TrainingHistory, TrainingStatus

router = APIRouter(tags=["training"], dependencies=[Depends(require_user)])


@router.post("/api/train/rate")
async def rate(body: RateIn, ctx: ContextDep, user: TrainerDep) -> RateOut:
    """Save 1–5 star ratings (and comments) for an experiment's options.

    The rater is always the signed-in user (or the API token's owner); a ``rated_by``
    in the body is accepted for the seeds' shape and ignored.
    """
    return await ratings.rate_experiment(ctx, body, rater=user.username)


@router.get("/api/train/status")
async def status(ctx: ContextDep) -> TrainingStatus:
    """Where learning stands: samples, the optimizer's recommendation, the reward model,
    prompt evolution, services up and deliveries pending."""
    return await reports.training_status(ctx)


@router.get("/api/train/history")
async def history(
    ctx: ContextDep,
    limit: int = Query(50, ge=1, le=500),
    min_rating: float | None = Query(None, ge=1, le=5),
    api: str | None = None,
) -> TrainingHistory:
    """Rated experiments, newest first, and analytics over all ratings."""
    return await reports.training_history(ctx, limit, min_rating, api)
