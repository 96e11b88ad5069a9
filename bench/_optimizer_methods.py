"""The methods ``bench/optimizer.py`` compares, behind one small interface.

Each method proposes the two variants of a round (``ask``), is told their ratings
(``tell``), and names the parameters it would recommend now (``recommend``). Points
are ``(provider, u)`` with ``u`` in the unit cube.

* ``random``: uniform provider and parameters; recommends the best-rated sample.
* ``seeds``: the seeds' loop (seed 002/004): one scikit-optimize ``Optimizer``
  (GP + EI, 5 random initial points, ``random_state``) over (api, strength, guidance,
  structure); ``ask(n_points=2)``, option A is always Leonardo and option B always
  Stable Diffusion, each rating is told as an independent measurement
  ``tell(x, -rating)``; recommends the best-rated sample, as the seeds' status does.
  ``fast=True`` (the benchmark's default, for time) drops GP restarts and maximises
  EI on random points.
* ``tpe``: Optuna's TPE sampler, one trial per variant, maximising the rating;
  recommends the best trial.
* ``ours``: the optimizer service through its real HTTP API (``OursHTTP``), or the
  same domain code in-process (``OursInProcess``, used for the noise-free limit,
  which needs real-valued ratings the API rightly refuses).
"""

from __future__ import annotations

import random
import warnings
from typing import Any, Protocol

import numpy as np

from bench._optimizer_sim import PROVIDERS
from services.common.parameter_space import from_native
from services.optimizer.space import Context, Observation, SearchSpace, from_unit, to_unit

Point = tuple[str, np.ndarray]
MODE, PROMPT_VERSION = "structure", "1.0.0"


class Method(Protocol):
    name: str

    def ask(self, t: int) -> list[Point]: ...

    def tell(self, t: int, points: list[Point], ratings: list[float], rater: str) -> None: ...

    def recommend(self) -> Point: ...


class BestObserved:
    """Recommend the best-rated point seen (the earliest among ties)."""

    def __init__(self) -> None:
        self.best: tuple[float, Point] | None = None

    def observe(self, points: list[Point], ratings: list[float]) -> None:
        for point, rating in zip(points, ratings, strict=True):
            if self.best is None or rating > self.best[0]:
                self.best = (rating, point)

    def recommend(self) -> Point:
        assert self.best is not None
        return self.best[1]


class RandomSearch(BestObserved):
    name = "random"

    def __init__(self, seed: int) -> None:
        super().__init__()
        # A stream of its own: make_world draws from [seed, surface index].
        self.rng = np.random.default_rng([seed, 7919])

    def ask(self, t: int) -> list[Point]:
        return [(str(self.rng.choice(PROVIDERS)), self.rng.uniform(size=3)) for _ in range(2)]

    def tell(self, t: int, points: list[Point], ratings: list[float], rater: str) -> None:
        self.observe(points, ratings)


class SeedsLoop(BestObserved):
    name = "seeds"

    def __init__(self, seed: int, n_points: int = 10000, fast: bool = False) -> None:
        from skopt import Optimizer
        from skopt.space import Categorical, Real
        from skopt.utils import cook_estimator

        super().__init__()
        space = [
            Categorical(list(PROVIDERS), name="api"),
            Real(0.0, 1.0, name="strength"),
            Real(0.0, 1.0, name="guidance"),
            Real(0.0, 1.0, name="structure"),
        ]
        # ``fast``: no GP hyperparameter restarts and EI maximised on ``n_points``
        # random points instead of L-BFGS (skopt's defaults cost ~25 s per 50 rounds).
        estimator: Any = "GP"
        if fast:
            estimator = cook_estimator(
                "GP", space=space, random_state=seed, n_restarts_optimizer=0
            )
        self.opt = Optimizer(
            space,
            base_estimator=estimator,
            acq_func="EI",
            n_initial_points=5,
            random_state=seed,
            acq_optimizer="sampling" if fast else "auto",
            acq_optimizer_kwargs={"n_points": n_points},
        )

    def ask(self, t: int) -> list[Point]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            asked = self.opt.ask(n_points=2)
        # Option A is always Leonardo, option B always Stable Diffusion (seed 004, 2.2).
        return [(PROVIDERS[i], np.array(p[1:], dtype=float)) for i, p in enumerate(asked)]

    def tell(self, t: int, points: list[Point], ratings: list[float], rater: str) -> None:
        xs = [[provider, *map(float, u)] for provider, u in points]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Each rating told as an independent exact measurement (one fit for both).
            self.opt.tell(xs, [-float(r) for r in ratings])
        self.observe(points, ratings)


class TPE(BestObserved):
    name = "tpe"

    def __init__(self, seed: int) -> None:
        import optuna

        super().__init__()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.study = optuna.create_study(
            direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed)
        )
        self.pending: list[Any] = []

    def ask(self, t: int) -> list[Point]:
        self.pending = [self.study.ask() for _ in range(2)]
        out = []
        for trial in self.pending:
            provider = trial.suggest_categorical("api", list(PROVIDERS))
            u = [trial.suggest_float(d, 0.0, 1.0) for d in ("strength", "guidance", "structure")]
            out.append((str(provider), np.array(u)))
        return out

    def tell(self, t: int, points: list[Point], ratings: list[float], rater: str) -> None:
        for trial, rating in zip(self.pending, ratings, strict=True):
            self.study.tell(trial, float(rating))
        self.observe(points, ratings)


def _to_point(provider: str, values: dict[str, float]) -> Point:
    return provider, np.array(to_unit(values))


class OursInProcess:
    """The optimizer's domain code without HTTP (same model, same configuration)."""

    def __init__(self, seed: int, name: str = "ours", **config: Any) -> None:
        from services.optimizer.config import GPConfig
        from services.optimizer.fitting import ModelCache

        self.name = name
        self.config = GPConfig(random_state=seed, **config)
        self.cache = ModelCache()
        self.space = SearchSpace.for_providers(PROVIDERS)
        self.context = Context(MODE, PROMPT_VERSION)
        self.observations: list[Observation] = []

    def _model(self) -> Any:
        from services.optimizer.fitting import model_for

        return model_for(self.space, self.observations, self.config, self.cache)

    def ask(self, t: int) -> list[Point]:
        from services.optimizer.suggest import suggest

        batch = suggest(
            self.space, self.observations, 2, self.config, self._model(), self.context
        )
        return [_to_point(s.provider, s.values) for s in batch]

    def tell(self, t: int, points: list[Point], ratings: list[float], rater: str) -> None:
        self.observations.extend(
            Observation(
                provider,
                from_unit(u),
                rating,
                experiment_id=f"e{t}",
                image_id=f"img{t}",
                rater=rater,
                mode=MODE,
                prompt_version=PROMPT_VERSION,
            )
            for (provider, u), rating in zip(points, ratings, strict=True)
        )

    def recommend(self) -> Point:
        from services.optimizer.recommendation import recommend

        rec = recommend(self.space, self.observations, self._model(), self.context)
        assert rec is not None
        return _to_point(rec.provider, rec.values)


class OursHTTP:
    """The optimizer service over HTTP (``base_url`` of a fresh instance)."""

    name = "ours"

    def __init__(self, client: Any, seed: int) -> None:
        self.client = client
        self.seed = seed
        self.rng = random.Random(seed)
        self.last_status: dict[str, Any] = {}

    def ask(self, t: int) -> list[Point]:
        body = {
            "mode": MODE,
            "num_suggestions": 2,
            "providers": list(PROVIDERS),
            "prompt_version": PROMPT_VERSION,
        }
        answer = self.client.post("/ml/suggest_parameters", json=body)
        answer.raise_for_status()
        out = []
        for suggestion in answer.json()["suggestions"]:
            params = {k: v for k, v in suggestion.items() if k != "source"}
            out.append(_to_point(*from_native(params)))
        return out

    def tell(self, t: int, points: list[Point], ratings: list[float], rater: str) -> None:
        from services.common.parameter_space import to_native

        results = [
            {
                "rating_id": f"r{t}-{i}",
                "experiment_id": f"e{t}",
                "image_id": f"img{t}",
                "rater": rater,
                "parameters": to_native(provider, from_unit(u)),
                "rating": int(rating),
                "mode": MODE,
                "prompt_version": PROMPT_VERSION,
            }
            for i, ((provider, u), rating) in enumerate(zip(points, ratings, strict=True))
        ]
        answer = self.client.post("/ml/update_model", json={"results": results})
        answer.raise_for_status()

    def recommend(self) -> Point:
        answer = self.client.get("/ml/status", params={"providers": list(PROVIDERS)})
        answer.raise_for_status()
        self.last_status = answer.json()
        if self.last_status.get("best_parameters") is None:
            raise RuntimeError(f"no recommendation in /ml/status: {self.last_status}")
        return _to_point(*from_native(self.last_status["best_parameters"]))
