"""Suggest latency through the HTTP API at 50, 200, 1,000 and 2,000 stored ratings.

For each size a fresh service (default settings) is filled with simulated ratings
(two variants per experiment, three trainers). Then, repeatedly, one new rating is
stored and ``POST /ml/suggest_parameters`` is timed twice: *cold* (the observation
set changed; the model is refitted in the background and the suggestion waits for
it, at most ``OPTIMIZER_FIT_WAIT_SECONDS``: what a trainer waits for after rating)
and *warm* (the model is current). ``GET /ml/status`` is timed after that (it
shares the fitted model).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from bench._optimizer_http import optimizer_service
from bench._optimizer_sim import PROVIDERS, make_world
from services.common.parameter_space import to_native
from services.optimizer.space import from_unit

SIZES = (50, 200, 1000, 2000)
BODY = {
    "mode": "structure",
    "num_suggestions": 2,
    "providers": list(PROVIDERS),
    "prompt_version": "1.0.0",
}


def _results(world: Any, start: int, count: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    out = []
    for i in range(start, start + count):
        t = i // 2
        provider = str(rng.choice(PROVIDERS))
        u = rng.uniform(size=3)
        out.append(
            {
                "rating_id": f"r{i}",
                "experiment_id": f"e{t}",
                "image_id": f"img{t}",
                "rater": world.rounds[t % len(world.rounds)].trainer.name,
                "parameters": to_native(provider, from_unit(u)),
                "rating": world.rate(t % len(world.rounds), i % 2, provider, u),
                "mode": "structure",
                "prompt_version": "1.0.0",
            }
        )
    return out


def _pct(values: list[float]) -> dict[str, float]:
    ms = np.array(values) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1),
        "max_ms": round(float(ms.max()), 1),
        "n": len(values),
    }


def measure(sizes: tuple[int, ...] = SIZES, repeats: int = 20) -> dict[str, Any]:
    """Cold/warm suggest and status latency (p50/p95, ms) at each size."""
    world = make_world("broad", 1234, 200)
    rng = np.random.default_rng(7)
    out: dict[str, Any] = {}
    for size in sizes:
        with optimizer_service(seed=1) as client:
            for start in range(0, size, 1000):
                batch = _results(world, start, min(1000, size - start), rng)
                client.post("/ml/update_model", json={"results": batch}).raise_for_status()
            client.post("/ml/suggest_parameters", json=BODY).raise_for_status()  # warm imports
            cold, warm, status = [], [], []
            n = size
            for _ in range(repeats if size <= 200 else max(repeats // 2, 8)):
                batch = _results(world, n, 1, rng)
                client.post("/ml/update_model", json={"results": batch}).raise_for_status()
                n += 1
                for bucket in (cold, warm):
                    t0 = time.perf_counter()
                    client.post("/ml/suggest_parameters", json=BODY).raise_for_status()
                    bucket.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                client.get("/ml/status").raise_for_status()
                status.append(time.perf_counter() - t0)
        out[str(size)] = {
            "suggest_cold": _pct(cold),
            "suggest_warm": _pct(warm),
            "status_after_suggest": _pct(status),
        }
        print(
            f"latency n={size:5d}: suggest cold p50 {out[str(size)]['suggest_cold']['p50_ms']:.0f} "
            f"p95 {out[str(size)]['suggest_cold']['p95_ms']:.0f} ms; warm p95 "
            f"{out[str(size)]['suggest_warm']['p95_ms']:.0f} ms",
            flush=True,
        )
    return out
