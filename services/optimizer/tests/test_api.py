"""The HTTP API over a real database (SQLite, and PostgreSQL when TEST_POSTGRES_URL is set)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.optimizer.convergence import convergence_score
from services.optimizer.main import create_app
from services.optimizer.settings import OptimizerSettings

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LOCAL_NAMES = {"strength", "guidance_scale", "controlnet_conditioning_scale"}
LEONARDO_NAMES = {"init_strength", "guidance_scale", "controlnet_weight"}


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> OptimizerSettings:
    # A five-observation start-up design keeps these API tests to a few ratings; reads
    # wait for the background fit of the ratings just stored (a deadline, not a budget).
    return OptimizerSettings(
        database_url=database_url,
        data_dir=tmp_path,
        service_token=TOKEN,
        random_state=7,
        n_initial_points=5,
        fit_wait_seconds=120,
        status_fit_wait_seconds=120,
        fit_in_process=False,
    )


@pytest.fixture
def client(settings: OptimizerSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def result(i: int, rating: int = 3, **params: Any) -> dict[str, Any]:
    parameters = {
        "api": "local",
        "strength": 0.1 + 0.4 * ((i * 0.37) % 1),
        "guidance_scale": 5 + 7 * ((i * 0.61) % 1),
        "controlnet_conditioning_scale": 0.7 + 0.29 * ((i * 0.83) % 1),
    }
    parameters.update(params)
    return {
        "rating_id": f"r{i}",
        "experiment_id": f"e{i // 2}",
        "image_id": f"img{i}",
        "rater": "trainer@example.com",
        "parameters": parameters,
        "rating": rating,
        "mode": "structure",
        "prompt_version": "1.0.0",
    }


def post(client: TestClient, path: str, body: dict[str, Any]) -> Any:
    response = client.post(path, json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()


def status(client: TestClient, **params: Any) -> Any:
    response = client.get("/ml/status", params=params, headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/ml/suggest_parameters"),
        ("POST", "/ml/update_model"),
        ("GET", "/ml/status"),
        ("GET", "/ml/space"),
        ("POST", "/ml/phase_1/stop"),
        ("POST", "/ml/phase_1/resume"),
    ],
)
def test_internal_endpoints_require_the_service_token(
    client: TestClient, method: str, path: str
) -> None:
    body: dict[str, Any] = (
        {"mode": "structure"} if path == "/ml/suggest_parameters"
        else {} if path.startswith("/ml/phase_1") else {"results": []}
    )
    kwargs: dict[str, Any] = {"json": body} if method == "POST" else {}
    assert client.request(method, path, **kwargs).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert client.request(method, path, headers=wrong, **kwargs).status_code == 401
    assert client.request(method, path, headers=AUTH, **kwargs).status_code == 200
    assert client.get("/healthz").status_code == 200


def test_random_phase_suggestions_are_repeatable(client: TestClient) -> None:
    body = {"mode": "structure", "num_suggestions": 2}
    first = post(client, "/ml/suggest_parameters", body)
    assert post(client, "/ml/suggest_parameters", body) == first
    assert first["samples_seen"] == 0 and first["observations_used"] == 0
    assert len(first["suggestions"]) == 2
    for s in first["suggestions"]:
        assert s["api"] == "local" and s["source"] == "random"
        assert set(s) == {"api", "source", *LOCAL_NAMES}
        assert 0.1 <= s["strength"] <= 0.5
        assert 5 <= s["guidance_scale"] <= 12
        assert 0.7 <= s["controlnet_conditioning_scale"] <= 0.99


def test_learning_loop_switches_to_bayesian_with_native_names(client: TestClient) -> None:
    results = [result(i, rating=1 + i % 5) for i in range(4)]
    leonardo = {
        "api": "leonardo",
        "init_strength": 0.8,  # Leonardo's own scale: strength 0.2
        "guidance_scale": 9,
        "controlnet_weight": 0.9,
    }
    results.append(result(4, rating=4) | {"parameters": leonardo})
    update = post(client, "/ml/update_model", {"results": results})
    assert update["updated"] is True and update["samples_seen"] == 5
    assert update["convergence_score"] == pytest.approx(convergence_score(5, 5))

    # Only 4 observations are for "local": still random for local alone.
    local = post(client, "/ml/suggest_parameters", {"mode": "surfaces"})
    assert local["observations_used"] == 4
    assert {s["source"] for s in local["suggestions"]} == {"random"}

    both = post(
        client,
        "/ml/suggest_parameters",
        {"mode": "surfaces", "num_suggestions": 4, "providers": ["local", "leonardo"]},
    )
    assert both["samples_seen"] == 5 and both["observations_used"] == 5
    assert {s["source"] for s in both["suggestions"]} == {"bayesian"}
    for s in both["suggestions"]:
        names = LEONARDO_NAMES if s["api"] == "leonardo" else LOCAL_NAMES
        assert s["api"] in {"local", "leonardo"}
        assert set(s) == {"api", "source", *names}


def test_update_model_is_idempotent_by_rating_id(client: TestClient) -> None:
    first = post(client, "/ml/update_model", {"results": [result(1, 4), result(2, 2)]})
    assert (first["updated"], first["new_observations"], first["samples_seen"]) == (True, 2, 2)
    again = post(client, "/ml/update_model", {"results": [result(1, 5), result(2, 2)]})
    assert (again["updated"], again["new_observations"], again["samples_seen"]) == (False, 0, 2)
    dup_in_batch = post(client, "/ml/update_model", {"results": [result(3, 3), result(3, 3)]})
    assert (dup_in_batch["new_observations"], dup_in_batch["samples_seen"]) == (1, 3)
    st = status(client)
    assert st["samples_seen"] == 3
    assert st["best_rating"] == 4  # the redelivered r1 with rating 5 was ignored
    assert st["providers_seen"] == {"local": {"count": 3, "avg_rating": 3.0}}


@pytest.mark.parametrize(
    "bad",
    [
        {
            "parameters": {
                "api": "local",
                "strength": 0.6,
                "guidance_scale": 7,
                "controlnet_conditioning_scale": 0.8,
            }
        },
        {
            "parameters": {
                "api": "local",
                "strength": 0.3,
                "guidance_scale": 4.9,
                "controlnet_conditioning_scale": 0.8,
            }
        },
        {
            "parameters": {
                "api": "leonardo",
                "strength": 0.3,
                "guidance_scale": 7,
                "controlnet_conditioning_scale": 0.8,
            }
        },  # local names for leonardo
        {
            "parameters": {
                "api": "dalle",
                "strength": 0.3,
                "guidance_scale": 7,
                "controlnet_conditioning_scale": 0.8,
            }
        },
        {
            "parameters": {
                "api": "local",
                "strength": "much",
                "guidance_scale": 7,
                "controlnet_conditioning_scale": 0.8,
            }
        },
        {"rating": 0},
        {"rating": 6},
        {"rating": 3.5},
        {"rating_id": ""},
        {"mode": "kitchen"},
    ],
)
def test_invalid_results_reject_the_whole_batch(client: TestClient, bad: dict[str, Any]) -> None:
    batch = [result(1, 4), result(2, 3) | bad]
    response = client.post("/ml/update_model", json={"results": batch}, headers=AUTH)
    assert response.status_code == 422, response.text
    body = response.json()
    # Bad parameters are the optimizer's own error; the rest fail the request schema.
    expected = "invalid_parameters" if "parameters" in bad else "validation_failed"
    assert body["error"]["code"] == expected and body["detail"]
    assert status(client)["samples_seen"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {"mode": "structure", "num_suggestions": 0},
        {"mode": "structure", "num_suggestions": 9},
        {"mode": "kitchen"},
        {"mode": "structure", "providers": []},
        {"mode": "structure", "providers": ["dalle"]},
    ],
)
def test_invalid_suggestion_requests_are_422(client: TestClient, body: dict[str, Any]) -> None:
    response = client.post("/ml/suggest_parameters", json=body, headers=AUTH)
    assert response.status_code == 422, response.text


def test_status_recommends_observed_best_then_model_best(client: TestClient) -> None:
    empty = status(client)
    assert empty == {
        "samples_seen": 0,
        "best_rating": None,
        "best_parameters": None,
        "predicted_rating": None,
        "predicted_rating_interval": None,
        "rating_interval": None,
        "recommendation_source": None,
        "convergence_score": 0.0,
        "posterior_convergence": None,
        "phase_1_complete": False,
        "phase_1_reason": None,
        "manual_stop": {"stopped": False, "changed_by": None, "note": None, "changed_at": None},
        "n_initial_points": 5,
        "providers_seen": {},
        "provider_posterior": {},
        "context": None,
        "model": None,
        "model_state": "none",
    }
    post(client, "/ml/update_model", {"results": [result(0, 2), result(1, 3)]})
    early = status(client)
    assert early["recommendation_source"] == "observed"
    assert early["best_parameters"] == {
        "api": "local",
        **{k: round(v, 4) for k, v in result(1)["parameters"].items() if k != "api"},
    }
    assert early["predicted_rating"] is None and early["best_rating"] == 3
    assert early["posterior_convergence"] is None

    post(client, "/ml/update_model", {"results": [result(i, 1 + i % 4) for i in range(2, 8)]})
    fitted = status(client)
    assert fitted["samples_seen"] == 8 and fitted["best_rating"] == 4
    assert fitted["recommendation_source"] == "model"
    assert fitted["best_parameters"]["api"] == "local"
    assert set(fitted["best_parameters"]) == {"api", *LOCAL_NAMES}
    low, high = fitted["predicted_rating_interval"]
    assert 1.0 <= low <= fitted["predicted_rating"] <= high <= 5.0
    r_low, r_high = fitted["rating_interval"]
    assert r_low <= low and r_high >= high  # one rating is noisier than its mean
    conv = fitted["posterior_convergence"]
    assert 0.0 <= conv["probability_within"] <= 1.0 and conv["tolerance"] == 0.25
    assert conv["expected_regret"] >= 0.0
    assert fitted["convergence_score"] == pytest.approx(0.6 * 8 / 50 + 0.4)
    assert fitted["phase_1_complete"] is True  # best rating 4 reaches the target
    assert fitted["phase_1_reason"] == "best_rating"
    assert set(fitted["provider_posterior"]) == {"local"}
    assert fitted["provider_posterior"]["local"]["probability_best"] == 1.0
    assert fitted["context"] == {"mode": "structure", "prompt_version": "1.0.0"}
    assert fitted["model"]["observations_used"] == 8
    assert fitted["model"]["observations_seen"] == 8 and fitted["model_state"] == "fresh"
    assert set(fitted["model"]["trainer_bias"]) == {"trainer@example.com"}
    assert fitted["model"]["hyperparameters"]["noise_sd"] > 0
    surfaces = status(client, mode="surfaces", prompt_version="2.0.0")
    assert surfaces["context"] == {"mode": "surfaces", "prompt_version": "2.0.0"}
    only_leonardo = status(client, providers=["leonardo"])
    assert only_leonardo["best_parameters"] is None


def test_phase_1_can_be_stopped_and_resumed_by_hand(client: TestClient) -> None:
    post(client, "/ml/update_model", {"results": [result(0, 2), result(1, 3)]})
    assert status(client)["phase_1_complete"] is False
    stopped = post(client, "/ml/phase_1/stop", {"changed_by": "admin@example.com", "note": "ok"})
    assert stopped["phase_1_complete"] is True and stopped["phase_1_reason"] == "manual"
    assert stopped["manual_stop"]["stopped"] is True
    assert stopped["manual_stop"]["changed_by"] == "admin@example.com"
    st = status(client)
    assert (st["phase_1_complete"], st["phase_1_reason"]) == (True, "manual")
    assert st["manual_stop"]["note"] == "ok" and st["manual_stop"]["changed_at"]
    resumed = post(client, "/ml/phase_1/resume", {})
    assert resumed["phase_1_complete"] is False and resumed["phase_1_reason"] is None
    assert status(client)["manual_stop"]["stopped"] is False
    post(client, "/ml/update_model", {"results": [result(2, 4)]})
    assert status(client)["phase_1_reason"] == "best_rating"  # resume does not undo this


def test_bayesian_suggestions_say_how_they_were_chosen(client: TestClient) -> None:
    post(client, "/ml/update_model", {"results": [result(i, 1 + i % 5) for i in range(8)]})
    body = {"mode": "structure", "num_suggestions": 2, "providers": ["local", "leonardo"],
            "prompt_version": "1.0.0"}
    answer = post(client, "/ml/suggest_parameters", body)
    assert [s["source"] for s in answer["suggestions"]] == ["bayesian", "bayesian"]
    assert len(answer["details"]) == 2
    for detail in answer["details"]:
        assert detail["strategy"] == "thompson"
        assert 1.0 <= detail["predicted_rating"] <= 5.5
        assert 0.0 <= detail["provider_probability"] <= 1.0
    assert answer["context"] == {"mode": "structure", "prompt_version": "1.0.0"}


def test_space_describes_bounds_and_names(client: TestClient) -> None:
    response = client.get("/ml/space", headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert body["default_providers"] == ["local"] and body["n_initial_points"] == 5
    strength = next(d for d in body["dimensions"] if d["name"] == "strength")
    assert strength["native_names"]["leonardo"] == "init_strength"
    assert (strength["low"], strength["high"]) == (0.1, 0.5)


def test_observations_survive_a_restart(settings: OptimizerSettings) -> None:
    with TestClient(create_app(settings)) as first:
        post(first, "/ml/update_model", {"results": [result(i, 1 + i % 5) for i in range(6)]})
        before = post(first, "/ml/suggest_parameters", {"mode": "structure"})
    with TestClient(create_app(settings)) as second:
        st = status(second)
        assert st["samples_seen"] == 6 and st["best_rating"] == 5
        after = post(second, "/ml/suggest_parameters", {"mode": "structure"})
        # Rebuilt from the table, the model gives the same Bayesian suggestions.
        assert after == before
        assert {s["source"] for s in after["suggestions"]} == {"bayesian"}
        repeat = post(second, "/ml/update_model", {"results": [result(0, 1)]})
        assert (repeat["updated"], repeat["samples_seen"]) == (False, 6)


def test_concurrent_duplicate_ingestion_counts_once(settings: OptimizerSettings) -> None:
    """Many transactions race to store overlapping rating ids: each is stored once."""
    from services.common.db import create_engine, run_migrations, session_factory, transaction
    from services.common.parameter_space import from_native
    from services.optimizer import store
    from services.optimizer.main import MIGRATIONS_DIR

    run_migrations(MIGRATIONS_DIR, settings.database_url, "alembic_version_optimizer")

    def record(i: int) -> store.ObservationRecord:
        r = result(i, 3)
        provider, values = from_native(r["parameters"])
        return store.ObservationRecord(
            r["rating_id"], r["experiment_id"], r["image_id"], r["rater"], provider, values, 3
        )

    async def race() -> tuple[list[int], int]:
        engine = create_engine(settings.database_url)
        sessions = session_factory(engine)

        async def ingest(offset: int) -> int:
            async with transaction(sessions) as session:
                return await store.insert_observations(
                    session, [record((offset + k) % 6) for k in range(4)]
                )

        try:
            inserted = await asyncio.gather(*(ingest(i) for i in range(12)))
            async with transaction(sessions) as session:
                total = await store.count_observations(session)
        finally:
            await engine.dispose()
        return list(inserted), total

    inserted, total = asyncio.run(race())
    assert total == 6
    assert sum(inserted) == 6


def test_migration_matches_the_models(settings: OptimizerSettings) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from services.common.db import create_engine, run_migrations
    from services.optimizer.main import MIGRATIONS_DIR
    from services.optimizer.models import Base

    run_migrations(MIGRATIONS_DIR, settings.database_url, "alembic_version_optimizer")

    async def diff() -> list[Any]:
        engine = create_engine(settings.database_url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(
                    lambda sync: compare_metadata(
                        MigrationContext.configure(sync, opts={"compare_type": True}),
                        Base.metadata,
                    )
                )
        finally:
            await engine.dispose()

    changes = [
        c
        for c in asyncio.run(diff())
        if not (c[0] == "remove_table" and c[1].name.startswith("alembic_version"))
    ]
    assert changes == []
