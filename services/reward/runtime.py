"""The reward service's long-lived parts, built once per app at start-up.

:func:`start` loads CLIP (when configured; in a worker thread, since loading weights
takes seconds) and wires the feature context, blob stores, model registry and the
trainer; :meth:`Runtime.close` stops a background training on shut-down and closes
the blob stores.

The service keeps two blob stores (:func:`open_stores`): labelled images, keyed by
content hash (:func:`~services.reward.extraction.image_key`), and pickled models.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.blobs import BlobStore, LocalBlobStore, from_url
from services.reward.clip import load_clip
from services.reward.extraction import FeatureContext, ImageLimits
from services.reward.features import FeatureExtractor
from services.reward.registry import ModelRegistry
from services.reward.settings import RewardSettings
from services.reward.training import Trainer

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    ctx: FeatureContext
    clip_reason: str
    images: BlobStore
    registry: ModelRegistry
    trainer: Trainer

    @property
    def feature_set(self) -> str:
        return "classical+clip" if self.ctx.clip is not None else "classical"

    async def close(self) -> None:
        await self.trainer.close()
        await self.images.aclose()
        await self.registry.blobs.aclose()


def open_stores(settings: RewardSettings) -> tuple[BlobStore, BlobStore]:
    """The (images, models) stores that ``REWARD_STORAGE_URL`` names.

    Empty: local directories (``REWARD_IMAGE_DIR``, ``REWARD_MODEL_DIR``). Otherwise
    the ``images`` and ``models`` sub-locations of the URL (``s3://bucket/prefix`` →
    ``prefix/images`` and ``prefix/models``; ``file:///dir`` → ``dir/images``…).

    Raises:
        ValueError: a URL :func:`services.common.blobs.from_url` does not accept.
    """
    url = settings.storage_url.strip().rstrip("/")
    if not url:
        return LocalBlobStore(settings.images_path), LocalBlobStore(settings.models_path)
    try:
        images, models = (
            from_url(
                f"{url}/{part}", endpoint_url=settings.s3_endpoint_url, region=settings.aws_region
            )
            for part in ("images", "models")
        )
    except ValueError as exc:
        raise ValueError(f"REWARD_STORAGE_URL: {exc}") from exc
    return images, models


def limit_blas_threads(threads: int) -> None:
    """Let OpenBLAS (numpy's and scipy's) use at most ``threads`` threads (0: unchanged).

    The numeric work here is many small products (a six-image prediction multiplies a
    6×153 matrix by a 153×1080 one) run from worker threads two at a time. With one
    BLAS thread per core, OpenBLAS wakes its threads for each product and lets them
    spin afterwards: on a 2-core machine a classical six-image prediction took 36 ms of
    CPU (wall 69 ms) instead of 6 ms (9 ms), and the spinning competes with feature
    extraction in the other worker. The limit is process-wide, so it is set once here.
    """
    if threads <= 0:
        return
    from threadpoolctl import threadpool_limits  # scikit-learn's dependency

    threadpool_limits(limits=threads, user_api="blas")
    log.info("OpenBLAS limited to %d thread(s) per product", threads)


async def start(
    settings: RewardSettings,
    extractor: FeatureExtractor,
    sessions: async_sessionmaker[AsyncSession],
) -> Runtime:
    limit_blas_threads(settings.blas_threads)
    clip, reason = await asyncio.to_thread(
        load_clip,
        settings.clip_model,
        device=settings.clip_device,
        batch_size=settings.clip_batch_size,
    )
    ctx = FeatureContext(
        extractor=extractor,
        limits=ImageLimits.from_settings(settings),
        structure_size=settings.feature_size,
        clip=clip,
    )
    images, models = open_stores(settings)
    registry = ModelRegistry(models)
    trainer = Trainer(sessions, settings, ctx, registry, images)
    return Runtime(ctx, reason, images, registry, trainer)
