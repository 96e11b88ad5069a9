"""Phase 2 over real HTTP: ratings train the reward service's model, which passes its
validation gate, and the gateway then switches to best-of-N with active learning."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from scripts.run import Cluster
from services.common.testing import make_test_image
from tests.conftest import internal_headers, make_cluster, trainer_headers, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def small_data_cluster(tmp_path: Path) -> Iterator[Cluster]:
    running = make_cluster(tmp_path)
    running.env.update({
        # The held-out split hashes random rating ids: with 28 ratings and 40 % held out,
        # fewer than 3 held-out or 8 training ratings happens about once in 3,000 runs
        # (at the default 20 % it was about once in 16).
        "REWARD_MIN_TRAIN": "8", "REWARD_MIN_HOLDOUT": "3", "REWARD_HOLDOUT_FRACTION": "0.4",
        "REWARD_AUTO_RETRAIN": "false",
        "GATEWAY_BEST_OF_N_CANDIDATES": "4",
        # No prompt evolution here: an A/B test would (rightly) keep experiments paired.
        "EVOLUTION_EVOLVE_EVERY": "1000", "EVOLUTION_PLATEAU_SAMPLES": "1000",
        "EVOLUTION_LOW_AFTER": "1000"})
    running.start_all()
    try:
        running.wait_healthy(deadline_s=90)
        yield running
    finally:
        running.stop_all()


def brightness_rating(image: bytes) -> int:
    """A consistent 'trainer' who likes bright images: learnable from the features."""
    luminance = np.asarray(Image.open(io.BytesIO(image)).convert("L"), dtype=float).mean()
    return int(np.clip(round(1 + 4 * (luminance - 110) / 90), 1, 5))


def run_experiment(client: httpx.Client, gateway: str, seed: int) -> dict:
    created = client.post(gateway + "/api/enhance/train", data={"mode": "structure"},
                          files={"image": ("r.jpg", make_test_image(256, 192, "JPEG", seed=seed),
                                           "image/jpeg")}).json()

    def ready() -> dict | None:
        body = client.get(f"{gateway}/api/experiments/{created['experiment_id']}").json()
        return body if body["status"] == "ready" else None

    return wait_for(ready, 60, "variants")


def test_ratings_train_a_validated_model_and_enable_best_of_n(small_data_cluster: Cluster
                                                              ) -> None:
    cluster = small_data_cluster
    gateway, reward = cluster.url("gateway"), cluster.url("reward")
    with httpx.Client(timeout=120, headers=trainer_headers(cluster)) as client:
        for seed in range(14):
            body = run_experiment(client, gateway, seed)
            assert body["strategy"] == "pair"
            ratings = [{"option": o["option"],
                        "rating": brightness_rating(client.get(gateway + o["url"]).content)}
                       for o in body["options"]]
            answer = client.post(gateway + "/api/train/rate",
                                 json={"experiment_id": body["experiment_id"],
                                       "ratings": ratings})
            assert answer.status_code == 200
        wait_for(lambda: client.get(reward + "/ml/status", headers=internal_headers())
                 .json()["observations"] == 28, 60, "all ratings to reach the reward service")

        answer = client.post(reward + "/ml/train", headers=internal_headers())
        assert answer.status_code == 202, answer.text  # trains in the background
        run_url = reward + answer.json()["status_url"]
        run = wait_for(lambda: (r := client.get(run_url, headers=internal_headers()).json())
                       ["status"] not in ("queued", "running") and r, 120, "the training run")
        assert run["status"] == "succeeded", run
        trained = run["result"]
        assert trained["activated"], trained  # beat the constant predictor on held-out data
        status = client.get(gateway + "/api/train/status").json()["phase_2"]
        assert status["ready_for_inference"] and status["model_version"] == trained["version"]

        # The gateway re-reads the reward model's readiness at most every 30 s.
        body = wait_for(lambda: (b := run_experiment(client, gateway, 99))["strategy"]
                        == "best_of_n" and b, 90, "a best-of-N experiment")
        assert body["candidates_total"] == 4
        # Blind rating: which one is shown as A is random; both reasons are there.
        a, b = sorted(body["options"], key=lambda o: o["selection_reason"] != "best_predicted")
        assert (a["selection_reason"], b["selection_reason"]) == ("best_predicted",
                                                                  "most_uncertain")
        assert {a["option"], b["option"]} == {"A", "B"}
        assert a["predicted_rating"] is not None and b["predicted_std"] is not None
        assert a["reward_model_version"] == trained["version"]
