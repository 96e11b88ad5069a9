"""The model over HTTP: background fits, the recommendation history and partial
dependence, on SQLite and PostgreSQL (``database_url``).

Fits are gated (:class:`GatedFit`) and the clock is fake, so the tests say exactly
what runs when without waiting on the wall clock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.common.testing import wait_for
from services.optimizer.keeper import ModelKeeper
from services.optimizer.main import create_app
from services.optimizer.settings import OptimizerSettings
from services.optimizer.tests.fakes import DEADLINE_S, FakeClock, GatedFit
from services.optimizer.tests.test_api import AUTH, TOKEN, post, result, status


def make_settings(database_url: str, tmp_path: Path, wait: float) -> OptimizerSettings:
    return OptimizerSettings(
        database_url=database_url,
        data_dir=tmp_path,
        service_token=TOKEN,
        random_state=7,
        n_initial_points=5,
        candidate_points=64,
        sample_points=16,
        posterior_samples=32,
        fit_wait_seconds=wait,
        status_fit_wait_seconds=wait,
    )


class Service:
    """A running app with its gated fit, fake clock and keeper."""

    def __init__(self, client: TestClient, fit: GatedFit, clock: FakeClock) -> None:
        self.client, self.fit, self.clock = client, fit, clock
        self.keeper: ModelKeeper = client.app.state.keeper  # type: ignore[attr-defined]

    def idle(self) -> None:
        """Block until no fit is running or queued (the keeper's own signal)."""
        self.client.portal.call(self.keeper.idle)  # type: ignore[union-attr]

    def rate(self, first: int, count: int = 1) -> Any:
        batch = [result(i, rating=1 + i % 5) for i in range(first, first + count)]
        return post(self.client, "/ml/update_model", {"results": batch})


@contextmanager
def running(database_url: str, tmp_path: Path, wait: float, released: bool) -> Iterator[Service]:
    fit, clock = GatedFit(released=released), FakeClock()
    app = create_app(make_settings(database_url, tmp_path, wait), fit=fit, clock=clock)
    with TestClient(app) as client:
        yield Service(client, fit, clock)
        fit.release.set()


@pytest.fixture
def gated(database_url: str, tmp_path: Path) -> Iterator[Service]:
    """Fits held until the test releases them; reads never wait for a fit."""
    with running(database_url, tmp_path, wait=0.0, released=False) as svc:
        yield svc


@pytest.fixture
def live(database_url: str, tmp_path: Path) -> Iterator[Service]:
    """Fits run freely; reads wait for the fit of what they read (deadline only)."""
    with running(database_url, tmp_path, wait=DEADLINE_S, released=True) as svc:
        yield svc


def test_update_model_answers_while_a_fit_is_running(gated: Service) -> None:
    gated.rate(0, 6)
    assert gated.fit.started.wait(DEADLINE_S)  # update_model started a background fit
    assert gated.keeper.fitting and not gated.fit.release.is_set()
    # More ratings are stored and acknowledged while that fit is still held.
    for i in range(6, 10):
        answer = gated.rate(i)
        assert answer["updated"] is True and answer["samples_seen"] == i + 1
    assert not gated.fit.release.is_set() and gated.fit.calls == [6]


def test_status_reads_between_ratings_never_fit(gated: Service) -> None:
    """Each read after a new rating used to start a full fit; now reads answer at once
    from what there is, and the ratings that arrived during a fit are fitted once."""
    gated.rate(0, 6)
    assert gated.fit.started.wait(DEADLINE_S)
    for i in range(6, 11):
        gated.rate(i)
        st = status(gated.client)
        assert st["model_state"] == "fitting" and st["recommendation_source"] == "observed"
        assert st["samples_seen"] == i + 1
    gated.fit.release.set()
    gated.idle()
    assert gated.fit.calls == [6, 11]  # not one per read
    gated.clock.now += 7.25
    st = status(gated.client)
    assert st["model_state"] == "fresh" and st["recommendation_source"] == "model"
    assert st["model"]["observations_seen"] == 11 and st["model"]["age_seconds"] == 7.25
    assert gated.fit.calls == [6, 11]


def test_concurrent_status_reads_share_the_fit_in_progress(
    database_url: str, tmp_path: Path
) -> None:
    with running(database_url, tmp_path, wait=DEADLINE_S, released=False) as svc:
        svc.rate(0, 6)
        assert svc.fit.started.wait(DEADLINE_S)
        answers: list[Any] = []

        def read() -> None:
            answers.append(status(svc.client))

        readers = [threading.Thread(target=read) for _ in range(6)]
        for r in readers:
            r.start()
        # A rating while the readers wait: acknowledged at once.
        assert svc.rate(6)["samples_seen"] == 7 and not svc.fit.release.is_set()
        svc.fit.release.set()
        for r in readers:
            r.join(DEADLINE_S)
        svc.idle()
        assert len(answers) == 6
        assert {a["recommendation_source"] for a in answers} == {"model"}
        # One fit for the six readers of 6 ratings, one for the 7th rating: no more.
        assert svc.fit.calls == [6, 7]


def test_recommendation_history_has_one_row_per_fitted_set(gated: Service) -> None:
    empty = gated.client.get("/ml/recommendations", headers=AUTH).json()
    assert empty == {"total": 0, "items": []}
    gated.rate(0, 6)
    assert gated.fit.started.wait(DEADLINE_S)
    gated.rate(6, 1)
    gated.rate(7, 1)
    gated.rate(8, 1)
    # (each rating's reload runs in the background: let the last one queue its set)
    wait_for(lambda: gated.keeper.queued_observations == 9, DEADLINE_S, "the set of 9 queued")
    gated.fit.release.set()
    gated.idle()
    history = gated.client.get("/ml/recommendations", headers=AUTH).json()
    assert history["total"] == 2
    items = history["items"]
    assert [i["observations_seen"] for i in items] == [6, 9]  # the fitted sets, oldest first
    for item in items:
        low, high = item["predicted_rating_interval"]
        assert 1.0 <= low <= item["predicted_rating"] <= high <= 5.0
        r_low, r_high = item["rating_interval"]
        assert r_low <= low and r_high >= high
        assert item["parameters"]["api"] == "local"
        assert set(item["parameters"]) == {
            "api", "strength", "guidance_scale", "controlnet_conditioning_scale"}
        assert item["provider_probability"] == {"local": 1.0}
        local = item["provider_posterior"]["local"]
        assert local["probability_best"] == 1.0
        # One provider: its own best is the recommendation.
        assert local["best_parameters"] == item["parameters"]
        assert local["predicted_rating"] == item["predicted_rating"]
        assert local["predicted_rating_interval"] == item["predicted_rating_interval"]
        assert item["context"] == {"mode": "structure", "prompt_version": "1.0.0"}
        assert 0.0 <= item["probability_within"] <= 1.0
    # The latest row is what the status reports.
    st = status(gated.client)
    assert st["predicted_rating"] == items[-1]["predicted_rating"]
    assert st["best_parameters"] == items[-1]["parameters"]
    last = gated.client.get("/ml/recommendations", params={"limit": 1}, headers=AUTH).json()
    assert last["total"] == 2 and [i["observations_seen"] for i in last["items"]] == [9]


def test_history_is_stored_once_per_model_across_restarts(
    database_url: str, tmp_path: Path
) -> None:
    with running(database_url, tmp_path, wait=DEADLINE_S, released=True) as svc:
        svc.rate(0, 6)
        svc.idle()
    # A restart (or a second replica) fits the same ratings again: no second row.
    with running(database_url, tmp_path, wait=DEADLINE_S, released=True) as svc:
        svc.idle()
        assert svc.fit.calls == [6]  # the start-up fit
        history = svc.client.get("/ml/recommendations", headers=AUTH).json()
        assert history["total"] == 1


def test_partial_dependence_before_and_after_the_model(live: Service) -> None:
    early = live.client.get("/ml/partial_dependence", headers=AUTH).json()
    assert early["available"] is False and early["parameters"] == []
    assert early["model_state"] == "none"
    live.rate(0, 8)
    answer = live.client.get("/ml/partial_dependence", headers=AUTH).json()
    assert answer["available"] is True and answer["method"] == "average"
    assert answer["providers"] == ["local"]
    assert answer["context"] == {"mode": "structure", "prompt_version": "1.0.0"}
    assert answer["model_state"] == "fresh" and answer["model"]["observations_seen"] == 8
    names = [p["name"] for p in answer["parameters"]]
    assert names == ["strength", "guidance", "structure"]
    for parameter in answer["parameters"]:
        (curve,) = parameter["curves"]
        assert curve["provider"] == "local"
        values = [p["value"] for p in curve["points"]]
        assert len(values) == 21 and values == sorted(values)
        assert values[0] == parameter["low"] and values[-1] == parameter["high"]
        for point in curve["points"]:
            assert 1.0 <= point["low"] <= point["mean"] <= point["high"] <= 5.0
    strength = answer["parameters"][0]["curves"][0]
    assert strength["native_name"] == "strength"


def test_partial_dependence_per_provider_and_as_a_slice(live: Service) -> None:
    leonardo = {"api": "leonardo", "init_strength": 0.8, "guidance_scale": 9,  # strength 0.2
                "controlnet_weight": 0.9}
    batch = [result(i, rating=1 + i % 5) for i in range(6)]
    batch.append(result(6, rating=4) | {"parameters": leonardo})
    post(live.client, "/ml/update_model", {"results": batch})
    params: dict[str, Any] = {"providers": ["local", "leonardo"], "method": "slice", "points": 5}
    answer = live.client.get("/ml/partial_dependence", params=params, headers=AUTH).json()
    assert answer["available"] is True and answer["method"] == "slice"
    assert answer["providers"] == ["leonardo", "local"]
    for parameter in answer["parameters"]:
        assert [c["provider"] for c in parameter["curves"]] == ["leonardo", "local"]
        assert all(len(c["points"]) == 5 for c in parameter["curves"])
    leo_strength = answer["parameters"][0]["curves"][0]
    assert leo_strength["native_name"] == "init_strength"
    # Leonardo alone has one rating: too few for its own model.
    alone = live.client.get("/ml/partial_dependence", params={"providers": ["leonardo"]},
                            headers=AUTH).json()
    assert alone["available"] is False


@pytest.mark.parametrize("params", [{"method": "median"}, {"points": 2}, {"points": 500},
                                    {"providers": ["dalle"]}])
def test_partial_dependence_rejects_bad_queries(live: Service, params: dict[str, Any]) -> None:
    response = live.client.get("/ml/partial_dependence", params=params, headers=AUTH)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_failed"


def test_every_json_answer_has_a_schema_in_openapi(live: Service) -> None:
    spec = live.client.get("/openapi.json").json()
    for path in ("/ml/status", "/ml/partial_dependence", "/ml/recommendations",
                 "/ml/update_model", "/ml/suggest_parameters", "/ml/space"):
        operation = next(iter(spec["paths"][path].values()))
        content = operation["responses"]["200"]["content"]["application/json"]
        assert "$ref" in content["schema"], path
    schemas = spec["components"]["schemas"]
    assert "model_state" in schemas["StatusResponse"]["properties"]
    assert {"mean", "low", "high", "value"} <= set(schemas["EffectPointOut"]["properties"])


def test_fits_run_in_a_child_process_by_default(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path, DEADLINE_S)
    assert settings.fit_in_process is True
    with TestClient(create_app(settings)) as client:
        post(client, "/ml/update_model",
             {"results": [result(i, rating=1 + i % 5) for i in range(6)]})
        st = status(client)
        assert st["model_state"] == "fresh" and st["recommendation_source"] == "model"
        assert client.app.state.process_fitter._pool is not None  # type: ignore[attr-defined]


def test_the_observation_log_reads_new_rows_and_reconciles(
    database_url: str, tmp_path: Path
) -> None:
    import asyncio

    from services.common.db import create_engine, run_migrations, session_factory, transaction
    from services.common.parameter_space import from_native
    from services.optimizer import store
    from services.optimizer.main import MIGRATIONS_DIR

    run_migrations(MIGRATIONS_DIR, database_url, "alembic_version_optimizer")

    def records(first: int, count: int) -> list[store.ObservationRecord]:
        out = []
        for i in range(first, first + count):
            r = result(i, 1 + i % 5)
            provider, values = from_native(r["parameters"])
            out.append(store.ObservationRecord(r["rating_id"], r["experiment_id"],
                                               r["image_id"], r["rater"], provider, values,
                                               r["rating"]))
        return out

    async def run() -> None:
        engine = create_engine(database_url)
        sessions = session_factory(engine)
        log = store.ObservationLog()
        try:
            for first, count in ((0, 4), (4, 3), (7, 0), (7, 2)):
                async with transaction(sessions) as session:
                    await store.insert_observations(session, records(first, count))
                async with transaction(sessions) as session:
                    seen = await log.read(session)
                    assert seen == await store.load_observations(session)
            assert len(seen) == 9 and log.full_loads == 0  # only new rows were read
            log._observations.pop(3)  # as if a row had been skipped: the count disagrees
            async with transaction(sessions) as session:
                assert await log.read(session) == await store.load_observations(session)
            assert log.full_loads == 1
        finally:
            await engine.dispose()

    asyncio.run(run())


def test_history_follows_each_provider(live: Service) -> None:
    leonardo = {"api": "leonardo", "init_strength": 0.8, "guidance_scale": 9,  # strength 0.2
                "controlnet_weight": 0.9}
    batch = [result(i, rating=1 + i % 5) for i in range(6)]
    batch.append(result(6, rating=4) | {"parameters": leonardo})
    post(live.client, "/ml/update_model", {"results": batch})
    live.idle()
    (item,) = live.client.get("/ml/recommendations", headers=AUTH).json()["items"]
    assert set(item["provider_posterior"]) == {"leonardo", "local"}
    assert item["provider_posterior"]["leonardo"]["best_parameters"]["api"] == "leonardo"
    assert "init_strength" in item["provider_posterior"]["leonardo"]["best_parameters"]
    assert sum(item["provider_probability"].values()) == pytest.approx(1.0, abs=1e-3)
    assert item["parameters"]["api"] in {"leonardo", "local"}
