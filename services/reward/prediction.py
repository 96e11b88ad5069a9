"""Scoring candidate images with the active (or a named) model version.

A request carries one or more images and optionally the original render they were
made from. Every image is validated first (one bad upload refuses the whole batch,
so indices stay meaningful), then features come from the cache or are computed
concurrently, and the model scores all rows in one call. The response keeps the
input order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from services.reward import store
from services.reward.errors import (
    InvalidRequest,
    ModelNotFound,
    ModelUnavailable,
    NoValidatedModel,
)
from services.reward.extraction import (
    FeatureContext,
    hash_uploads,
    model_inputs,
    validate_uploads,
)
from services.reward.registry import ModelRegistry


@dataclass(frozen=True)
class ScoredImage:
    index: int
    mean: float
    std: float
    image_sha256: str


@dataclass(frozen=True)
class Scores:
    model_version: str
    validated: bool
    predictions: list[ScoredImage]


async def predict_ratings(
    session: AsyncSession,
    ctx: FeatureContext,
    registry: ModelRegistry,
    images: Sequence[bytes],
    original: bytes | None = None,
    version: str | None = None,
    max_batch: int = 32,
) -> Scores:
    """Predicted rating (mean, std) of each image, in order.

    Raises:
        InvalidRequest: no image, or more than ``max_batch``.
        NoValidatedModel: no version given and no validated model is active.
        ModelNotFound: ``version`` does not exist.
        ModelUnavailable: the model's blob or one of its features (CLIP) is unavailable.
        InvalidImage / ImageTooLarge / UnsupportedImageType: an upload is not a usable image.
    """
    if not images or len(images) > max_batch:
        raise InvalidRequest.because("image_count", max=max_batch, images=len(images))
    if version is None:
        row = await store.get_active_model(session)
        if row is None or not row.validated:
            raise NoValidatedModel.because()
    else:
        row = await store.get_model(session, version)
        if row is None:
            raise ModelNotFound.because(version=version)
    if row.feature_version != ctx.feature_version(row.feature_set):
        raise ModelUnavailable.because("stale_features", version=row.version,
                                       features=row.feature_version)
    model = await registry.load(row)
    uploads = await hash_uploads(images, ctx.limits)
    reference = (await hash_uploads([original], ctx.limits))[0] if original is not None else None
    await validate_uploads([*uploads, *([reference] if reference else [])], ctx)
    X = await model_inputs(session, uploads, reference, ctx, row.feature_set)
    mean, std = await asyncio.to_thread(model.predict, X)
    return Scores(
        model_version=row.version,
        validated=bool(row.validated),
        predictions=[
            ScoredImage(i, float(m), float(s), u.sha256)
            for i, (m, s, u) in enumerate(zip(mean, std, uploads, strict=True))
        ],
    )
