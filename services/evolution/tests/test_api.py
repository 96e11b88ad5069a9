"""The /prompts endpoints over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.evolution.settings import EvolutionSettings


def _result(rating_id: str, rating: int, **overrides: Any) -> dict[str, Any]:
    return {
        "rating_id": rating_id,
        "experiment_id": "exp-1",
        "option": "A",
        "version": "v1.0.0",
        "mode": "structure",
        "rating": rating,
        "comments": "se ve plano",
        "rater": "trainer-1",
        **overrides,
    }


def _performance(client: TestClient, version: str = "v1.0.0") -> dict[str, Any]:
    response = client.get(f"/prompts/versions/{version}")
    assert response.status_code == 200, response.text
    return response.json()["performance"]


def test_current_is_v1_with_full_document_and_no_samples(client: TestClient) -> None:
    body = client.get("/prompts/current").json()
    assert body["version"] == "v1.0.0"
    assert body["document"]["version"] == "v1.0.0"
    assert set(body["document"]["providers"]) == {"leonardo", "stablediffusion"}
    assert body["performance"] == {"sample_count": 0, "avg_rating": None}


def test_version_detail_and_list(client: TestClient) -> None:
    detail = client.get("/prompts/versions/v1.0.0").json()
    assert detail["status"] == "active"
    assert detail["parent_version"] is None
    assert detail["promoted_at"] is not None
    assert detail["reasoning"].startswith("Baseline")
    assert detail["document"]["providers"]["leonardo"]["defaults"]["controlnet_weight"] == 0.92
    listing = client.get("/prompts/versions").json()
    assert listing == {
        "versions": [
            {
                "version": "v1.0.0",
                "parent_version": None,
                "created_by": "system",
                "status": "active",
                "created_at": detail["created_at"],
                "performance": {"sample_count": 0, "avg_rating": None},
            }
        ]
    }


def test_unknown_version_is_404_in_spanish_and_english(client: TestClient) -> None:
    response = client.get("/prompts/versions/v9.9.9")
    assert response.status_code == 404
    body = response.json()
    assert body["error"]["code"] == "prompt_version_not_found"
    assert "no existe" in body["detail"]
    assert "does not exist" in body["error"]["message_en"]


@pytest.mark.parametrize("mode", ["structure", "surfaces"])
def test_assign_gives_every_option_the_champion_with_prompts_for_each_provider(
    client: TestClient, mode: str
) -> None:
    response = client.post(
        "/prompts/assign", json={"experiment_id": "exp-7", "mode": mode, "options": ["A", "B"]}
    )
    assert response.status_code == 200, response.text
    assignments = response.json()["assignments"]
    document = client.get("/prompts/current").json()["document"]
    assert [(a["option"], a["version"], a["arm"]) for a in assignments] == [
        ("A", "v1.0.0", "champion"),
        ("B", "v1.0.0", "champion"),
    ]
    for assigned in assignments:
        prompts = assigned["prompts"]
        assert set(prompts) == {"leonardo", "stablediffusion", "local"}
        for provider in ("leonardo", "stablediffusion"):
            assert prompts[provider] == document["providers"][provider]["modes"][mode]
        assert prompts["local"] == prompts["stablediffusion"]


def test_structure_and_surfaces_get_different_prompts(client: TestClient) -> None:
    def prompt(mode: str) -> str:
        body = {"experiment_id": "e", "mode": mode, "options": ["A"]}
        return client.post("/prompts/assign", json=body).json()["assignments"][0]["prompts"][
            "leonardo"
        ]["prompt"]

    assert prompt("structure") != prompt("surfaces")


@pytest.mark.parametrize(
    "body",
    [
        {"experiment_id": "e", "mode": "lighting", "options": ["A", "B"]},
        {"experiment_id": "e", "mode": "structure", "options": []},
        {"experiment_id": "", "mode": "structure", "options": ["A"]},
        {"experiment_id": "e", "mode": "structure", "options": ["A", "A"]},
        {"experiment_id": "e", "mode": "structure", "options": [""]},
    ],
)
def test_assign_rejects_bad_requests(client: TestClient, body: dict[str, Any]) -> None:
    response = client.post("/prompts/assign", json=body)
    assert response.status_code == 422
    assert "no es válida" in response.json()["detail"]


def test_results_average_and_idempotency(client: TestClient) -> None:
    first = client.post(
        "/prompts/results", json={"results": [_result("r1", 4), _result("r2", 2, option="B")]}
    )
    assert first.status_code == 200, first.text
    assert first.json() == {
        "recorded": 2,
        "versions": {"v1.0.0": {"sample_count": 2, "avg_rating": 3.0}},
    }
    again = client.post("/prompts/results", json={"results": [_result("r1", 5)]})
    assert again.json() == {
        "recorded": 0,
        "versions": {"v1.0.0": {"sample_count": 2, "avg_rating": 3.0}},
    }
    mixed = client.post("/prompts/results", json={"results": [_result("r2", 1), _result("r3", 5)]})
    assert mixed.json()["recorded"] == 1
    assert mixed.json()["versions"]["v1.0.0"] == {"sample_count": 3, "avg_rating": 3.6667}
    assert _performance(client) == {"sample_count": 3, "avg_rating": 3.6667}
    assert client.get("/prompts/current").json()["performance"]["sample_count"] == 3


def test_same_rating_id_twice_in_one_request_counts_once(client: TestClient) -> None:
    response = client.post("/prompts/results", json={"results": [_result("r1", 4)] * 2})
    assert response.json()["recorded"] == 1
    assert _performance(client) == {"sample_count": 1, "avg_rating": 4.0}


@pytest.mark.parametrize("bad", [6, 0, 3.5, None])
def test_rating_out_of_range_is_422_and_nothing_is_saved(client: TestClient, bad: Any) -> None:
    response = client.post(
        "/prompts/results", json={"results": [_result("ok", 4), _result("bad", bad)]}
    )
    assert response.status_code == 422
    assert "rating" in response.json()["detail"]
    assert _performance(client) == {"sample_count": 0, "avg_rating": None}


def test_unknown_version_in_results_is_422_and_nothing_is_saved(client: TestClient) -> None:
    response = client.post(
        "/prompts/results",
        json={"results": [_result("ok", 4), _result("bad", 4, version="v7.0.0")]},
    )
    assert response.status_code == 422
    body = response.json()
    assert body["error"]["code"] == "unknown_prompt_version"
    assert body["error"]["details"] == {"versions": ["v7.0.0"]}
    assert "No result was saved" in body["error"]["message_en"]
    assert _performance(client) == {"sample_count": 0, "avg_rating": None}
    # The rejected rating id is still free: re-delivering it correctly records it.
    retry = client.post("/prompts/results", json={"results": [_result("ok", 4)]})
    assert retry.json()["recorded"] == 1


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/prompts/current", None),
        ("GET", "/prompts/versions", None),
        ("GET", "/prompts/versions/v1.0.0", None),
        ("GET", "/prompts/status", None),
        ("POST", "/prompts/assign", {"experiment_id": "e", "mode": "structure"}),
        ("POST", "/prompts/results", {"results": [_result("r1", 4)]}),
    ],
)
def test_internal_endpoints_need_the_service_token(
    settings: EvolutionSettings, client: TestClient, method: str, path: str, body: Any
) -> None:
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong"}):
        response = client.request(method, path, json=body, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
    assert client.request(method, path, json=body).status_code == 200
    assert client.get("/healthz", headers={"Authorization": ""}).status_code == 200


def test_status_counts_samples_and_schedules_next_evolution(client: TestClient) -> None:
    status = client.get("/prompts/status").json()
    assert status == {
        "current_version": "v1.0.0",
        "total_samples": 0,
        "evolve_every": 10,
        "next_evolution_at_sample": 10,
        "last_evolution": None,
        "versions_count": 1,
        "best_rating": None,
        "evolution_engine": "offline",
        "evolution_blocked": None,
        "ab_test": None,
        "monitor": None,
    }
    nine = [_result(f"r{i}", 1 + i % 5) for i in range(9)]
    client.post("/prompts/results", json={"results": nine})
    status = client.get("/prompts/status").json()
    assert (status["total_samples"], status["next_evolution_at_sample"]) == (9, 10)
    assert status["versions_count"] == 1 and status["ab_test"] is None
    client.post("/prompts/results", json={"results": [_result("r9", 3)]})
    status = client.get("/prompts/status").json()
    assert (status["total_samples"], status["next_evolution_at_sample"]) == (10, 20)
    # The tenth sample triggered an evolution (best 2.8 < 4.5): a challenger under test.
    assert status["best_rating"] == 2.8
    assert status["versions_count"] == 2
    assert status["last_evolution"] is not None
    assert status["ab_test"]["champion"] == "v1.0.0"
    assert status["ab_test"]["challenger"] == "v1.0.1"
    assert "prueba A/B" in status["evolution_blocked"]
