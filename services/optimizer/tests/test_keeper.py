"""The model keeper: fits off the request path, one at a time, shared by readers.

Driven with a gated fit (held until the test releases it) and a fake clock, so no
test waits on the wall clock.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from services.common.parameter_space import random_values
from services.optimizer.config import GPConfig
from services.optimizer.keeper import ModelKeeper
from services.optimizer.space import Observation
from services.optimizer.tests.fakes import DEADLINE_S, FakeClock, GatedFit

CONFIG = GPConfig(n_initial_points=5, candidate_points=64, sample_points=16,
                  posterior_samples=32, hyper_max_iter=20)


def observations(n: int) -> list[Observation]:
    rng = random.Random(3)
    return [
        Observation("local", random_values(rng), 1 + i % 5, image_id=f"img{i // 2}",
                    rater="t@example.com", mode="structure", prompt_version="1.0.0")
        for i in range(n)
    ]


async def started(fit: GatedFit) -> None:
    """Wait (in a thread, with a deadline) until a fit has begun."""
    assert await asyncio.to_thread(fit.started.wait, DEADLINE_S)
    fit.started.clear()


def test_concurrent_readers_share_one_fit() -> None:
    async def run() -> None:
        fit = GatedFit()
        keeper = ModelKeeper(CONFIG, fit=fit)
        data = observations(8)
        readers = [asyncio.create_task(keeper.view(data, DEADLINE_S)) for _ in range(10)]
        await started(fit)
        assert not any(r.done() for r in readers)  # they wait for the fit in progress
        fit.release.set()
        views = await asyncio.gather(*readers)
        assert fit.calls == [8]  # one fit for ten readers
        assert {id(v.model) for v in views} == {id(keeper.latest.model)}  # type: ignore[union-attr]
        assert {v.state for v in views} == {"fresh"}
        # Later readers of the same observations reuse it without fitting.
        again = await keeper.view(data, 0)
        assert again.model is views[0].model and fit.calls == [8]
        await keeper.close()

    asyncio.run(run())


def test_ratings_during_a_fit_are_fitted_once_newest_first() -> None:
    async def run() -> None:
        fit = GatedFit()
        keeper = ModelKeeper(CONFIG, fit=fit)
        first = keeper.request(observations(6))
        await started(fit)
        # Five more ratings arrive one by one while the first fit runs.
        pending = [keeper.request(observations(n)) for n in range(7, 12)]
        assert len({id(p) for p in pending}) == 1  # one queued fit, newest wins
        fit.release.set()
        done = await asyncio.gather(first, *pending)
        await keeper.idle()
        assert fit.calls == [6, 11]  # not one fit per rating
        assert done[0] is not None and done[0].observations_seen == 6
        assert all(d is not None and d.observations_seen == 11 for d in done[1:])
        # A reader that loaded before the last rating is served by the newer model.
        older = await keeper.view(observations(9), 0)
        assert older.state == "fresh" and older.fitted is not None
        assert older.fitted.observations_seen == 11 and fit.calls == [6, 11]
        await keeper.close()

    asyncio.run(run())


def test_readers_that_cannot_wait_get_the_latest_model_and_its_age() -> None:
    async def run() -> None:
        clock = FakeClock(100.0)
        fit = GatedFit()
        keeper = ModelKeeper(CONFIG, fit=fit, clock=clock)
        nothing = await keeper.view(observations(6), 0)  # first fit held
        assert (nothing.state, nothing.model, nothing.age_seconds) == ("fitting", None, None)
        fit.release.set()
        await keeper.idle()
        fit.release.clear()
        fit.started.clear()
        clock.now = 112.5
        stale = await keeper.view(observations(7), 0)  # a newer set, its fit held
        assert stale.state == "stale" and stale.age_seconds == 12.5
        assert stale.fitted is not None and stale.fitted.observations_seen == 6
        await started(fit)  # the fit of 7 is in progress, not in the reader
        assert fit.calls == [6, 7]
        fit.release.set()
        await keeper.idle()
        fresh = await keeper.view(observations(7), 0)
        assert fresh.state == "fresh" and fresh.age_seconds == 0.0
        await keeper.close()

    asyncio.run(run())


def test_a_failed_fit_keeps_the_previous_model_and_is_not_retried() -> None:
    async def run() -> None:
        fit = GatedFit(released=True)
        keeper = ModelKeeper(CONFIG, fit=fit)
        await keeper.view(observations(6), DEADLINE_S)
        fit.fail = True
        view = await keeper.view(observations(7), DEADLINE_S)
        assert view.state == "stale" and view.fitted is not None
        assert view.fitted.observations_seen == 6 and keeper.fits_failed == 1
        await keeper.view(observations(7), DEADLINE_S)
        assert fit.calls == [6, 7]  # the same observations are not refitted
        fit.fail = False
        newer = await keeper.view(observations(8), DEADLINE_S)  # the next rating retries
        assert newer.state == "fresh" and fit.calls == [6, 7, 8]
        await keeper.close()

    asyncio.run(run())


def test_too_few_observations_are_never_fitted() -> None:
    async def run() -> None:
        fit = GatedFit(released=True)
        keeper = ModelKeeper(CONFIG, fit=fit)
        view = await keeper.view(observations(4), DEADLINE_S)
        assert (view.state, fit.calls) == ("none", [])
        await keeper.close()

    asyncio.run(run())


def test_changed_returns_at_once_and_fits_what_is_stored() -> None:
    async def run() -> None:
        stored = observations(6)
        loads = 0

        async def load() -> list[Observation]:
            nonlocal loads
            loads += 1
            return list(stored)

        fit = GatedFit()
        keeper = ModelKeeper(CONFIG, fit=fit, load=load)
        keeper.changed()  # synchronous: schedules, never fits in the caller
        assert fit.calls == []
        await started(fit)
        stored.extend(observations(9)[6:])
        keeper.changed()
        keeper.changed()
        fit.release.set()
        await keeper.idle()
        assert fit.calls == [6, 9]
        assert keeper.latest is not None and keeper.latest.observations_seen == 9
        await keeper.close()

    asyncio.run(run())


def test_close_releases_waiting_readers() -> None:
    async def run() -> None:
        fit = GatedFit()
        keeper = ModelKeeper(CONFIG, fit=fit)
        reader = asyncio.create_task(keeper.view(observations(6), DEADLINE_S))
        await started(fit)
        await keeper.close()
        view = await reader
        assert view.model is None
        fit.release.set()

    asyncio.run(run())


@pytest.mark.parametrize("wait", [0.0, DEADLINE_S])
def test_on_fitted_runs_after_each_fit(wait: float) -> None:
    async def run() -> None:
        seen: list[int] = []

        async def hook(fitted: object) -> None:
            seen.append(fitted.observations_seen)  # type: ignore[attr-defined]

        keeper = ModelKeeper(CONFIG, fit=GatedFit(released=True), on_fitted=hook)
        await keeper.view(observations(6), wait)
        await keeper.idle()
        await keeper.view(observations(8), wait)
        await keeper.idle()
        assert seen == [6, 8]
        await keeper.close()

    asyncio.run(run())
