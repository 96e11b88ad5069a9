"""When a model is trained, on which observations, and when it becomes active.

Held-out split. An observation is held out when ``H(rating_id) < holdout_fraction``,
with ``H`` the first 8 bytes of SHA-256 of the rating id read as a number in
``[0, 1)``. The split never changes as observations arrive, so no version ever trains
on a held-out rating and every version can be compared on the current held-out set.

Training. The training observations (at least ``REWARD_MIN_TRAIN``) are fitted with
the classical ensemble; when CLIP is available and every observation's image is
stored, an MLP ensemble on classical + structure + CLIP is fitted too and the one
with the lower held-out MAE is the candidate.

Validation gate. The candidate becomes active only if, on the held-out set (at
least ``REWARD_MIN_HOLDOUT`` observations), its MAE is lower than both the constant
predictor (the training mean) and the active model (when there is one and this
service can compute its features). Otherwise it is recorded as ``rejected`` with the
reason. Either way it is a new version in the registry.

Triggers. ``POST /ml/train`` trains now (and waits); every stored observation calls
:meth:`Trainer.notify`, which starts a background training when at least
``REWARD_RETRAIN_EVERY`` observations arrived after the newest one any version was
trained on. One training runs at a time per process.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.reward import store
from services.reward.blobs import BlobStore, image_key
from services.reward.errors import NotEnoughData
from services.reward.extraction import FeatureContext
from services.reward.imaging import decode_image
from services.reward.metrics import Metrics, evaluate
from services.reward.model import RatingModel, fit_classical, fit_mlp
from services.reward.models import ModelVersion, Observation
from services.reward.registry import ModelRegistry
from services.reward.settings import RewardSettings
from services.reward.structure import NO_ORIGINAL, STRUCTURE_DIMS

log = logging.getLogger(__name__)


def is_holdout(rating_id: str, fraction: float) -> bool:
    """Whether this rating belongs to the (fixed) held-out set."""
    digest = hashlib.sha256(rating_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


@dataclass
class TrainOutcome:
    version: str
    activated: bool
    validated: bool
    reason: str
    kind: str
    feature_set: str
    n_train: int
    n_holdout: int
    metrics: dict[str, Any]
    baseline: dict[str, Any]
    incumbent: str | None
    candidates: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class _Data:
    y: np.ndarray
    holdout: np.ndarray  # bool
    classical: np.ndarray
    structure: np.ndarray
    clip: np.ndarray | None
    through_id: int


class Trainer:
    """Trains versions, applies the gate, and schedules automatic retraining."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: RewardSettings,
        ctx: FeatureContext,
        registry: ModelRegistry,
        images: BlobStore,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.ctx = ctx
        self.registry = registry
        self.images = images
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.last_error: str | None = None

    @property
    def running(self) -> bool:
        return self._lock.locked()

    def notify(self) -> None:
        """Called after an observation is committed: maybe start a background training."""
        if not self.settings.auto_retrain:
            return
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._auto())

    async def wait_idle(self) -> None:
        """Wait for a scheduled background training to finish (tests, shutdown)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        await self.wait_idle()

    async def _auto(self) -> None:
        async with self.sessions() as session:
            since = await store.last_trained_through(session)
            new = await store.count_observations_after(session, since)
        if new < self.settings.retrain_every:
            return
        try:
            outcome = await self.train(trigger="auto")
            log.info("automatic training: %s (%s)", outcome.version, outcome.reason)
            self.last_error = None
        except NotEnoughData as exc:
            log.info("automatic training skipped: %s", exc)
            self.last_error = str(exc)
        except Exception as exc:  # a background failure must be visible, not lost
            log.exception("automatic training failed")
            self.last_error = f"{type(exc).__name__}: {exc}"

    async def train(self, trigger: str = "manual") -> TrainOutcome:
        """Train a version on the stored observations and apply the validation gate.

        Raises:
            NotEnoughData: fewer than ``min_train`` training or ``min_holdout``
                held-out observations.
        """
        async with self._lock:
            async with self.sessions() as session, session.begin():
                data = await self._load(session)
            settings = self.settings
            n_train, n_hold = int((~data.holdout).sum()), int(data.holdout.sum())
            if n_train < settings.min_train or n_hold < settings.min_holdout:
                raise NotEnoughData(
                    f"Hacen falta al menos {settings.min_train} valoraciones de entrenamiento y "
                    f"{settings.min_holdout} de validación; hay {n_train} y {n_hold}. "
                    "Sigue valorando imágenes.",
                    f"At least {settings.min_train} training and {settings.min_holdout} held-out "
                    f"ratings are needed; there are {n_train} and {n_hold}. Keep rating images.",
                    n_train=n_train,
                    n_holdout=n_hold,
                )
            fitted = await asyncio.to_thread(self._fit, data)
            async with self.sessions() as session, session.begin():
                return await self._gate_and_record(session, data, fitted, trigger)

    # --- data -------------------------------------------------------------------

    async def _load(self, session: AsyncSession) -> _Data:
        rows = await store.list_observations(session)
        ctx = self.ctx
        version = ctx.extractor.version
        dims = len(ctx.extractor.names)
        stale = [o for o in rows if o.feature_version != version]
        cached = await store.get_cached_many(session, [o.image_sha256 for o in stale], version)
        keep: list[Observation] = []
        classical: list[list[float]] = []
        for obs in rows:
            if obs.feature_version == version and len(obs.features) == dims:
                values = list(obs.features)
            elif obs.image_sha256 in cached:
                values = cached[obs.image_sha256].features
            else:
                recomputed = await self._recompute(session, obs.image_sha256)
                if recomputed is None:
                    continue  # an old observation whose image was never stored
                values = recomputed
            keep.append(obs)
            classical.append(values)
        structure = [
            list(o.structure)
            if o.structure and len(o.structure) == STRUCTURE_DIMS
            else list(NO_ORIGINAL)
            for o in keep
        ]
        clip = await self._clip_matrix(session, keep) if ctx.clip is not None else None
        return _Data(
            y=np.array([o.rating for o in keep], dtype=np.float64),
            holdout=np.array(
                [is_holdout(o.rating_id, self.settings.holdout_fraction) for o in keep], bool
            ),
            classical=np.array(classical, dtype=np.float64).reshape(len(keep), dims),
            structure=np.array(structure, dtype=np.float64).reshape(len(keep), STRUCTURE_DIMS),
            clip=clip,
            through_id=max((o.id for o in rows), default=0),
        )

    async def _image(self, sha: str) -> np.ndarray | None:
        try:
            data = await asyncio.to_thread(self.images.get, image_key(sha))
        except KeyError:
            return None
        limits = self.ctx.limits
        decoded = await asyncio.to_thread(
            decode_image, data, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels
        )
        return decoded.rgb

    async def _recompute(self, session: AsyncSession, sha: str) -> list[float] | None:
        rgb = await self._image(sha)
        if rgb is None:
            return None
        vector = await asyncio.to_thread(self.ctx.extractor.extract, rgb)
        entry = store.CacheEntry(rgb.shape[1], rgb.shape[0], list(vector.values))
        await store.put_cached_features(session, sha, self.ctx.extractor.version, entry)
        return entry.features

    async def _clip_matrix(
        self, session: AsyncSession, rows: list[Observation]
    ) -> np.ndarray | None:
        clip = self.ctx.clip
        assert clip is not None
        shas = [o.image_sha256 for o in rows]
        cached = await store.get_cached_many(session, shas, clip.version)
        missing = sorted(set(shas) - set(cached))
        images: list[np.ndarray] = []
        for sha in missing:
            rgb = await self._image(sha)
            if rgb is None:
                log.info("CLIP model skipped: image %s is not stored", sha[:12])
                return None
            images.append(rgb)
        if images:
            vectors = await asyncio.to_thread(clip.embed, images)
            for sha, rgb, vector in zip(missing, images, vectors, strict=True):
                entry = store.CacheEntry(rgb.shape[1], rgb.shape[0], vector.tolist())
                cached[sha] = entry
                await store.put_cached_features(session, sha, clip.version, entry)
        return np.array([cached[s].features for s in shas], dtype=np.float64)

    # --- fitting and the gate ----------------------------------------------------

    def _fit(self, data: _Data) -> dict[str, tuple[RatingModel, Metrics]]:
        """Fit every candidate the data allows; held-out metrics of each (blocking)."""
        train, hold = ~data.holdout, data.holdout
        s = self.settings
        X = np.hstack([data.classical, data.structure])
        out: dict[str, tuple[RatingModel, Metrics]] = {}
        model = fit_classical(X[train], data.y[train], resamples=s.ensemble_resamples)
        out["classical"] = (model, evaluate(data.y[hold], *model.predict(X[hold])))
        if data.clip is not None:
            Xc = np.hstack([X, data.clip])
            model = fit_mlp(
                Xc[train], data.y[train], resamples=s.ensemble_resamples, epochs=s.mlp_epochs
            )
            out["classical+clip"] = (model, evaluate(data.y[hold], *model.predict(Xc[hold])))
        return out

    async def _incumbent_metrics(
        self, session: AsyncSession, data: _Data
    ) -> tuple[ModelVersion | None, Metrics | None]:
        active = await store.get_active_model(session)
        if active is None:
            return None, None
        try:
            if active.feature_version != self.ctx.feature_version(active.feature_set):
                return active, None  # its features can't be computed here any more
            model = await asyncio.to_thread(self.registry.load, active)
        except Exception as exc:
            log.warning("active model %s cannot be evaluated: %s", active.version, exc)
            return active, None
        hold = data.holdout
        X = np.hstack([data.classical, data.structure])
        if active.feature_set == "classical+clip":
            if data.clip is None:
                return active, None
            X = np.hstack([X, data.clip])
        mean, std = await asyncio.to_thread(model.predict, X[hold])
        return active, evaluate(data.y[hold], mean, std)

    async def _gate_and_record(
        self,
        session: AsyncSession,
        data: _Data,
        fitted: dict[str, tuple[RatingModel, Metrics]],
        trigger: str,
    ) -> TrainOutcome:
        await store.lock_registry(session)  # before reading the incumbent and the names
        feature_set = min(fitted, key=lambda k: fitted[k][1].mae)
        model, metrics = fitted[feature_set]
        hold = data.holdout
        y_train_mean = float(data.y[~hold].mean())
        constant = evaluate(
            data.y[hold], np.full(int(hold.sum()), y_train_mean), np.full(int(hold.sum()), 1.0)
        )
        incumbent, incumbent_metrics = await self._incumbent_metrics(session, data)
        reasons = []
        validated = metrics.mae < constant.mae
        reasons.append(
            f"held-out MAE {metrics.mae:.3f} vs {constant.mae:.3f} for the constant "
            f"{y_train_mean:.2f}"
        )
        if incumbent is not None and incumbent_metrics is not None:
            validated = validated and metrics.mae < incumbent_metrics.mae
            reasons.append(f"vs {incumbent_metrics.mae:.3f} for active {incumbent.version}")
        elif incumbent is not None:
            reasons.append(f"active {incumbent.version} cannot be evaluated here")
        verdict = "passed the gate" if validated else "rejected: did not beat"
        reason = f"{verdict} ({'; '.join(reasons)})"
        version = await store.next_version_name(session)
        key, digest = await asyncio.to_thread(self.registry.save, version, model)
        row = ModelVersion(
            version=version,
            kind=model.kind,
            feature_set=feature_set,
            feature_version=self.ctx.feature_version(feature_set),
            n_train=int((~hold).sum()),
            n_holdout=int(hold.sum()),
            metrics=metrics.as_dict(),
            baseline={
                "constant": constant.as_dict(),
                "incumbent": incumbent.version if incumbent else None,
                "incumbent_metrics": incumbent_metrics.as_dict() if incumbent_metrics else None,
                "candidates": {k: m.as_dict() for k, (_, m) in fitted.items()},
            },
            validated=validated,
            status="rejected" if not validated else "inactive",
            reason=reason,
            trigger=trigger,
            blob_key=key,
            blob_sha256=digest,
            trained_through_id=data.through_id,
        )
        await store.add_model(session, row)
        if validated:
            await store.activate(session, version)
        log.info("model %s trained (%s, %s): %s", version, trigger, feature_set, reason)
        return TrainOutcome(
            version=version,
            activated=validated,
            validated=validated,
            reason=reason,
            kind=model.kind,
            feature_set=feature_set,
            n_train=row.n_train,
            n_holdout=row.n_holdout,
            metrics=metrics.as_dict(),
            baseline=constant.as_dict(),
            incumbent=incumbent.version if incumbent else None,
            candidates={k: m.as_dict() for k, (_, m) in fitted.items()},
        )
