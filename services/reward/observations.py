"""What a labelled rating becomes: one stored observation per gateway rating id.

The gateway's outbox may deliver a rating more than once (retries, restarts), and
two deliveries may race. The first delivery of a ``rating_id`` stores the rating with
the image's features; every later one stores nothing and reports ``stored=False``,
so nothing is counted twice. A higher ``revision`` of a stored rating id (a trainer's
correction) replaces its rating in place, still as one observation. A redelivery is
recognised before the image is decoded, so replays are cheap.

:func:`record_batch` stores up to ``REWARD_MAX_OBSERVE_BATCH`` observations per call
(what the gateway's outbox sends when several are due): their features are computed
together, then each item is stored in its own transaction, so one refused image
does not hold back the others.

A new observation also keeps the image bytes (and the original render's, when the
gateway sends one) in the image blob store, keyed by content hash, so later feature
versions and CLIP embeddings can be computed for old ratings; with an original it
stores the structure block, and with CLIP loaded it caches the image's embedding.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.blobs import BlobStore
from services.common.errors import AfinadorError
from services.reward import store
from services.reward.errors import InvalidRequest
from services.reward.extraction import (
    FeatureContext,
    ImageLimits,
    Upload,
    classical_rows,
    clip_rows,
    features_for_image,
    hash_uploads,
    image_key,
    sha256_hex,
    structure_rows,
    validate_uploads,
)
from services.reward.features import FeatureExtractor

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
        InvalidRequest: the rating is outside 1–5.
        InvalidImage: the image is not readable (only checked for a new rating id).
    """
    if not MIN_RATING <= label.rating <= MAX_RATING:
        raise InvalidRequest.because("rating_range", min=MIN_RATING, max=MAX_RATING,
                                     rating=label.rating)
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
    for data in datas:
        key = image_key(await asyncio.to_thread(sha256_hex, data))
        if not await images.exists(key):
            await images.put(key, data)


# --- several observations per call ---------------------------------------------------


@dataclass(frozen=True)
class BatchItem:
    """One observation of a batch: the label, the image and (optionally) its original."""

    label: Label
    data: bytes
    original: bytes | None = None


@dataclass(frozen=True)
class ItemOutcome:
    status: str  # stored | duplicate | rejected
    error: dict[str, Any] | None = None


async def _prepare(session: AsyncSession, items: Sequence[BatchItem], ctx: FeatureContext) -> None:
    """Featurise the batch's new images concurrently, so each item then hits the cache.

    An unreadable image is skipped here; recording that item raises its error.
    """
    uploads = await hash_uploads([i.data for i in items], ctx.limits)
    decoded = await asyncio.gather(
        *(validate_uploads([u], ctx) for u in uploads), return_exceptions=True
    )
    good = [
        (item, upload)
        for item, upload, outcome in zip(items, uploads, decoded, strict=True)
        if not isinstance(outcome, BaseException)
    ]
    if not good:
        return
    await classical_rows(session, [u for _, u in good], ctx)
    by_original: dict[bytes, list[Upload]] = {}
    for item, upload in good:
        if item.original is not None:
            by_original.setdefault(item.original, []).append(upload)
    for original, group in by_original.items():
        (reference,) = await hash_uploads([original], ctx.limits)
        try:
            await validate_uploads([reference], ctx)
        except AfinadorError:
            continue
        await structure_rows(session, group, reference, ctx)


async def record_batch(
    sessions: async_sessionmaker[AsyncSession],
    items: Sequence[BatchItem],
    extractor: FeatureExtractor,
    limits: ImageLimits,
    *,
    ctx: FeatureContext,
    images: BlobStore | None = None,
) -> tuple[list[ItemOutcome], int]:
    """Store every new observation of ``items``, each in its own transaction.

    Features of all new images are computed first, concurrently. An item whose image
    or values are refused (a 4xx error) is reported ``rejected`` with the error and
    the others are still stored; any other failure propagates (the caller retries the
    batch, and redelivered items are recognised as duplicates).

    Returns the outcome of each item, in order, and the observations now stored.
    """
    async with sessions() as session:
        known = {
            item.label.rating_id
            for item in items
            if await store.get_observation(session, item.label.rating_id) is not None
        }
    new = [item for item in items if item.label.rating_id not in known]
    if new:
        async with sessions() as session, session.begin():
            await _prepare(session, new, ctx)
    outcomes: list[ItemOutcome] = []
    total = 0
    for item in items:
        if item.label.rating_id in known:
            outcomes.append(ItemOutcome("duplicate"))
            continue
        try:
            async with sessions() as session, session.begin():
                result = await record_observation(
                    session,
                    item.label,
                    item.data,
                    extractor,
                    limits,
                    original=item.original,
                    ctx=ctx,
                    images=images,
                )
        except AfinadorError as exc:
            if exc.status_code >= 500:
                raise
            outcomes.append(ItemOutcome("rejected", exc.to_dict()))
            continue
        total = result.observations
        outcomes.append(ItemOutcome("stored" if result.stored else "duplicate"))
    async with sessions() as session:
        total = await store.count_observations(session)
    return outcomes, total
