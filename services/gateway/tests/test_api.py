"""Gateway API on SQLite and PostgreSQL with its sibling services down (degraded mode)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from services.common.testing import make_test_image, wait_for
from services.gateway.main import create_app
from services.gateway.settings import GatewaySettings
from services.gateway.testing import sign_in_with_token


def create(gateway: TestClient, mode: str = "structure") -> dict:
    answer = gateway.post("/api/enhance/train", data={"mode": mode},
                          files={"image": ("room.png", make_test_image(), "image/png")})
    assert answer.status_code == 202, answer.text
    return answer.json()


def wait_generated(gateway: TestClient, experiment_id: str) -> dict:
    def done() -> dict | None:
        body = gateway.get(f"/api/experiments/{experiment_id}").json()
        return body if body["status"] != "generating" else None

    return wait_for(done, 30, "generation")


def test_experiment_runs_with_every_sibling_down(gateway: TestClient) -> None:
    created = create(gateway)
    for option in created["options"]:
        assert option["suggestion_source"] == "fallback_random"
        assert option["prompt_version"] == "v1.0.0"  # from prompts/versions when evolution is down
    body = wait_generated(gateway, created["experiment_id"])
    assert [o["status"] for o in body["options"]] == ["succeeded", "succeeded"]
    image = gateway.get(body["options"][0]["url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"

    rated = gateway.post("/api/train/rate", json={
        "experiment_id": created["experiment_id"],
        "ratings": [{"option": "A", "rating": 3, "comments": "plano"},
                    {"option": "B", "rating": 4}],
        "rated_by": "ana"})
    assert rated.status_code == 200, rated.text
    result = rated.json()
    assert result["success"] is True and result["ml_updated"] is False
    assert result["samples_collected"] == 2 and result["current_best_rating"] == 4.0
    assert result["phase_1_complete"] is True  # the seeds' rule: best ≥ 4.0

    status = gateway.get("/api/train/status").json()
    assert status["pending_deliveries"] == {"optimizer": 2, "evolution": 2, "reward": 2}
    assert status["services"] == {"optimizer": False, "evolution": False, "reward": False}
    history = gateway.get("/api/train/history", params={"min_rating": 4}).json()
    assert [o["rating"] for e in history["experiments"] for o in e["options"]] == [4.0]
    assert history["analytics"]["total_samples"] == 2


def test_invalid_ratings_save_nothing(gateway: TestClient) -> None:
    created = create(gateway)
    wait_generated(gateway, created["experiment_id"])
    cases: list[tuple[dict[str, Any], int]] = [
        ({"ratings": [{"option": "A", "rating": 0}]}, 422),
        ({"ratings": [{"option": "A", "rating": 4.5}]}, 422),
        ({"ratings": [{"option": "C", "rating": 4}]}, 422),
        ({"ratings": [{"option": "A", "rating": 4}, {"option": "A", "rating": 5}]}, 422),
        ({"ratings": []}, 422),
        ({"ratings": [{"option": "A", "rating": 4}], "experiment_id": "exp_nope"}, 404),
    ]
    for body, expected in cases:
        payload = {"experiment_id": created["experiment_id"], "rated_by": "ana", **body}
        answer = gateway.post("/api/train/rate", json=payload)
        assert answer.status_code == expected, (body, answer.text)
        assert answer.json()["error"]["message"]  # a sentence, in Spanish
    status = gateway.get("/api/train/status").json()
    assert status["phase_1"]["samples_collected"] == 0
    assert status["pending_deliveries"] == {}


def test_a_variant_that_is_not_ready_cannot_be_rated(gateway: TestClient) -> None:
    created = create(gateway)
    variant_id = created["options"][1]["variant_id"]
    cancelled = gateway.post(f"/api/variants/{variant_id}/cancel")
    if cancelled.status_code == 409:  # it finished before we could cancel it
        return
    assert cancelled.json()["options"][1]["status"] == "cancelled"
    wait_generated(gateway, created["experiment_id"])
    refused = gateway.post("/api/train/rate", json={
        "experiment_id": created["experiment_id"],
        "ratings": [{"option": "A", "rating": 5}, {"option": "B", "rating": 1}]})
    assert refused.status_code == 409 and "B" in refused.json()["detail"]
    only_a = gateway.post("/api/train/rate", json={
        "experiment_id": created["experiment_id"], "ratings": [{"option": "A", "rating": 5}]})
    assert only_a.status_code == 200  # a failed/cancelled variant does not block the other
    retried = gateway.post(f"/api/variants/{variant_id}/retry")
    assert retried.status_code == 200
    assert retried.json()["options"][1]["status"] in ("queued", "running", "succeeded")


def assert_writable_at_once(database_url: str) -> None:
    import sqlite3

    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return  # PostgreSQL's locks end with their connection
    connection = sqlite3.connect(str(url.database), timeout=0)
    try:
        connection.execute("BEGIN IMMEDIATE")  # fails at once if another writer holds on
        connection.execute("ROLLBACK")
    finally:
        connection.close()


def test_everything_survives_a_restart(gateway_settings: GatewaySettings) -> None:
    with TestClient(create_app(gateway_settings)) as gateway:
        sign_in_with_token(gateway, "ana")
        created = create(gateway)
        wait_generated(gateway, created["experiment_id"])
        gateway.post("/api/train/rate", json={
            "experiment_id": created["experiment_id"], "ratings": [{"option": "A", "rating": 2}]})
    # Shutdown let the deliveries still in flight finish their database step: nothing
    # holds SQLite's write lock for the next process (it once did, for minutes).
    assert_writable_at_once(gateway_settings.database_url)
    with TestClient(create_app(gateway_settings)) as gateway:
        sign_in_with_token(gateway, "bea")
        body = gateway.get(f"/api/experiments/{created['experiment_id']}").json()
        assert body["status"] == "rated" and body["options"][0]["rating"] == 2
        assert gateway.get(body["options"][1]["url"]).status_code == 200
        assert gateway.get("/api/train/status").json()["pending_deliveries"]["optimizer"] == 1


def test_pages_render_in_both_languages(gateway: TestClient) -> None:
    spanish = gateway.get("/train")
    assert spanish.status_code == 200 and "Sube un render" in spanish.text
    english = gateway.get("/train?lang=en")
    assert "Upload a render" in english.text and english.cookies.get("lang") == "en"
    assert "Todavía no hay puntuaciones" in gateway.get("/train/history?lang=es").text
    panel = gateway.get("/train/status-panel?lang=es")
    assert "sin respuesta" in panel.text  # siblings are down in this fixture


def test_page_upload_errors_are_shown_in_the_alert_area(gateway: TestClient) -> None:
    # (the rating page's script moves it next to the file field: data-error-target)
    answer = gateway.post("/train/upload", data={"mode": "structure"},
                          files={"image": ("x.jpg", b"not an image", "image/jpeg")})
    assert answer.status_code == 415
    assert answer.headers["HX-Retarget"] == "#flash"
    assert "no es una imagen válida" in answer.text


def test_images_live_in_s3_when_configured(gateway_settings: GatewaySettings, s3_endpoint: str,
                                           aws_env: None) -> None:
    from services.common.testing import s3_bucket

    bucket = s3_bucket(s3_endpoint, f"gw-{abs(hash(gateway_settings.database_url)) % 10**8}")
    settings = gateway_settings.model_copy(update={
        "storage_url": f"s3://{bucket}/afinador", "s3_endpoint_url": s3_endpoint,
        "aws_region": "us-east-1"})
    with TestClient(create_app(settings)) as gateway:
        sign_in_with_token(gateway)
        created = create(gateway)
        body = wait_generated(gateway, created["experiment_id"])
        assert body["options"][0]["status"] == "succeeded"
        assert gateway.get(body["options"][0]["url"]).content[:2] == b"\xff\xd8"
    import boto3

    keys = [o["Key"] for o in boto3.client("s3", endpoint_url=s3_endpoint,
                                           region_name="us-east-1")
            .list_objects_v2(Bucket=bucket)["Contents"]]
    assert sum(k.startswith("afinador/originals/") for k in keys) == 1
    assert sum(k.startswith("afinador/variants/") for k in keys) == 2
    assert not (settings.data_dir / "blobs").exists()  # nothing written locally


def test_progress_is_pushed_as_server_sent_events(gateway: TestClient) -> None:
    import json

    created = create(gateway)
    events: list[tuple[str, str]] = []
    with gateway.stream("GET", f"/api/experiments/{created['experiment_id']}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        name = ""
        for line in stream.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, line.removeprefix("data: ")))
                if name == "done":
                    break
    assert events[-1][0] == "done"
    snapshots = [json.loads(data) for name, data in events if name == "experiment"]
    assert snapshots, "no experiment event before done"
    assert [o["status"] for o in snapshots[-1]["options"]] == ["succeeded", "succeeded"]
    assert gateway.get("/api/experiments/exp_unknown/events").status_code == 404
