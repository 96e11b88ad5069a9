"""Model registry: how a fitted model is stored, found, loaded and (de)activated.

Every trained model is a version (``rm-0001``, ``rm-0002``…): a row in
``reward_models`` with its held-out metrics, training-set size and feature set, and
a pickled :class:`~services.reward.model.RatingModel` in the model blob store
(``REWARD_MODEL_DIR``). The row records the blob's SHA-256 and the bytes are checked
before unpickling, so a truncated or swapped file is refused instead of loaded.
(The blobs are written only by this service; pickle is not an exchange format.)

Activation rules (enforced by :mod:`services.reward.training` and
:func:`rollback`): a newly trained version becomes active only when it passed the
validation gate; a manual rollback may activate only a version that passed it, so
the active model, when there is one, is always a validated one.
"""

from __future__ import annotations

import asyncio
import hashlib
import pickle
import threading
from collections import OrderedDict

from sqlalchemy.ext.asyncio import AsyncSession

from services.common.blobs import BlobStore
from services.common.errors import BlobNotFound
from services.reward import store
from services.reward.errors import ModelNotFound, ModelUnavailable, RollbackRefused
from services.reward.model import RatingModel
from services.reward.models import ModelVersion

_CACHE_SIZE = 4


class ModelRegistry:
    """Saves and loads model blobs; keeps the last few loaded models in memory.

    ``save`` and ``load`` are coroutines; pickling, hashing and unpickling run in worker
    threads, and the in-memory cache is guarded by a lock.
    """

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs
        self._loaded: OrderedDict[str, RatingModel] = OrderedDict()
        self._lock = threading.Lock()

    async def save(self, version: str, model: RatingModel) -> tuple[str, str]:
        """Store ``model`` as ``version``; returns its blob key and SHA-256.

        Raises:
            BlobStoreUnavailable: the model store refused the write.
        """
        data, digest = await asyncio.to_thread(_pickled, model)
        key = f"{version}.pkl"
        await self.blobs.put(key, data)
        return key, digest

    async def load(self, row: ModelVersion) -> RatingModel:
        """The fitted model of ``row`` (from memory when loaded recently).

        Raises:
            ModelUnavailable: the blob is missing or does not match its recorded hash.
            BlobStoreUnavailable: the model store did not answer.
        """
        with self._lock:
            if row.version in self._loaded:
                self._loaded.move_to_end(row.version)
                return self._loaded[row.version]
        try:
            data = await self.blobs.get(row.blob_key)
        except BlobNotFound as exc:
            raise ModelUnavailable.because("file_missing", version=row.version) from exc
        model = await asyncio.to_thread(_unpickled, data, row)
        with self._lock:
            self._loaded[row.version] = model
            while len(self._loaded) > _CACHE_SIZE:
                self._loaded.popitem(last=False)
        return model


def _pickled(model: RatingModel) -> tuple[bytes, str]:
    data = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    return data, hashlib.sha256(data).hexdigest()


def _unpickled(data: bytes, row: ModelVersion) -> RatingModel:
    if hashlib.sha256(data).hexdigest() != row.blob_sha256:
        raise ModelUnavailable.because("file_corrupt", version=row.version)
    model: RatingModel = pickle.loads(data)  # noqa: S301 - our own, hash-checked blob
    return model


async def rollback(
    session: AsyncSession, version: str | None, *, actor: str = "api", reason: str = ""
) -> tuple[str, str | None]:
    """Activate ``version`` (default: the previously active validated one), audited.

    Returns the newly active version and the one it replaced.

    Raises:
        ModelNotFound: ``version`` does not exist.
        RollbackRefused: ``version`` never passed the validation gate, or there is no
            earlier validated version to go back to.
    """
    current = await store.get_active_model(session)
    current_version = current.version if current else None
    if version is None:
        target = await store.previous_validated(session, current_version)
        if target is None:
            raise RollbackRefused.because("nothing_earlier")
    else:
        target = await store.get_model(session, version)
        if target is None:
            raise ModelNotFound.because(version=version)
        if not target.validated:
            raise RollbackRefused.because("not_validated", version=version)
    await store.activate(session, target.version)
    await store.audit(
        session,
        "rollback",
        actor=actor,
        reason=reason or f"rollback from {current_version} to {target.version}",
        version=target.version,
        previous=current_version,
        details={"metrics": target.metrics},
    )
    return target.version, current_version
