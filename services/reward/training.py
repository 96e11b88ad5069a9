"""When a model is trained, off the request path, and when it becomes active.

What is learnt and how it is scored is decided in :mod:`services.reward.learning`
(held-out split by render, per-image targets without trainer bias, the ensemble and
its calibration, held-out metrics); whether the result goes live in
:mod:`services.reward.gate`. This module runs trainings:

* **Runs.** ``POST /ml/train`` calls :meth:`Trainer.request`, which records a run
  (``reward_training_runs``, status ``queued``) and starts it as a background task;
  the caller gets the run id at once (202). If a run is already queued or running
  (on any replica, heartbeat fresher than ``REWARD_TRAIN_STALE_SECONDS``), that run
  is returned instead of starting another. ``GET /ml/train/{id}`` reads the row:
  stage (``queued → loading → fitting → validating → recording → done``), progress
  0–1, and at the end the version, its figures and the gate's decision, or the
  error.
* **One at a time.** Within a process an asyncio lock; across replicas the
  session-level PostgreSQL advisory lock :data:`store.TRAINING_LOCK`, taken on a
  dedicated connection for the whole run. A replica that cannot take it marks its
  run ``skipped``. Writing the version still takes the transaction-level
  :data:`store.REGISTRY_LOCK`, so names never collide even if a stale run resumes.
* **Automatic retraining.** Every stored observation calls :meth:`Trainer.notify`,
  which requests a run (trigger ``auto``) when at least ``REWARD_RETRAIN_EVERY``
  observations arrived after the newest one any version was trained on.

Fitting runs in a worker thread, so the service keeps answering while it trains.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.common.blobs import BlobStore
from services.common.catalogue import Sentence
from services.common.db import utcnow
from services.common.errors import AfinadorError, BlobNotFound
from services.reward import store
from services.reward.errors import REWARD, NotEnoughData
from services.reward.extraction import FeatureContext, decode_rgb, image_key
from services.reward.gate import GateDecision, HeldOut, decide, paired_tolerances
from services.reward.learning import (
    FitOptions,
    TrainingTable,
    fit_candidates,
    holdout_mask,
    predict_rows,
    score,
)
from services.reward.metrics import Metrics
from services.reward.model import RatingModel
from services.reward.models import ModelVersion, Observation, TrainingRun
from services.reward.registry import ModelRegistry
from services.reward.settings import RewardSettings
from services.reward.structure import NO_ORIGINAL, STRUCTURE_DIMS

log = logging.getLogger(__name__)

STAGES = ("queued", "loading", "fitting", "validating", "recording", "done")


def render_key(obs: Observation) -> str:
    """The render an observation's image was made from (its held-out group)."""
    if obs.original_sha256:
        return f"original:{obs.original_sha256}"
    return f"experiment:{obs.experiment_id}"


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
    incumbent_metrics: dict[str, Any] | None = None
    gate: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "activated": self.activated,
            "validated": self.validated,
            "reason": self.reason,
            "kind": self.kind,
            "feature_set": self.feature_set,
            "n_train": self.n_train,
            "n_holdout": self.n_holdout,
            "metrics": self.metrics,
            "baseline": self.baseline,
            "incumbent": self.incumbent,
            "incumbent_metrics": self.incumbent_metrics,
            "candidates": self.candidates,
            "gate": self.gate,
        }


@dataclass
class _Data:
    table: TrainingTable
    holdout: np.ndarray  # bool, per rating
    through_id: int


class Trainer:
    """Runs trainings in the background, applies the gate, schedules retraining."""

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
        self._request_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._progress: dict[str, tuple[str, float]] = {}
        self.last_error: str | None = None

    @property
    def running(self) -> bool:
        return self._lock.locked()

    def progress_of(self, run_id: str) -> tuple[str, float] | None:
        """Live (stage, progress) of a run executing in this process."""
        return self._progress.get(run_id)

    # --- scheduling -------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def notify(self) -> None:
        """Called after an observation is committed: maybe request a background training."""
        if self.settings.auto_retrain:
            self._spawn(self._auto())

    async def wait_idle(self) -> None:
        """Wait until no training (or check for one) is scheduled (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.wait_idle()

    async def _auto(self) -> None:
        if self.running:
            return
        async with self.sessions() as session:
            since = await store.last_trained_through(session)
            new = await store.count_observations_after(session, since)
        if new >= self.settings.retrain_every:
            await self.request(trigger="auto")

    async def request(self, trigger: str = "manual") -> tuple[TrainingRun, bool]:
        """Start a training in the background, or return the one already under way.

        Returns the run and whether it already existed.
        """
        async with self._request_lock:
            async with self.sessions() as session, session.begin():
                fresh_after = utcnow() - timedelta(seconds=self.settings.train_stale_seconds)
                live = await store.live_run(session, fresh_after)
                if live is not None:
                    return live, True
                now = utcnow()
                run = TrainingRun(
                    id=f"tr-{secrets.token_hex(8)}",
                    trigger=trigger,
                    status="queued",
                    stage="queued",
                    progress=0.0,
                    created_at=now,
                    heartbeat_at=now,
                )
                await store.add_run(session, run)
            self._progress[run.id] = ("queued", 0.0)
            self._spawn(self._execute(run.id, trigger))
            return run, False

    async def _set(self, run_id: str | None, stage: str, progress: float, **values: Any) -> None:
        if run_id is None:
            return
        self._progress[run_id] = (stage, progress)
        async with self.sessions() as session, session.begin():
            await store.update_run(session, run_id, stage=stage, progress=progress, **values)

    async def _execute(self, run_id: str, trigger: str) -> None:
        engine: AsyncEngine = self.sessions.kw["bind"]
        try:
            async with self._lock, engine.connect() as conn:
                got = await store.try_training_lock(conn)
                await conn.commit()
                if not got:
                    await self._set(
                        run_id,
                        "done",
                        1.0,
                        status="skipped",
                        finished_at=utcnow(),
                        error=_error_dict(REWARD.sentence("training_busy")),
                    )
                    return
                try:
                    await self._set(run_id, "loading", 0.02, status="running", started_at=utcnow())
                    outcome = await self.train(trigger, run_id=run_id)
                    await self._set(
                        run_id,
                        "done",
                        1.0,
                        status="succeeded",
                        finished_at=utcnow(),
                        version=outcome.version,
                        result=outcome.as_dict(),
                    )
                    self.last_error = None
                    log.info("training %s: %s (%s)", run_id, outcome.version, outcome.reason)
                finally:
                    await store.release_training_lock(conn)
                    await conn.commit()
        except AfinadorError as exc:
            log.info("training %s did not run: %s", run_id, exc)
            self.last_error = exc.message_en
            await self._set(
                run_id, "done", 1.0, status="failed", finished_at=utcnow(), error=exc.to_dict()
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a background failure must be visible, not lost
            log.exception("training %s failed", run_id)
            self.last_error = f"{type(exc).__name__}: {exc}"
            await self._set(
                run_id,
                "done",
                1.0,
                status="failed",
                finished_at=utcnow(),
                error=_error_dict(REWARD.sentence("training_failed", kind=type(exc).__name__,
                                                   problem=str(exc))),
            )
        finally:
            self._progress.pop(run_id, None)

    # --- one training -----------------------------------------------------------------

    async def train(self, trigger: str = "manual", run_id: str | None = None) -> TrainOutcome:
        """Train a version on the stored observations and apply the gate (blocking the
        caller, not the event loop). :meth:`request` runs this in the background.

        Raises:
            NotEnoughData: fewer than ``min_train`` training or ``min_holdout``
                held-out images.
        """
        async with self.sessions() as session, session.begin():
            data = await self._load(session)
        s = self.settings
        hold = data.holdout
        n_train = len({data.table.images[k] for k in np.flatnonzero(~hold)})
        n_hold = len({data.table.images[k] for k in np.flatnonzero(hold)})
        if n_train < s.min_train or n_hold < s.min_holdout:
            raise NotEnoughData.because(min_train=s.min_train, min_holdout=s.min_holdout,
                                        n_train=n_train, n_holdout=n_hold,
                                        details={"n_train": n_train, "n_holdout": n_hold})
        await self._set(run_id, "fitting", 0.05)
        options = FitOptions(
            resamples=s.ensemble_resamples,
            calibration=s.calibration,
            mlp_epochs=s.mlp_epochs,
            pairwise=s.ranking_weight,
        )

        def report(share: float) -> None:
            if run_id is not None:
                self._progress[run_id] = ("fitting", 0.05 + 0.8 * share)

        models = await asyncio.to_thread(fit_candidates, data.table, ~hold, options, report)
        await self._set(run_id, "validating", 0.87)
        fitted = await asyncio.to_thread(self._score, data, models)
        await self._set(run_id, "recording", 0.93)
        async with self.sessions() as session, session.begin():
            return await self._gate_and_record(session, data, fitted, trigger, n_train, n_hold)

    # --- data -------------------------------------------------------------------------

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
                cached[obs.image_sha256] = store.CacheEntry(0, 0, values)
            keep.append(obs)
            classical.append(values)
        structure = [
            list(o.structure)
            if o.structure and len(o.structure) == STRUCTURE_DIMS
            else list(NO_ORIGINAL)
            for o in keep
        ]
        clip = await self._clip_matrix(session, keep) if ctx.clip is not None else None
        images = [o.image_sha256 for o in keep]
        groups = [render_key(o) for o in keep]
        X = np.hstack(
            [
                np.array(classical, dtype=np.float64).reshape(len(keep), dims),
                np.array(structure, dtype=np.float64).reshape(len(keep), STRUCTURE_DIMS),
            ]
        )
        table = TrainingTable(
            images=images,
            groups=groups,
            raters=[o.rater for o in keep],
            y=np.array([o.rating for o in keep], dtype=np.float64),
            classical=X,
            clip=clip,
        )
        return _Data(
            table=table,
            holdout=holdout_mask(images, groups, self.settings.holdout_fraction),
            through_id=max((o.id for o in rows), default=0),
        )

    async def _image(self, sha: str) -> np.ndarray | None:
        try:
            data = await self.images.get(image_key(sha))
        except BlobNotFound:
            return None
        return await asyncio.to_thread(decode_rgb, data, self.ctx.limits)

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

    # --- scoring and the gate ---------------------------------------------------------

    def _score(
        self, data: _Data, models: dict[str, RatingModel]
    ) -> dict[str, tuple[RatingModel, Metrics, np.ndarray]]:
        """Held-out metrics and predictions of every candidate (blocking)."""
        out = {}
        for feature_set, model in models.items():
            mean, std = predict_rows(model, data.table, data.holdout)
            out[feature_set] = (model, score(data.table, data.holdout, mean, std), mean)
        return out

    async def _incumbent(
        self, session: AsyncSession, data: _Data
    ) -> tuple[ModelVersion | None, tuple[np.ndarray, np.ndarray] | None, str | None]:
        active = await store.get_active_model(session)
        if active is None:
            return None, None, None
        try:
            if active.feature_version != self.ctx.feature_version(active.feature_set):
                return active, None, f"active {active.version} uses features no longer computed"
            model = await self.registry.load(active)
            if active.feature_set == "classical+clip" and data.table.clip is None:
                return active, None, f"active {active.version} needs CLIP embeddings"
            mean, std = await asyncio.to_thread(predict_rows, model, data.table, data.holdout)
        except Exception as exc:
            log.warning("active model %s cannot be evaluated: %s", active.version, exc)
            return active, None, f"active {active.version} cannot be evaluated here"
        return active, (mean, std), None

    async def _gate_and_record(
        self,
        session: AsyncSession,
        data: _Data,
        fitted: dict[str, tuple[RatingModel, Metrics, np.ndarray]],
        trigger: str,
        n_train: int,
        n_hold: int,
    ) -> TrainOutcome:
        await store.lock_registry(session)  # before reading the incumbent and the names
        s = self.settings
        feature_set = max(fitted, key=lambda k: (fitted[k][1].srcc, -fitted[k][1].mae))
        model, metrics, cand_pred = fitted[feature_set]
        table, hold = data.table, data.holdout
        rows = np.flatnonzero(hold)
        y_train_mean = float(table.y[~hold].mean())
        constant = score(table, hold, np.full(len(rows), y_train_mean), np.ones(len(rows)))
        incumbent, inc_pred, note = await self._incumbent(session, data)
        held = HeldOut(
            y=table.y[rows],
            groups=[table.groups[k] for k in rows],
            raters=[table.raters[k] for k in rows],
            images=[table.images[k] for k in rows],
        )
        inc_metrics = score(table, hold, *inc_pred) if inc_pred is not None else None
        tolerances = None
        if inc_pred is not None:
            tolerances = await asyncio.to_thread(
                paired_tolerances,
                held,
                cand_pred,
                inc_pred[0],
                z=s.gate_z,
                resamples=s.gate_resamples,
            )
        decision: GateDecision = decide(
            metrics.as_dict(),
            constant.as_dict(),
            min_srcc=s.min_srcc,
            active=inc_metrics.as_dict() if inc_metrics else None,
            active_name=incumbent.version if incumbent else None,
            tolerances=tolerances,
            active_note=note,
        )
        validated = decision.passed
        reason = decision.reason
        version = await store.next_version_name(session)
        key, digest = await self.registry.save(version, model)
        baseline = {
            "constant": constant.as_dict(),
            "incumbent": incumbent.version if incumbent else None,
            "incumbent_metrics": inc_metrics.as_dict() if inc_metrics else None,
            "candidates": {k: m.as_dict() for k, (_, m, _) in fitted.items()},
            "gate": decision.as_dict(),
            "tolerances": tolerances,
            "trainer_biases": model.info.get("trainer_biases", {}),
            "calibration": model.info.get("calibration"),
            "n_images_train": n_train,
            "n_images_holdout": n_hold,
        }
        row = ModelVersion(
            version=version,
            kind=model.kind,
            feature_set=feature_set,
            feature_version=self.ctx.feature_version(feature_set),
            n_train=int((~hold).sum()),
            n_holdout=int(hold.sum()),
            metrics=metrics.as_dict(),
            baseline=baseline,
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
        await store.audit(
            session,
            "gate_passed" if validated else "gate_rejected",
            actor=f"system:{trigger}",
            reason=reason,
            version=version,
            previous=incumbent.version if incumbent else None,
            details={
                "metrics": metrics.as_dict(),
                "incumbent_metrics": baseline["incumbent_metrics"],
                "gate": baseline["gate"],
                "tolerances": tolerances,
            },
        )
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
            candidates=baseline["candidates"],
            incumbent_metrics=baseline["incumbent_metrics"],
            gate=decision.as_dict(),
        )


def _error_dict(sentence: Sentence) -> dict[str, Any]:
    """A run's error, shaped like an error answer."""
    return {"code": sentence.key, "key": sentence.key, "message": sentence.es,
            "message_en": sentence.en}
