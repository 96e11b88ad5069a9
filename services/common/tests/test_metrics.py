"""Prometheus metrics: the middleware's labels, the token on /metrics, the helpers."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from fastapi import APIRouter
from fastapi.staticfiles import StaticFiles
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from services.common import metrics
from services.common.app import build_app
from services.common.errors import NotFound
from services.common.settings import ServiceSettings

TOKEN = "metrics-test-token"


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def service() -> str:
    """A service name of its own, so counts from other tests never mix in."""
    return f"svc{uuid.uuid4().hex[:8]}"


@pytest.fixture
def client(service: str, tmp_path: Path) -> TestClient:
    router = APIRouter()

    @router.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        if thing_id == "missing":
            raise NotFound("No existe.", "Does not exist.")
        return {"id": thing_id}

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("unexpected")

    settings = ServiceSettings(service_name=service, service_token=TOKEN, data_dir=tmp_path)
    app = build_app(settings, title="t", migrations_dir=tmp_path, public_routers=[router])
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "raw-id-style.css").write_text("body {}")
    app.mount("/static", StaticFiles(directory=tmp_path / "static"), name="static")
    return TestClient(app, raise_server_exceptions=False)


def test_requests_are_counted_by_route_template_never_by_raw_path(
    client: TestClient, service: str,
) -> None:
    for thing_id in ("raw-id-one", "raw-id-two", "raw-id-three", "missing"):
        client.get(f"/things/{thing_id}")
    client.get("/no/such/path/raw-id-four")
    ok = {"service": service, "method": "GET", "route": "/things/{thing_id}"}
    assert _value("afinador_http_requests_total", **ok, status="200") == 3
    assert _value("afinador_http_requests_total", **ok, status="404") == 1
    assert _value("afinador_http_request_duration_seconds_count", **ok) == 4
    assert _value("afinador_http_requests_total", service=service, method="GET",
                  route=metrics.UNMATCHED, status="404") == 1
    scraped = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
    assert "raw-id" not in scraped


def test_mounted_static_files_share_one_label(client: TestClient, service: str) -> None:
    assert client.get("/static/raw-id-style.css").status_code == 200
    assert client.get("/static/raw-id-gone.css").status_code == 404
    mount = {"service": service, "method": "GET", "route": "/static/{path}"}
    assert _value("afinador_http_requests_total", **mount, status="200") == 1
    assert _value("afinador_http_requests_total", **mount, status="404") == 1


def test_an_unhandled_exception_is_counted_as_a_500(client: TestClient, service: str) -> None:
    assert client.get("/boom").status_code == 500
    assert _value("afinador_http_requests_total", service=service, method="GET",
                  route="/boom", status="500") == 1
    assert _value("afinador_http_unhandled_exceptions_total", service=service,
                  route="/boom", exception="RuntimeError") == 1


def test_metrics_need_the_service_token_and_speak_prometheus(client: TestClient,
                                                             service: str) -> None:
    refused = client.get("/metrics")
    assert refused.status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    answer = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(answer.text)}
    requests = families["afinador_http_requests"]
    assert any(s.labels == {"service": service, "method": "GET", "route": "/metrics",
                            "status": "401"} and s.value == 2 for s in requests.samples)


def test_metrics_route_is_in_the_openapi_document(client: TestClient) -> None:
    assert "/metrics" in client.get("/openapi.json").json()["paths"]


def test_helpers_set_and_count_their_metrics() -> None:
    metrics.set_outbox_state("reward", pending=7, rejected=2, oldest_pending_seconds=90)
    assert _value("afinador_outbox_backlog", target="reward") == 7
    assert _value("afinador_outbox_rejected", target="reward") == 2
    assert _value("afinador_outbox_oldest_pending_seconds", target="reward") == 90
    metrics.set_outbox_state("reward", pending=0, rejected=2, oldest_pending_seconds=-1)
    assert _value("afinador_outbox_oldest_pending_seconds", target="reward") == 0

    before = _value("afinador_outbox_delivered_total", target="optimizer")
    metrics.count_outbox_delivered("optimizer", 5)
    assert _value("afinador_outbox_delivered_total", target="optimizer") == before + 5

    metrics.set_job_queue_depth(queued=4, running=2)
    assert (_value("afinador_job_queue_depth", state="queued"),
            _value("afinador_job_queue_depth", state="running")) == (4, 2)

    before = _value("afinador_gp_model_cache_total", result="hit")
    metrics.count_gp_cache(hit=True)
    assert _value("afinador_gp_model_cache_total", result="hit") == before + 1

    before = _value("afinador_reward_training_runs_total", outcome="rejected")
    metrics.record_reward_training("rejected", 3.5)
    assert _value("afinador_reward_training_runs_total", outcome="rejected") == before + 1

    before = _value("afinador_rating_stars_count", mode="surfaces")
    total = _value("afinador_rating_stars_sum", mode="surfaces")
    metrics.observe_ratings([("surfaces", 4), ("surfaces", 2)])
    assert _value("afinador_rating_stars_count", mode="surfaces") == before + 2
    assert _value("afinador_rating_stars_sum", mode="surfaces") == total + 6


def test_provider_timer_counts_failures_with_their_retryability() -> None:
    class Flaky(Exception):
        retryable = True

    provider = "leonardo"
    failed = _value("afinador_provider_failures_total", provider=provider, retryable="true")
    ok = _value("afinador_provider_generation_seconds_count", provider=provider, outcome="ok")
    with metrics.time_provider_generation(provider):
        pass
    with pytest.raises(Flaky), metrics.time_provider_generation(provider):
        raise Flaky
    assert _value("afinador_provider_failures_total", provider=provider,
                  retryable="true") == failed + 1
    assert _value("afinador_provider_generation_seconds_count", provider=provider,
                  outcome="ok") == ok + 1


def test_gp_fit_timer_records_completed_fits_only() -> None:
    before = _value("afinador_gp_fit_seconds_count")
    with metrics.time_gp_fit():
        pass
    with pytest.raises(ValueError), metrics.time_gp_fit():
        raise ValueError("singular matrix")
    assert _value("afinador_gp_fit_seconds_count") == before + 1


@pytest.mark.parametrize("call", [
    lambda: metrics.set_outbox_state("gateway", pending=1, rejected=0),
    lambda: metrics.count_ab_decision("exp-123"),
    lambda: metrics.record_reward_training("ok", 1.0),
    lambda: metrics.observe_ratings([("kitchen", 3)]),
])
def test_label_values_outside_their_set_are_refused(call: object) -> None:
    with pytest.raises(ValueError):
        call()  # type: ignore[operator]
