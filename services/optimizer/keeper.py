"""The service's latest fitted model: refitted off the request path, one fit at a
time, and shared by every reader.

The model is a pure function of the observation set (:mod:`services.optimizer.fitting`),
and a full GP fit takes from a fraction of a second to seconds. Fitting it inside
requests made every read after a new rating pay a fit, and under load the reads
queued behind each other while holding database connections. Decisions made here:

* **Fits run in one background worker thread**, never in a request: at most one fit
  at a time, whatever the number of readers or ratings. The service's fit function
  (:class:`services.optimizer.fitting.ProcessFitter`) runs the hyperparameter search
  in a child process, so a fit does not hold the GIL the event loop needs.
* **Single flight, newest wins.** A reader or a new rating *requests* the model of an
  observation set. If the latest model already covers it (or a newer one), that
  model serves; if a fit of it (or of a newer set) is running or queued, the reader
  shares that fit; otherwise it is queued, replacing any older queued set, whose
  readers then receive the newer model. Observations are never deleted, so the
  number stored orders the sets: a model of ``n`` observations serves every reader
  that loaded ``n`` or fewer.
* **Writers never wait.** ``update_model`` stores the ratings, commits, and calls
  :meth:`ModelKeeper.changed`, which schedules a reload-and-fit and returns at once.
* **Readers wait a bounded time, then use what there is.** A reader waits at most
  ``wait`` seconds for the fit of its observations (suggestions
  ``OPTIMIZER_FIT_WAIT_SECONDS``, 1 s; status ``OPTIMIZER_STATUS_FIT_WAIT_SECONDS``,
  0), then answers from the latest model and says how old it is and how many
  observations it has (``state`` is ``fresh``, ``stale``, ``fitting`` or ``none``).
* **A failed fit is not retried for the same observations** (it is logged; the
  previous model keeps serving); the next rating tries again.
* After each fit, ``on_fitted`` runs (the service stores the recommendation
  history there) before the next fit starts.

Everything but the fit itself runs on the event loop's thread, so the bookkeeping
needs no locks. The clock, the fit function and the hook are parameters, so tests
drive the keeper with events instead of waiting on the wall clock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from services.common.db import utcnow
from services.optimizer.config import GPConfig
from services.optimizer.fitting import FittedModel, fit_model, fit_window
from services.optimizer.space import Observation

log = logging.getLogger(__name__)

ModelState = Literal["none", "fitting", "fresh", "stale"]
FitFunction = Callable[[Sequence[Observation], GPConfig], FittedModel]


@dataclass(frozen=True)
class Fitted:
    """A fitted model and when it was made.

    Attributes:
        model: the model.
        observations_seen: how many observations were stored when it was requested
            (the model is conditioned on the most recent ``max_fit_observations``).
        fitted_at: wall-clock time the fit finished (UTC), for people.
        finished: the keeper's clock when the fit finished, for ages.
        fit_seconds: how long the fit took, by the keeper's clock.
    """

    model: FittedModel
    observations_seen: int
    fitted_at: datetime
    finished: float
    fit_seconds: float


@dataclass(frozen=True)
class ModelView:
    """What one reader gets: the model to use, if any, and how it relates to the
    observations the reader loaded."""

    fitted: Fitted | None
    state: ModelState
    age_seconds: float | None

    @property
    def model(self) -> FittedModel | None:
        return self.fitted.model if self.fitted else None


@dataclass
class _Job:
    window: list[Observation]
    observations_seen: int
    done: asyncio.Future[Fitted | None]


class ModelKeeper:
    """Holds the latest model and fits new ones in the background (see the module
    docstring).

    Args:
        config: the model knobs.
        load: loads every stored observation, oldest first (used by :meth:`changed`).
        fit: fits a model to a window of observations (default :func:`fit_model`).
        clock: monotonic seconds, for fit durations and model ages.
        on_fitted: awaited after each successful fit, before the next one starts.

    All methods must be called from the event loop that runs the service.
    """

    def __init__(
        self,
        config: GPConfig,
        *,
        load: Callable[[], Awaitable[list[Observation]]] | None = None,
        fit: FitFunction = fit_model,
        clock: Callable[[], float] = time.monotonic,
        on_fitted: Callable[[Fitted], Awaitable[None]] | None = None,
    ) -> None:
        self.config = config
        self.load = load
        self.on_fitted = on_fitted
        self._fit = fit
        self._clock = clock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gp-fit")
        self.latest: Fitted | None = None
        self.fits_started = 0
        self.fits_completed = 0
        self.fits_failed = 0
        self._running: _Job | None = None
        self._queued: _Job | None = None
        self._failed_seen = -1
        self._worker: asyncio.Task[None] | None = None
        self._reloader: asyncio.Task[None] | None = None
        self._dirty = False

    @property
    def executor(self) -> ThreadPoolExecutor:
        """The fit thread; other heavy work tied to a fit may run there too."""
        return self._executor

    @property
    def queued_observations(self) -> int | None:
        """How many observations the fit waiting its turn will cover (None: none waits)."""
        return self._queued.observations_seen if self._queued is not None else None

    @property
    def fitting(self) -> bool:
        """Whether a fit is running or queued."""
        return self._running is not None or self._queued is not None

    def request(self, observations: Sequence[Observation]) -> asyncio.Future[Fitted | None]:
        """A future of the model of ``observations`` (every stored one, oldest first),
        or of a newer one; resolved with ``None`` when the fit fails.

        Never fits in the caller: at most it queues a fit.
        """
        loop = asyncio.get_running_loop()
        seen = len(observations)
        latest = self.latest
        covered = latest is not None and latest.observations_seen >= seen
        if covered or seen < self.config.n_initial_points or seen <= self._failed_seen:
            ready: asyncio.Future[Fitted | None] = loop.create_future()
            ready.set_result(latest if covered else None)
            return ready
        for job in (self._running, self._queued):
            if job is not None and job.observations_seen >= seen:
                return job.done
        # The window is a slice; the model's key is hashed in the fit, off the loop.
        window = fit_window(observations, self.config)
        if self._queued is not None:
            # Newest wins: the older queued set's readers will get this model.
            self._queued = _Job(window, seen, self._queued.done)
        else:
            self._queued = _Job(window, seen, loop.create_future())
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._work(), name="gp-fit-worker")
        return self._queued.done

    async def view(self, observations: Sequence[Observation], wait: float) -> ModelView:
        """The model a reader of ``observations`` should use: the fit of them if it
        finishes within ``wait`` seconds, else the latest model (or none)."""
        pending = self.request(observations)
        if not pending.done() and wait > 0:
            await asyncio.wait([pending], timeout=wait)
        fitted = pending.result() if pending.done() else None
        if fitted is None:
            fitted = self.latest
        if fitted is None:
            return ModelView(None, "fitting" if self.fitting else "none", None)
        fresh = fitted.observations_seen >= len(observations)
        age = round(max(self._clock() - fitted.finished, 0.0), 3)
        return ModelView(fitted, "fresh" if fresh else "stale", age)

    def changed(self) -> None:
        """New observations were committed: reload them and queue a fit, in the
        background (returns at once)."""
        if self.load is None:
            return
        self._dirty = True
        if self._reloader is None or self._reloader.done():
            loop = asyncio.get_running_loop()
            self._reloader = loop.create_task(self._reload(), name="gp-fit-reload")

    async def _reload(self) -> None:
        assert self.load is not None
        while self._dirty:
            self._dirty = False
            try:
                observations = await self.load()
            except Exception:
                log.exception("could not load the observations to refit the model")
                return
            self.request(observations)

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queued is not None:
            job, self._queued = self._queued, None
            self._running = job
            self.fits_started += 1
            start = self._clock()
            fitted: Fitted | None = None
            try:
                model = await loop.run_in_executor(self._executor, self._fit, job.window,
                                                   self.config)
            except asyncio.CancelledError:
                self._running = None
                if not job.done.done():
                    job.done.set_result(None)
                raise
            except Exception:
                self.fits_failed += 1
                self._failed_seen = job.observations_seen
                log.exception("GP fit on %d observations failed; the previous model keeps "
                              "serving", len(job.window))
            else:
                end = self._clock()
                fitted = Fitted(model, job.observations_seen, utcnow(), end,
                                round(end - start, 4))
                self.latest = fitted
                self.fits_completed += 1
            finally:
                self._running = None
            if not job.done.done():
                job.done.set_result(fitted)
            if fitted is not None and self.on_fitted is not None:
                try:
                    await self.on_fitted(fitted)
                except Exception:
                    log.exception("after-fit hook failed (the model is in use regardless)")

    async def idle(self) -> None:
        """Return once no reload or fit is pending (for tests and orderly shutdowns)."""
        while True:
            busy = [t for t in (self._reloader, self._worker) if t is not None and not t.done()]
            if not busy:
                return
            await asyncio.wait(busy)

    async def close(self) -> None:
        """Stop background work (the fit in progress finishes in its thread unobserved)."""
        for task in (self._reloader, self._worker):
            if task is not None and not task.done():
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        for job in (self._running, self._queued):
            if job is not None and not job.done.done():
                job.done.set_result(None)
        self._running = self._queued = None
        self._executor.shutdown(wait=False, cancel_futures=True)
