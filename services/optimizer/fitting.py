"""Fitting the rating-aware GP to stored observations: one model per observation set.

Decisions made here:

* **One model per observation set.** The GP is fitted on every stored rating
  (all providers, modes and prompt versions: they inform each other through the
  kernel's correlations), at most the ``max_fit_observations`` most recent
  (:func:`fit_window`). Hyperparameters are fitted on the ``hyper_fit_observations``
  most recent of those (the marginal likelihood is cubic in their number and
  stabilises long before), then the posterior is conditioned on the whole window.
* **A model is a pure function of its key** (:func:`services.optimizer.encoding.model_key`):
  fits start from the prior's centre, and random candidates and posterior samples
  are seeded from the key, so replicas and restarts agree, and a cache is an
  optimisation, never the source of truth.
* **Analyses are memoised on the model** (per providers and context), so every
  reader of one model shares one evaluation of the candidates.

The service keeps its latest model with :class:`services.optimizer.keeper.ModelKeeper`
(fits off the request path, one at a time); in-process callers (the benchmark, the
tests) use :class:`ModelCache` and :func:`model_for`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from services.optimizer import gp
from services.optimizer.analysis import Analysis, analyse
from services.optimizer.config import GPConfig
from services.optimizer.encoding import Vocabulary, encode, model_key
from services.optimizer.space import Context, Observation, SearchSpace

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class FittedModel:
    """The GP posterior for one observation set, plus memoised analyses.

    Thread-safe: the memoised queries take the model's own (re-entrant) lock, so a
    memoised computation may use the memoised analyses.
    """

    key: str
    config: GPConfig
    observations: list[Observation]
    posterior: gp.Posterior
    vocabulary: Vocabulary
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _analyses: dict[tuple[tuple[str, ...], Context], Analysis] = field(default_factory=dict)
    _memo: dict[Any, Any] = field(default_factory=dict)

    @property
    def n_observations(self) -> int:
        return len(self.observations)

    def default_context(self) -> Context:
        """The context of the most recent observation (what trainers use now)."""
        last = self.observations[-1]
        return Context(last.mode, last.prompt_version)

    def seed(self, *parts: Any) -> int:
        text = json.dumps([self.key, *parts], default=str)
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")

    def analyse(self, space: SearchSpace, context: Context) -> Analysis:
        """Posterior summaries for ``space``'s providers in ``context`` (memoised)."""
        memo_key = (space.providers, context)
        with self._lock:
            if memo_key not in self._analyses:
                rng = np.random.default_rng(self.seed("candidates", space.providers, context))
                self._analyses[memo_key] = analyse(
                    self.posterior, self.vocabulary, self.config, space.providers, context, rng
                )
            return self._analyses[memo_key]

    def memo(self, key: Any, compute: Callable[[], T]) -> T:
        """Memoise ``compute()`` under ``key`` for the life of this model."""
        with self._lock:
            if key not in self._memo:
                self._memo[key] = compute()
            value: T = self._memo[key]
            return value

    def trainer_biases(self) -> dict[str, float]:
        """Estimated strictness of each trainer (stars; negative = stricter)."""
        raters = self.vocabulary.raters
        biases = self.posterior.trainer_bias(list(raters.values()))
        return {str(r): round(biases[c], 4) for r, c in raters.items() if r is not None}


def fit_window(observations: Sequence[Observation], config: GPConfig) -> list[Observation]:
    """The observations a model is conditioned on: the most recent
    ``max_fit_observations`` (``observations`` come oldest first)."""
    return list(observations[-config.max_fit_observations :])


HyperparameterSearch = Callable[[gp.Design, np.ndarray, int], np.ndarray]


def fit_model(
    observations: Sequence[Observation],
    config: GPConfig,
    search: HyperparameterSearch = gp.fit_hyperparameters,
) -> FittedModel:
    """Fit the hyperparameters and condition the GP on ``observations`` (the window).

    ``search`` finds the hyperparameters (default: in this thread); see
    :class:`ProcessFitter` for running it in a child process.

    Raises:
        ValueError: no observations.
    """
    if not observations:
        raise ValueError("cannot fit a model without observations")
    observations = list(observations)
    design, ratings, vocabulary = encode(observations)
    k = min(len(observations), config.hyper_fit_observations)
    recent = np.arange(len(observations) - k, len(observations))
    t = search(design.take(recent), ratings[recent], config.hyper_max_iter)
    posterior = gp.Posterior(design, ratings, t)
    key = model_key(observations, config)
    log.info("fitted GP on %d observations: %s", len(observations), posterior.describe())
    return FittedModel(key, config, observations, posterior, vocabulary)


class ProcessFitter:
    """:func:`fit_model` with the hyperparameter search in a child process.

    The search (L-BFGS over the marginal likelihood, hundreds of small matrix
    operations) holds Python's GIL most of the time; in a thread of the service it
    slowed every request on the event loop, most of all on a busy machine. In a
    child process it cannot: the service's thread only waits for the answer, then
    conditions the posterior (one Cholesky factorisation). The result is the same
    number: the search is a pure function of its inputs.

    One child, started on first use with ``spawn`` (never ``fork``: the service has
    threads), reused for every fit; :meth:`close` stops it, and it exits by itself
    within a second if the service dies (``kill -9``, a crash), so none is orphaned.
    """

    def __init__(self) -> None:
        self._pool: Any = None
        self._lock = threading.Lock()

    def _search(self, design: gp.Design, ratings: np.ndarray, max_iter: int) -> np.ndarray:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=exit_with_parent,
                    initargs=(os.getpid(),),
                )
            pool = self._pool
        t: np.ndarray = pool.submit(gp.fit_hyperparameters, design, ratings, max_iter).result()
        return t

    def __call__(self, observations: Sequence[Observation], config: GPConfig) -> FittedModel:
        return fit_model(observations, config, self._search)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def exit_with_parent(parent: int, every_s: float = 1.0) -> None:
    """In a child process: exit as soon as process ``parent`` is gone (checked every
    ``every_s`` seconds by a daemon thread)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_s)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def has_enough_data(
    space: SearchSpace, observations: Sequence[Observation], config: GPConfig
) -> bool:
    """Whether ``space``'s providers have the ``n_initial_points`` observations the
    model needs before it is used (until then: the space-filling design)."""
    return sum(1 for o in observations if space.contains(o)) >= config.n_initial_points


class ModelCache:
    """Fitted models keyed by :func:`model_key`, least recently used evicted first,
    for in-process callers (the service itself uses ``ModelKeeper``).

    Thread-safe; fits run under the cache lock, so concurrent requests for the
    same observation set fit once.
    """

    def __init__(self, maxsize: int = 4) -> None:
        self.maxsize = maxsize
        self.hits = 0
        self.misses = 0
        self._models: OrderedDict[str, FittedModel] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, observations: Sequence[Observation], config: GPConfig) -> FittedModel:
        """The model for exactly these observations (the window), fitting it if needed."""
        key = model_key(observations, config)
        with self._lock:
            model = self._models.get(key)
            if model is not None:
                self.hits += 1
                self._models.move_to_end(key)
                return model
            self.misses += 1
            model = fit_model(observations, config)
            self._models[key] = model
            while len(self._models) > self.maxsize:
                self._models.popitem(last=False)
            return model


def model_for(
    space: SearchSpace,
    observations: Sequence[Observation],
    config: GPConfig,
    cache: ModelCache,
) -> FittedModel | None:
    """The fitted model once ``space``'s providers have ``n_initial_points`` observations."""
    if not has_enough_data(space, observations, config):
        return None
    return cache.get(fit_window(observations, config), config)
