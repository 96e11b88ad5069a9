"""Phase 2: N candidates, the reward model picks the best and the most uncertain."""

from __future__ import annotations

import hashlib
import re

import httpx
from fastapi.testclient import TestClient

from services.common.http import InternalClient
from services.common.testing import make_test_image, wait_for
from services.gateway import selection
from services.gateway.main import create_app
from services.gateway.settings import GatewaySettings
from services.gateway.testing import sign_in_with_token


def fake_reward(ready: bool) -> tuple[httpx.MockTransport, list[int]]:
    """A reward service speaking its HTTP contract; scores derive from image bytes."""
    batch_sizes: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/ml/status":
            return httpx.Response(200, json={
                "observations": 300, "ready_for_inference": ready, "model": "m7",
                "model_version": "m7", "validated": ready,
                "heldout_metrics": {"n": 60, "mae": 0.45, "within_05": 0.61}})
        if request.url.path == "/ml/predict_rating":
            body = request.read()
            found = re.search(rb"boundary=([^;]+)", request.headers["content-type"].encode())
            assert found is not None
            boundary = found.group(1)
            parts = [p for p in body.split(b"--" + boundary)
                     if b'name="images"' in p]
            batch_sizes.append(len(parts))
            predictions = []
            for i, part in enumerate(parts):
                digest = hashlib.sha256(part).digest()
                predictions.append({"index": i, "mean": 1 + 4 * digest[0] / 255,
                                    "std": 0.1 + digest[1] / 255, "image_sha256": "x"})
            return httpx.Response(200, json={"model_version": "m7", "validated": True,
                                             "predictions": predictions})
        return httpx.Response(404, json={"detail": "no"})

    return httpx.MockTransport(handler), batch_sizes


def start(settings: GatewaySettings, ready: bool) -> tuple[TestClient, list[int]]:
    selection.forget_readiness()
    client = TestClient(create_app(settings))
    client.__enter__()
    sign_in_with_token(client)
    transport, sizes = fake_reward(ready)
    ctx = client.app.state.context  # type: ignore[attr-defined]
    ctx.clients.reward = InternalClient("reward", "http://reward.test", "t", transport=transport)
    return client, sizes


def test_best_of_n_shows_the_best_and_the_most_uncertain(gateway_settings: GatewaySettings
                                                         ) -> None:
    gateway, batches = start(gateway_settings.model_copy(update={"best_of_n_candidates": 5,
                                                                 "shuffle_options": True}),
                             ready=True)
    try:
        created = gateway.post("/api/enhance/train", data={"mode": "surfaces"},
                               files={"image": ("r.png", make_test_image(), "image/png")}).json()
        assert created["strategy"] == "best_of_n" and created["candidates_total"] == 5
        assert created["options"] == []  # nothing to show until the model has chosen

        def chosen() -> dict | None:
            body = gateway.get(f"/api/experiments/{created['experiment_id']}").json()
            return body if body["status"] == "ready" else None

        body = wait_for(chosen, 60, "the reward model to choose two candidates")
        # Blind rating: which of the two is shown as A is random; the reasons are not.
        a, b = sorted(body["options"], key=lambda o: o["selection_reason"] != "best_predicted")
        assert (a["selection_reason"], b["selection_reason"]) == ("best_predicted",
                                                                  "most_uncertain")
        assert {a["option"], b["option"]} == {"A", "B"}
        assert batches == [5]  # all candidates scored in one batched call
        assert a["predicted_rating"] >= b["predicted_rating"]
        assert a["reward_model_version"] == "m7"

        rated = gateway.post("/api/train/rate", json={
            "experiment_id": created["experiment_id"],
            "ratings": [{"option": a["option"], "rating": round(a["predicted_rating"])},
                        {"option": b["option"], "rating": 1}]})
        assert rated.status_code == 200
        live = gateway.get("/api/train/status").json()["phase_2"]
        assert live["live_accuracy"]["n"] == 2
        assert live["ready_for_inference"] is True and live["model_version"] == "m7"
        assert live["model_accuracy"] == 0.61
        expected_mae = (abs(a["predicted_rating"] - round(a["predicted_rating"]))
                        + abs(b["predicted_rating"] - 1)) / 2
        assert live["live_accuracy"]["mae"] == round(expected_mae, 3)
    finally:
        gateway.__exit__(None, None, None)


def test_without_a_validated_model_experiments_stay_pairs(gateway_settings: GatewaySettings
                                                         ) -> None:
    gateway, batches = start(gateway_settings, ready=False)
    try:
        created = gateway.post("/api/enhance/train", data={"mode": "structure"},
                               files={"image": ("r.png", make_test_image(), "image/png")}).json()
        assert created["strategy"] == "pair"
        assert [o["option"] for o in created["options"]] == ["A", "B"]
        assert batches == []
    finally:
        gateway.__exit__(None, None, None)


def test_candidate_count_respects_the_cost_cap(gateway_settings: GatewaySettings) -> None:
    settings = gateway_settings.model_copy(update={"best_of_n_candidates": 6,
                                                   "best_of_n_max_cost_usd": 0.10})
    assert selection.candidate_count(settings, [0.0]) == 6  # free provider: no cap
    assert selection.candidate_count(settings, [0.0, 0.03]) == 3  # 0.10 / 0.03
