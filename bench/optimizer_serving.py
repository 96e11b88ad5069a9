"""Optimizer serving benchmark: how fast ``update_model`` and ``GET /ml/status``
answer while the model is being refitted (issue 12, defect 3).

A fresh optimizer runs as its own process (uvicorn, SQLite in a temp directory, the
service's default settings). It is filled with ``--ratings`` simulated ratings and
fitted once. Then ``--readers`` threads poll ``GET /ml/status`` in a loop (status
panels that refresh), while the main thread stores ``--updates`` new ratings one
``POST /ml/update_model`` at a time, so every read sees a new observation set and
a fit is (almost) always in progress. Before that, ``update_model`` is timed alone
(20 ratings, 50 ms apart: each starts a background fit now; none did before). Both
latencies are recorded, and, when the service reports it (``model.fitted_at``), how
many distinct models the readers saw.

The script only speaks HTTP, so it measures any version of the service: run it in a
checkout of the code before a change to compare (``--label``).

    .venv/bin/python -m bench.optimizer_serving            # prints a table, writes
                                                           # bench/results/optimizer_serving.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "optimizer_serving.json"
TOKEN = "bench-serving-token"
QUIET = 20


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pct(values: list[float]) -> dict[str, float]:
    ms = np.array(values) * 1000
    return {
        "n": len(values),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1),
        "max_ms": round(float(ms.max()), 1),
    }


def _start(tmp: Path) -> tuple[subprocess.Popen[bytes], httpx.Client]:
    port = _free_port()
    env = {
        **os.environ,
        "OPTIMIZER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'optimizer.db'}",
        "DATA_DIR": str(tmp),
        "SERVICE_TOKEN": TOKEN,
        "ENVIRONMENT": "development",
        "LOG_LEVEL": "WARNING",
        "OPTIMIZER_DEFAULT_PROVIDERS": '["leonardo","stablediffusion","local"]',
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "services.optimizer.main:app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp / "server.log", "wb"),
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}",
                          headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)
    deadline = time.monotonic() + 60
    while True:
        try:
            if client.get("/healthz").status_code == 200:
                return server, client
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            raise RuntimeError("the optimizer did not start; see " + str(tmp / "server.log"))
        time.sleep(0.05)


def run(ratings: int, updates: int, readers: int) -> dict[str, Any]:
    from bench._optimizer_latency import _results
    from bench._optimizer_sim import make_world

    world = make_world("broad", 1234, 200)
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory(prefix="afinador-serving-") as tmp_name:
        server, client = _start(Path(tmp_name))
        try:
            for start in range(0, ratings, 1000):
                batch = _results(world, start, min(1000, ratings - start), rng)
                client.post("/ml/update_model", json={"results": batch}).raise_for_status()
            t0 = time.perf_counter()
            deadline = t0 + 600
            while True:  # the first model (fitted in the request before, in the background now)
                first = client.get("/ml/status").json()
                if first.get("recommendation_source") == "model" or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            first_status = time.perf_counter() - t0

            quiet: list[float] = []
            for i in range(QUIET):  # update_model alone, nobody reading
                batch = _results(world, ratings + i, 1, rng)
                t0 = time.perf_counter()
                client.post("/ml/update_model", json={"results": batch}).raise_for_status()
                quiet.append(time.perf_counter() - t0)
                time.sleep(0.05)
            n = ratings + QUIET

            status_times: list[float] = []
            fitted_at: set[str] = set()
            states: dict[str, int] = {}
            stop = threading.Event()
            lock = threading.Lock()

            def read() -> None:
                with httpx.Client(base_url=client.base_url, headers=client.headers,
                                  timeout=120) as own:
                    while not stop.is_set():
                        t0 = time.perf_counter()
                        body = own.get("/ml/status").json()
                        elapsed = time.perf_counter() - t0
                        with lock:
                            status_times.append(elapsed)
                            if body.get("model") and body["model"].get("fitted_at"):
                                fitted_at.add(body["model"]["fitted_at"])
                            state = body.get("model_state", "n/a")
                            states[state] = states.get(state, 0) + 1

            threads = [threading.Thread(target=read) for _ in range(readers)]
            for thread in threads:
                thread.start()
            update_times: list[float] = []
            started = time.perf_counter()
            for _ in range(updates):
                batch = _results(world, n, 1, rng)
                n += 1
                t0 = time.perf_counter()
                client.post("/ml/update_model", json={"results": batch}).raise_for_status()
                update_times.append(time.perf_counter() - t0)
                time.sleep(0.05)  # a trainer rates every so often, not in a tight loop
            stop.set()
            for thread in threads:
                thread.join()
            loaded_seconds = time.perf_counter() - started
        finally:
            client.close()
            server.terminate()
            server.wait(timeout=30)
    return {
        "ratings": ratings,
        "updates": updates,
        "readers": readers,
        "seconds_to_first_model": round(first_status, 3),
        "first_status_model": (first.get("model") or {}).get("fit_seconds"),
        "update_model_quiet": _pct(quiet),
        "update_model_with_readers": _pct(update_times),
        "status_with_updates": _pct(status_times),
        "status_states": states,
        "distinct_models_seen": len(fitted_at) or None,
        "loaded_seconds": round(loaded_seconds, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratings", type=int, default=600)
    parser.add_argument("--updates", type=int, default=40)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--label", default="current")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    result = run(args.ratings, args.updates, args.readers)
    print(f"\n## optimizer serving ({args.label}): {args.ratings} ratings stored, "
          f"{args.updates} new ones, {args.readers} status readers")
    print(f"{'':<34}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}{'n':>6}")
    for key, label in (("update_model_quiet", "update_model, nobody reading"),
                       ("update_model_with_readers", "update_model, readers polling"),
                       ("status_with_updates", "GET /ml/status, ratings arriving")):
        s = result[key]
        print(f"{label:<34}{s['p50_ms']:>10.1f}{s['p95_ms']:>10.1f}{s['max_ms']:>10.1f}"
              f"{s['n']:>6}")
    print(f"status states: {result['status_states']}; distinct models seen by readers: "
          f"{result['distinct_models_seen']}")
    saved: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    saved[args.label] = {
        "command": ".venv/bin/python -m bench.optimizer_serving "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average": [round(x, 2) for x in os.getloadavg()]},
        **result,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(saved, indent=1) + "\n")
    print(f"wrote {args.out} [{args.label}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
