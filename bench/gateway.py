"""Gateway end-to-end benchmark (`python -m bench.gateway`).

Starts the four services as real processes (fresh SQLite databases, one trainer with
an API token), then times
the trainer's loop through the public API with the local provider:

- upload → both variants ready, one experiment at a time and with 4 in parallel;
- saving a rating (it waits at most GATEWAY_RATE_DELIVERY_TIMEOUT_SECONDS for the optimizer);
- resident memory of each service process afterwards.

Prints a table and writes bench/results/gateway.json.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from scripts.run import SERVICES
from services.common.testing import make_test_image

RESULTS = Path(__file__).resolve().parent / "results" / "gateway.json"
SIZES = {"1024x768": (1024, 768), "1920x1080": (1920, 1080)}


def free_ports() -> dict[str, int]:
    import socket

    ports = {}
    for service in SERVICES:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports[service] = sock.getsockname()[1]
    return ports


def one_experiment(gateway: str, image: bytes, token: str) -> tuple[float, float, str]:
    with httpx.Client(timeout=120, headers=bearer(token)) as client:
        start = time.perf_counter()
        created = client.post(gateway + "/api/enhance/train", data={"mode": "structure"},
                              files={"image": ("r.jpg", image, "image/jpeg")})
        created.raise_for_status()
        accepted = time.perf_counter() - start
        experiment_id = created.json()["experiment_id"]
        while True:
            body = client.get(f"{gateway}/api/experiments/{experiment_id}").json()
            if body["status"] != "generating":
                break
            time.sleep(0.05)
        return accepted, time.perf_counter() - start, experiment_id


def rate(gateway: str, experiment_id: str, token: str) -> float:
    with httpx.Client(timeout=60, headers=bearer(token)) as client:
        start = time.perf_counter()
        answer = client.post(gateway + "/api/train/rate", json={
            "experiment_id": experiment_id,
            "ratings": [{"option": "A", "rating": 4}, {"option": "B", "rating": 3}]})
        answer.raise_for_status()
        return time.perf_counter() - start


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"n": len(values), "p50_s": round(statistics.median(ordered), 3),
            "p95_s": round(ordered[max(0, int(round(0.95 * len(ordered))) - 1)], 3),
            "max_s": round(ordered[-1], 3)}


def main() -> None:
    rows: dict[str, dict[str, float]] = {}
    from bench._proof import proof_cluster  # (it imports free_ports from this module)

    with proof_cluster("sqlite", trainers=1) as proof:
        gateway = proof.url("gateway")
        token = next(iter(proof.tokens.values()))
        ratings: list[float] = []
        for label, (w, h) in SIZES.items():
            image = make_test_image(w, h, "JPEG")
            one_experiment(gateway, image, token)  # warm-up
            accepted, ready = [], []
            for _ in range(10):
                a, r, experiment_id = one_experiment(gateway, image, token)
                accepted.append(a)
                ready.append(r)
                ratings.append(rate(gateway, experiment_id, token))
            rows[f"upload accepted ({label})"] = summary(accepted)
            rows[f"upload → both variants ready ({label}, sequential)"] = summary(ready)
            with ThreadPoolExecutor(4) as pool:
                start = time.perf_counter()
                results = list(pool.map(one_experiment, [gateway] * 12, [image] * 12,
                                        [token] * 12))
                wall = time.perf_counter() - start
            rows[f"upload → ready ({label}, 4 in parallel)"] = {
                **summary([r for _, r, _ in results]),
                "experiments_per_min": round(12 / wall * 60, 1)}
        rows["rate (save; delivery to the 3 services goes on in the background)"] = \
            summary(ratings)
        memory = {s: round(rss_mb(p.pid), 1) for s, p in proof.cluster.processes.items()}
    print(f"{'measurement':58} {'n':>4} {'p50 s':>8} {'p95 s':>8} {'max s':>8}")
    for name, row in rows.items():
        print(f"{name:58} {row['n']:>4} {row['p50_s']:>8} {row['p95_s']:>8} {row['max_s']:>8}"
              + (f"   {row['experiments_per_min']} exp/min"
                 if "experiments_per_min" in row else ""))
    print("resident memory after the run (MB): "
          + ", ".join(f"{s} {m}" for s, m in memory.items()))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "rows": rows, "rss_mb": memory}, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
