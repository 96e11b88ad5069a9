"""The evolution service's Prometheus metrics: A/B decisions and ratings, counted once."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from services.evolution.tests.test_evolution_api import _evolve_by_ratings, _play_pairs, _result


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_an_automatic_rollback_is_counted_once(client: TestClient) -> None:
    before = {d: _value("afinador_ab_decisions_total", decision=d)
              for d in ("promote", "rollback")}
    _evolve_by_ratings(client)
    _play_pairs(client, 12, 2, 4, "w")  # decided at 10 pairs; later reviews find no test
    assert _value("afinador_ab_decisions_total", decision="rollback") == before["rollback"] + 1
    assert _value("afinador_ab_decisions_total", decision="promote") == before["promote"]


def test_a_redelivered_rating_is_counted_once(client: TestClient) -> None:
    count = _value("afinador_rating_stars_count", mode="surfaces")
    stars = _value("afinador_rating_stars_sum", mode="surfaces")
    rating = _result("v1.0.0", 4, "exp-metrics", mode="surfaces")
    for _ in range(3):
        assert client.post("/prompts/results", json={"results": [rating]}).status_code == 200
    assert _value("afinador_rating_stars_count", mode="surfaces") == count + 1
    assert _value("afinador_rating_stars_sum", mode="surfaces") == stars + 4


def test_metrics_name_routes_by_template(client: TestClient) -> None:
    client.get("/prompts/versions/v1.0.0")
    client.get("/prompts/versions/v9.9.9")
    text = client.get("/metrics").text
    assert 'route="/prompts/versions/{version}"' in text
    assert "v9.9.9" not in text
