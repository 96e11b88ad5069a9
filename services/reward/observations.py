"""What a labelled rating becomes: one stored observation per gateway rating id.

The gateway's outbox may deliver a rating more than once (retries, restarts), and
two deliveries may race. The first delivery of a ``rating_id`` stores the rating with
the image's features; every later one stores nothing and reports ``stored=False``,
so nothing is counted twice. A higher ``revision`` of a stored rating id (a trainer's
correction) replaces its rating in place, still as one observation. A redelivery is
recognised before the image is decoded, so replays are cheap.

A new observation also keeps the image bytes (and the original render's, when the
gateway sends one) in the image blob store, keyed by content hash, so later feature
versions and CLIP embeddings can be computed for old ratings; with an original it
stores the structure block, and with CLIP loaded it caches the image's embedding.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from services.common.errors import ValidationFailed
from services.reward import store
from services.reward.blobs import BlobStore, image_key
from services.reward.extraction import (
    FeatureContext,
    ImageLimits,
    clip_rows,
    features_for_image,
    hash_uploads,
    structure_rows,
    validate_uploads,
)
from services.reward.features import FeatureExtractor
from services.reward.imaging import sha256_hex

log = logging.getLogger(__name__)

MIN_RATING = 1
MAX_RATING = 5


@dataclass(frozen=True)
class Label:
    """The rating the gateway sends with an image."""

    rating_id: str
    rating: int
    experiment_id: str
    option: str
    rater: str
    variant_id: str | None = None
    prompt_version: str | None = None
    mode: str | None = None
    revision: int = 1


@dataclass(frozen=True)
class ObserveResult:
    stored: bool
    observations: int


async def record_observation(
    session: AsyncSession,
    label: Label,
    data: bytes,
    extractor: FeatureExtractor,
    limits: ImageLimits,
    *,
    original: bytes | None = None,
    ctx: FeatureContext | None = None,
    images: BlobStore | None = None,
) -> ObserveResult:
    """Store ``label`` with the features of ``data`` unless its rating id is stored.

    ``original`` (the render ``data`` was made from) adds the structure block;
    ``ctx`` carries the structure size and CLIP; ``images`` keeps the bytes.

    Raises:
        ValidationFailed: the rating is outside 1–5.
        InvalidImage: the image is not readable (only checked for a new rating id).
    """
    if not MIN_RATING <= label.rating <= MAX_RATING:
        raise ValidationFailed(
            f"La puntuación debe estar entre {MIN_RATING} y {MAX_RATING} estrellas "
            f"(se recibió {label.rating}).",
            f"The rating must be between {MIN_RATING} and {MAX_RATING} stars (got {label.rating}).",
        )
    existing = await store.get_observation(session, label.rating_id)
    stored = False
    if existing is None:
        image = await features_for_image(session, data, extractor, limits)
        structure: list[float] | None = None
        original_sha: str | None = None
        if ctx is not None:
            (upload,) = await hash_uploads([data], limits)
            reference = (await hash_uploads([original], limits))[0] if original else None
            if reference is not None:
                await validate_uploads([upload, reference], ctx)
                original_sha = reference.sha256
                block = await structure_rows(session, [upload], reference, ctx)
                structure = [float(v) for v in block[0]]
            if ctx.clip is not None:
                await clip_rows(session, [upload], ctx)
            if images is not None:
                await _keep_bytes(images, [upload.data, *([original] if original else [])])
        stored = await store.add_observation(
            session,
            store.NewObservation(
                rating_id=label.rating_id,
                image_sha256=image.image_sha256,
                experiment_id=label.experiment_id,
                option=label.option,
                rater=label.rater,
                rating=label.rating,
                feature_version=image.vector.version,
                features=image.vector.values,
                variant_id=label.variant_id,
                mode=label.mode,
                prompt_version=label.prompt_version,
                original_sha256=original_sha,
                structure=structure,
            ),
        )
    if stored:
        log.info(
            "observation stored: rating %s experiment %s option %s rating=%d",
            label.rating_id,
            label.experiment_id,
            label.option,
            label.rating,
        )
    elif existing is not None and label.revision > existing.revision:
        # A trainer's correction: the same observation, its rating replaced (not counted again).
        existing.rating, existing.revision = label.rating, label.revision
        await session.flush()
        log.info("rating %s revised to %d (revision %d)", label.rating_id, label.rating,
                 label.revision)
    elif existing is not None and existing.rating != label.rating:
        log.warning(
            "rating %s redelivered with rating=%d but %d is stored; keeping the first",
            label.rating_id,
            label.rating,
            existing.rating,
        )
    else:
        log.info("rating %s already stored; nothing to do", label.rating_id)
    return ObserveResult(stored, await store.count_observations(session))


async def _keep_bytes(images: BlobStore, datas: list[bytes]) -> None:
    def put_all() -> None:
        for data in datas:
            key = image_key(sha256_hex(data))
            if not images.exists(key):
                images.put(key, data)

    await asyncio.to_thread(put_all)
