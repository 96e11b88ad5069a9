"""End to end over real HTTP: the four services as processes, a real image, real ratings."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scripts.run import SERVICES, Cluster
from services.common.testing import make_test_image, postgres_database
from tests.conftest import counts, make_cluster, trainer_headers, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    """The cluster on fresh SQLite files, and on fresh PostgreSQL databases when available."""
    databases: dict[str, str] = {}
    cleanups = []
    if request.param == "postgresql":
        if not os.environ.get("TEST_POSTGRES_URL"):
            pytest.skip("PostgreSQL case skipped: TEST_POSTGRES_URL is not set")
        for service in SERVICES:
            generator = postgres_database()
            databases[service] = next(generator)
            cleanups.append(generator)
    running = make_cluster(tmp_path, databases)
    try:
        running.start_all()
        running.wait_healthy(deadline_s=90)
        yield running
    finally:
        running.stop_all()
        for generator in cleanups:
            next(generator, None)


def upload(client: httpx.Client, cluster: Cluster, mode: str = "structure") -> dict:
    answer = client.post(cluster.url("gateway") + "/api/enhance/train",
                         files={"image": ("room.jpg", make_test_image(640, 480, "JPEG"),
                                          "image/jpeg")},
                         data={"mode": mode, "project_id": "p-1"})
    assert answer.status_code == 202, answer.text
    return answer.json()


def wait_ready(client: httpx.Client, cluster: Cluster, experiment_id: str) -> dict:
    def ready() -> dict | None:
        body = client.get(f"{cluster.url('gateway')}/api/experiments/{experiment_id}").json()
        return body if all(o["status"] == "succeeded" for o in body["options"]) else None

    return wait_for(ready, 60, "both variants to be generated")


def test_full_training_loop(backend_cluster: Cluster) -> None:
    cluster = backend_cluster
    gateway = cluster.url("gateway")
    with httpx.Client(timeout=30, headers=trainer_headers(cluster)) as client:
        created = upload(client, cluster)
        assert [o["option"] for o in created["options"]] == ["A", "B"]
        for option in created["options"]:
            assert option["status"] in ("queued", "running", "succeeded")
            assert option["parameters"]["api"] == "local"
            assert 0.1 <= option["parameters"]["strength"] <= 0.5
            assert option["prompt_version"] == "v1.0.0"
            # The first 10 ratings follow the optimizer's space-filling start-up design.
            assert option["suggestion_source"] == "random"

        done = wait_ready(client, cluster, created["experiment_id"])
        for option in done["options"]:
            image = client.get(gateway + option["url"])
            assert image.status_code == 200 and image.content[:2] == b"\xff\xd8"
        assert client.get(gateway + done["original_url"]).status_code == 200

        before = counts(cluster)
        rated = client.post(gateway + "/api/train/rate", json={
            "experiment_id": created["experiment_id"],
            "ratings": [{"option": "A", "rating": 4, "comments": "buena luz, algo plano"},
                        {"option": "B", "rating": 2, "comments": "structure changed"}],
            "rated_by": "ana@example.com",
        })
        assert rated.status_code == 200, rated.text
        body = rated.json()
        # ml_updated says whether the optimizer acknowledged within the short wait
        # (GATEWAY_RATE_DELIVERY_TIMEOUT_SECONDS); either way the message says so.
        assert body["success"]
        assert body["ml_updated"] or "en cuanto responda" in body["message"]
        assert body["samples_collected"] == 2
        assert body["current_best_rating"] == 4.0

        after = wait_for(lambda: (c := counts(cluster))["reward"] == before["reward"] + 2 and c,
                         30, "the reward service to receive both ratings")
        assert after["optimizer"] == before["optimizer"] + 2
        assert after["evolution"]["v1.0.0"] == before["evolution"].get("v1.0.0", 0) + 2

        status = client.get(gateway + "/api/train/status").json()
        assert status["phase_1"]["samples_collected"] == 2
        assert status["phase_1"]["best_rating"] == 4.0
        assert status["phase_1"]["convergence"] == pytest.approx(2 / 50 * 0.6 + 0.4)
        assert status["prompt_evolution"]["current_version"] == "v1.0.0"
        assert status["services"] == {"optimizer": True, "evolution": True, "reward": True}
        assert status["phase_2"]["training_samples"] == 2

        history = client.get(gateway + "/api/train/history").json()
        assert history["analytics"]["total_samples"] == 2
        # The rater is the API token's owner, not the name in the body.
        assert {o["rated_by"] for o in history["experiments"][0]["options"]} == {"lucia"}
        assert httpx.get(gateway + "/api/train/history").status_code == 401  # anonymous
        assert history["experiments"][0]["experiment_id"] == created["experiment_id"]

        # Rating the same options again is refused and changes nothing.
        again = client.post(gateway + "/api/train/rate", json={
            "experiment_id": created["experiment_id"],
            "ratings": [{"option": "A", "rating": 5}], "rated_by": "ana"})
        assert again.status_code == 409
        assert counts(cluster) == after


def test_bad_input_is_refused_and_nothing_is_saved(cluster: Cluster) -> None:
    gateway = cluster.url("gateway")
    with httpx.Client(timeout=30, headers=trainer_headers(cluster)) as client:
        created = upload(client, cluster)
        wait_ready(client, cluster, created["experiment_id"])
        experiment_id = created["experiment_id"]

        out_of_range = client.post(gateway + "/api/train/rate", json={
            "experiment_id": experiment_id,
            "ratings": [{"option": "A", "rating": 4}, {"option": "B", "rating": 6}]})
        assert out_of_range.status_code == 422
        assert "1 a 5" in out_of_range.json()["detail"]

        unknown = client.post(gateway + "/api/train/rate", json={
            "experiment_id": "exp_missing", "ratings": [{"option": "A", "rating": 3}]})
        assert unknown.status_code == 404
        assert "exp_missing" in unknown.json()["detail"]
        assert client.get(gateway + "/api/experiments/exp_missing").status_code == 404

        html = client.post(gateway + "/api/enhance/train", data={"mode": "structure"},
                           files={"image": ("room.jpg", b"<html><body>hola</body></html>",
                                            "image/jpeg")})
        assert html.status_code == 415
        assert "JPEG, PNG o WebP" in html.json()["detail"]

        huge = client.post(gateway + "/api/enhance/train", data={"mode": "structure"},
                           files={"image": ("big.png", b"\x89PNG" + b"\0" * (21 * 1024 * 1024),
                                            "image/png")})
        assert huge.status_code == 413

        bad_mode = client.post(gateway + "/api/enhance/train", data={"mode": "cubism"},
                               files={"image": ("r.png", make_test_image(), "image/png")})
        assert bad_mode.status_code == 422

        status = client.get(gateway + "/api/train/status").json()
        assert status["phase_1"]["samples_collected"] == 0
        history = client.get(gateway + "/api/train/history").json()
        assert history["analytics"]["total_samples"] == 0
        assert counts(cluster)["optimizer"] == 0


def test_ratings_reach_a_service_that_was_down(cluster: Cluster) -> None:
    """Optimizer stopped: experiments still work (random parameters), and the rating
    arrives once it is back, counted exactly once."""
    gateway = cluster.url("gateway")
    cluster.stop("optimizer")
    with httpx.Client(timeout=30, headers=trainer_headers(cluster)) as client:
        created = upload(client, cluster)
        assert {o["suggestion_source"] for o in created["options"]} == {"fallback_random"}
        wait_ready(client, cluster, created["experiment_id"])
        rated = client.post(gateway + "/api/train/rate", json={
            "experiment_id": created["experiment_id"],
            "ratings": [{"option": "A", "rating": 3}, {"option": "B", "rating": 5}]}).json()
        assert rated["success"] and not rated["ml_updated"]
        status = client.get(gateway + "/api/train/status").json()
        assert status["services"]["optimizer"] is False
        assert status["pending_deliveries"].get("optimizer") == 2

        cluster.start("optimizer")
        cluster.wait_healthy(("optimizer",))
        wait_for(lambda: client.get(gateway + "/api/train/status").json()
                 ["pending_deliveries"].get("optimizer", 0) == 0,
                 90, "the outbox to deliver to the restarted optimizer")
        assert counts(cluster)["optimizer"] == 2


def test_a_manual_phase_1_stop_at_the_optimizer_shows_on_the_status(cluster: Cluster) -> None:
    from tests.conftest import internal_headers

    with httpx.Client(timeout=30, headers=trainer_headers(cluster)) as client:
        before = client.get(cluster.url("gateway") + "/api/train/status").json()["phase_1"]
        assert before["active"] is True and before["complete_reason"] is None
        stopped = client.post(cluster.url("optimizer") + "/ml/phase_1/stop",
                              headers=internal_headers(),
                              json={"changed_by": "admin", "note": "good enough"})
        assert stopped.status_code == 200
        after = client.get(cluster.url("gateway") + "/api/train/status").json()["phase_1"]
        assert after["active"] is False and after["complete_reason"] == "manual"
        panel = client.get(cluster.url("gateway") + "/train/status-panel?lang=es").text
        assert "detenida por un administrador" in panel
