"""When an upload is decoded and featurised, and when its cached features are reused.

An image is identified by the SHA-256 of its bytes. Features are looked up in
``feature_cache`` under the extractor's version; only on a miss are the bytes
decoded and featurised, in a worker thread so the event loop keeps serving other
requests, and the result is cached (a concurrent request that cached the same
image first simply wins).

The same rule covers the other blocks a model may need:

* the structure block of an (image, original) pair, cached under the SHA-256 of the
  two hashes and ``structure-v1@<size>``; the original is decoded and prepared once
  per request, however many candidates it is compared with;
* CLIP embeddings, cached under the checkpoint's version and computed in one batch
  for all the misses of a request.

:func:`model_inputs` assembles the rows a :class:`~services.reward.model.RatingModel`
takes: classical features, then the structure block, then (for ``classical+clip``)
the embedding. Misses are decoded and featurised concurrently in worker threads.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.images import check_size, decode_image
from services.reward import store
from services.reward.clip import ClipEmbedder
from services.reward.errors import ModelUnavailable
from services.reward.features import ClassicalExtractor, FeatureExtractor, FeatureVector
from services.reward.settings import RewardSettings
from services.reward.structure import (
    NO_ORIGINAL,
    STRUCTURE_VERSION,
    Reference,
    prepare_reference,
    structure_features,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageLimits:
    """Upload limits enforced before any feature is computed."""

    max_bytes: int
    max_pixels: int

    @classmethod
    def from_settings(cls, settings: RewardSettings) -> ImageLimits:
        return cls(settings.max_image_bytes, settings.max_pixels)


@dataclass(frozen=True)
class ImageFeatures:
    """Features of one upload, with where they came from."""

    image_sha256: str
    vector: FeatureVector
    width: int
    height: int
    cached: bool


def sha256_hex(data: bytes) -> str:
    """Content hash that identifies an upload (and keys the feature cache)."""
    return hashlib.sha256(data).hexdigest()


def image_key(sha256: str) -> str:
    """Key of an image's bytes in the image blob store, by content hash."""
    return f"{sha256[:2]}/{sha256}"


def get_extractor(settings: RewardSettings) -> FeatureExtractor:
    """The feature extractor the settings ask for (classical only, for now)."""
    return ClassicalExtractor(settings.feature_size)


def decode_rgb(data: bytes, limits: ImageLimits) -> np.ndarray:
    """The pixels of ``data`` as ``H×W×3 uint8`` (CPU-bound: call it in a worker thread).

    Raises:
        InvalidImage, ImageTooLarge, UnsupportedImageType: see
            :func:`services.common.images.decode_image`.
    """
    return decode_image(data, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels).to_array()


def _decode_and_extract(
    data: bytes, extractor: FeatureExtractor, limits: ImageLimits
) -> tuple[FeatureVector, int, int]:
    rgb = decode_rgb(data, limits)
    return extractor.extract(rgb), rgb.shape[1], rgb.shape[0]


async def features_for_image(
    session: AsyncSession, data: bytes, extractor: FeatureExtractor, limits: ImageLimits
) -> ImageFeatures:
    """Features of the image in ``data``, from the cache when these bytes were seen.

    Raises:
        InvalidImage: the bytes are empty, damaged or truncated.
        UnsupportedImageType: the bytes are not a JPEG, PNG or WebP image.
        ImageTooLarge: the bytes exceed the byte or pixel limit.
    """
    check_size(data, limits.max_bytes)
    digest = await asyncio.to_thread(sha256_hex, data)
    hit = await store.get_cached_features(session, digest, extractor.version)
    if hit is not None and len(hit.features) == len(extractor.names):
        vector = FeatureVector(
            extractor.version, extractor.names, tuple(hit.features), extractor.layout
        )
        return ImageFeatures(digest, vector, hit.width, hit.height, cached=True)
    vector, width, height = await asyncio.to_thread(_decode_and_extract, data, extractor, limits)
    entry = store.CacheEntry(width, height, list(vector.values))
    if not await store.put_cached_features(session, digest, extractor.version, entry):
        log.debug("features of %s were cached concurrently", digest[:12])
    return ImageFeatures(digest, vector, width, height, cached=False)


# --- several images at once, with structure and CLIP blocks --------------------------

_WORKERS = max(1, min(8, os.cpu_count() or 1))


@dataclass
class Upload:
    """One uploaded image in a batch: bytes, hash and (once decoded) pixels."""

    data: bytes
    sha256: str
    rgb: np.ndarray | None = None
    width: int = 0
    height: int = 0


@dataclass
class FeatureContext:
    """What turns uploads into model inputs in this process."""

    extractor: FeatureExtractor
    limits: ImageLimits
    structure_size: int
    clip: ClipEmbedder | None = None
    _pool: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(_WORKERS))

    @property
    def structure_version(self) -> str:
        return f"{STRUCTURE_VERSION}@{self.structure_size}"

    def feature_version(self, feature_set: str) -> str:
        """The vector-space id of a model's input for ``feature_set``."""
        parts = [self.extractor.version, self.structure_version]
        if feature_set == "classical+clip":
            if self.clip is None:
                raise ModelUnavailable.because("model_needs_clip")
            parts.append(self.clip.version)
        return "+".join(parts)


def pair_key(image_sha256: str, original_sha256: str) -> str:
    """Cache key of the structure block of an (image, original) pair."""
    return hashlib.sha256(f"{image_sha256}:{original_sha256}".encode()).hexdigest()


async def hash_uploads(datas: Sequence[bytes], limits: ImageLimits) -> list[Upload]:
    """Check sizes and hash every upload (in a worker thread)."""
    for data in datas:
        check_size(data, limits.max_bytes)
    hashes = await asyncio.to_thread(lambda: [sha256_hex(d) for d in datas])
    return [Upload(d, h) for d, h in zip(datas, hashes, strict=True)]


async def _decode(upload: Upload, ctx: FeatureContext) -> np.ndarray:
    if upload.rgb is None:
        async with ctx._pool:
            rgb = await asyncio.to_thread(decode_rgb, upload.data, ctx.limits)
        upload.rgb, upload.width, upload.height = rgb, rgb.shape[1], rgb.shape[0]
    return upload.rgb


async def validate_uploads(uploads: Sequence[Upload], ctx: FeatureContext) -> None:
    """Decode every upload (concurrently), raising the first InvalidImage."""
    await asyncio.gather(*(_decode(u, ctx) for u in uploads))


async def classical_rows(
    session: AsyncSession, uploads: Sequence[Upload], ctx: FeatureContext
) -> np.ndarray:
    """Classical features of each upload (``len×dims``), cached by content hash."""
    version = ctx.extractor.version
    cached = await store.get_cached_many(session, [u.sha256 for u in uploads], version)
    dims = len(ctx.extractor.names)
    missing = {
        u.sha256: u
        for u in uploads
        if u.sha256 not in cached or len(cached[u.sha256].features) != dims
    }

    async def compute(upload: Upload) -> tuple[str, store.CacheEntry]:
        rgb = await _decode(upload, ctx)
        async with ctx._pool:
            vector = await asyncio.to_thread(ctx.extractor.extract, rgb)
        return upload.sha256, store.CacheEntry(upload.width, upload.height, list(vector.values))

    for sha, entry in await asyncio.gather(*(compute(u) for u in missing.values())):
        cached[sha] = entry
        await store.put_cached_features(session, sha, version, entry)
    return np.array([cached[u.sha256].features for u in uploads], dtype=np.float64)


async def structure_rows(
    session: AsyncSession,
    uploads: Sequence[Upload],
    original: Upload | None,
    ctx: FeatureContext,
) -> np.ndarray:
    """Structure block of each upload against ``original`` (all zeros without one)."""
    if original is None:
        return np.tile(np.array(NO_ORIGINAL), (len(uploads), 1))
    version = ctx.structure_version
    keys = [pair_key(u.sha256, original.sha256) for u in uploads]
    cached = await store.get_cached_many(session, keys, version)
    todo = [(k, u) for k, u in zip(keys, uploads, strict=True) if k not in cached]
    if todo:
        original_rgb = await _decode(original, ctx)
        async with ctx._pool:
            reference: Reference = await asyncio.to_thread(
                prepare_reference, original_rgb, ctx.structure_size
            )

        async def compute(key: str, upload: Upload) -> tuple[str, store.CacheEntry]:
            rgb = await _decode(upload, ctx)
            async with ctx._pool:
                values = await asyncio.to_thread(structure_features, rgb, reference)
            return key, store.CacheEntry(upload.width, upload.height, list(values))

        for key, entry in await asyncio.gather(*(compute(k, u) for k, u in todo)):
            if key not in cached:
                cached[key] = entry
                await store.put_cached_features(session, key, version, entry)
    return np.array([cached[k].features for k in keys], dtype=np.float64)


async def clip_rows(
    session: AsyncSession, uploads: Sequence[Upload], ctx: FeatureContext
) -> np.ndarray:
    """CLIP embeddings of each upload, cached; all misses go through one batched call."""
    if ctx.clip is None:
        raise ModelUnavailable.because("no_clip")
    clip = ctx.clip
    cached = await store.get_cached_many(session, [u.sha256 for u in uploads], clip.version)
    todo: dict[str, Upload] = {u.sha256: u for u in uploads if u.sha256 not in cached}
    if todo:
        images = [await _decode(u, ctx) for u in todo.values()]
        vectors = await asyncio.to_thread(clip.embed, images)
        for upload, vector in zip(todo.values(), vectors, strict=True):
            entry = store.CacheEntry(upload.width, upload.height, vector.tolist())
            cached[upload.sha256] = entry
            await store.put_cached_features(session, upload.sha256, clip.version, entry)
    return np.array([cached[u.sha256].features for u in uploads], dtype=np.float64)


async def model_inputs(
    session: AsyncSession,
    uploads: Sequence[Upload],
    original: Upload | None,
    ctx: FeatureContext,
    feature_set: str,
) -> np.ndarray:
    """Rows for a model of ``feature_set``: classical, structure, then CLIP if used."""
    blocks = [
        await classical_rows(session, uploads, ctx),
        await structure_rows(session, uploads, original, ctx),
    ]
    if feature_set == "classical+clip":
        blocks.append(await clip_rows(session, uploads, ctx))
    return np.hstack(blocks)
