"""Public JSON API: ratings, learning status and history (the seeds' contract)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from services.gateway import training
from services.gateway.api.deps import ContextDep
from services.gateway.schemas import RateIn, RateOut

router = APIRouter(tags=["training"])


@router.post("/api/train/rate")
async def rate(body: RateIn, ctx: ContextDep) -> RateOut:
    """Save 1–5 star ratings (and comments) for an experiment's options."""
    return await training.rate_experiment(ctx, body)


@router.get("/api/train/status")
async def status(ctx: ContextDep) -> dict[str, Any]:
    return await training.training_status(ctx)


@router.get("/api/train/history")
async def history(
    ctx: ContextDep,
    limit: int = Query(50, ge=1, le=500),
    min_rating: float | None = Query(None, ge=1, le=5),
    api: str | None = None,
) -> dict[str, Any]:
    return await training.training_history(ctx, limit, min_rating, api)
