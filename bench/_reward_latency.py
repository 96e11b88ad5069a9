"""Latency of ``POST /ml/predict_rating`` for a best-of-N batch of 6 on the CPU.

Trains a model through the real API on 120 BIQ2021 photos (ratings rounded to whole
stars), then scores batches of six unseen 512×512 JPEGs: cold (features computed)
and warm (the same six again: features from the cache), without and with an
original render. In-process ASGI client, SQLite, no network.

    .venv/bin/python -m bench._reward_latency   # writes bench/results/reward.latency.json
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from bench._reward_data import DATASET, REPO, read_scores
from services.reward.main import create_app
from services.reward.settings import RewardSettings

RESULTS = REPO / "bench" / "results" / "reward.latency.json"


def main() -> None:
    images, _, y = read_scores()
    tmp = Path(tempfile.mkdtemp(prefix="reward-latency-"))
    settings = RewardSettings(database_url=f"sqlite+aiosqlite:///{tmp / 'r.db'}", data_dir=tmp)
    headers = {"Authorization": f"Bearer {settings.service_token}"}
    order = np.random.default_rng(0).permutation(len(images))
    train, fresh = order[:120], order[120:]
    with TestClient(create_app(settings), headers=headers) as client:
        for i in train:
            data = (DATASET / "images" / images[i]).read_bytes()
            form = {
                "rating_id": f"biq-{i}",
                "rating": str(int(np.clip(round(y[i]), 1, 5))),
                "experiment_id": "bench",
                "option": "A",
                "rater": "biq",
            }
            r = client.post(
                "/ml/observe", data=form, files={"image": ("i.jpg", data, "image/jpeg")}
            )
            r.raise_for_status()
        trained = client.post("/ml/train").json()
        print(
            f"trained {trained['version']} validated={trained['validated']} "
            f"(held-out MAE {trained['metrics']['mae']:.3f}, n_train {trained['n_train']})"
        )

        def batch(k: int) -> list[bytes]:
            return [(DATASET / "images" / images[j]).read_bytes() for j in fresh[6 * k : 6 * k + 6]]

        def call(blobs: list[bytes], original: bytes | None = None) -> float:
            files = [("images", (f"c{n}.jpg", b, "image/jpeg")) for n, b in enumerate(blobs)]
            if original is not None:
                files.append(("original", ("o.jpg", original, "image/jpeg")))
            t0 = time.perf_counter()
            r = client.post("/ml/predict_rating", files=files)
            elapsed = time.perf_counter() - t0
            r.raise_for_status()
            assert len(r.json()["predictions"]) == 6
            return elapsed

        cold, warm, cold_orig = [], [], []
        for k in range(10):
            blobs = batch(k)
            cold.append(call(blobs))
            warm.append(call(blobs))
        for k in range(10, 20):
            blobs = batch(k)
            cold_orig.append(call(blobs[1:] + blobs[:1], original=blobs[0]))

    def summary(xs: list[float]) -> dict[str, float]:
        return {
            "median_ms": float(np.median(xs) * 1e3),
            "p95_ms": float(np.percentile(xs, 95) * 1e3),
        }

    result = {
        "command": ".venv/bin/python -m bench._reward_latency",
        "n": 6,
        "model": {k: trained[k] for k in ("version", "kind", "feature_set", "n_train")},
        "cold": summary(cold),
        "warm_cached": summary(warm),
        "cold_with_original": summary(cold_orig),
        "repeats": 10,
    }
    for key in ("cold", "warm_cached", "cold_with_original"):
        print(
            f"N=6 {key:<20} median {result[key]['median_ms']:.0f} ms, "
            f"p95 {result[key]['p95_ms']:.0f} ms"
        )
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
