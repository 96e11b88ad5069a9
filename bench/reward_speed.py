"""Speed of the reward service on the CPU, through its HTTP API (in-process, SQLite).

    .venv/bin/python -m bench.reward_speed      # writes bench/results/reward.speed.json

1. **Features**: decode + classical features of 100 BIQ2021 photos (512×512 JPEG),
   one thread, per image.
2. **Observe**: 1,500 observations of 1,380 photos through ``POST /ml/observe_batch``
   (32 per call; whole stars ``round(1 + 4·MOS)``; photos in random "renders" of 4;
   120 photos rated a second time by a stricter trainer, one star lower, so the
   trainer-bias model has something to find), and 32 through the single
   ``POST /ml/observe`` for comparison.
3. **Train**: ``POST /ml/train`` (202) on those 1,500 observations until
   ``GET /ml/train/{id}`` says it finished; the gate's decision and held-out figures.
4. **Predict**: 20 batches of 6 photos the service has never seen (features computed:
   "cold") and the same batches again (features cached: "warm").

Every timing is reported as wall time and as the process's CPU time (all threads).
On a shared machine the wall time includes waiting for a core; the CPU time is what
the work costs. The load average at the start and end is recorded.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from bench._reward_data import DATASET, REPO, read_scores

RESULTS = REPO / "bench" / "results" / "reward.speed.json"
N_PREDICT_BATCHES = 20
BATCH = 32


def summary(wall: list[float], cpu: list[float], per: int = 1) -> dict[str, float]:
    w = np.array(wall) * 1e3 / per
    c = np.array(cpu) * 1e3 / per
    return {
        "wall_ms_p50": float(np.median(w)),
        "wall_ms_p95": float(np.percentile(w, 95)),
        "cpu_ms_p50": float(np.median(c)),
        "cpu_ms_p95": float(np.percentile(c, 95)),
        "n": len(wall),
    }


def timed(fn: Any) -> tuple[Any, float, float]:
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def features(images: list[str]) -> dict[str, Any]:
    from services.common.images import decode_image
    from services.reward.features import ClassicalExtractor

    extractor = ClassicalExtractor()
    wall, cpu, decode_wall = [], [], []
    for name in images:
        raw = (DATASET / "images" / name).read_bytes()
        rgb, dw, _ = timed(
            lambda raw=raw: decode_image(raw, max_bytes=1 << 28, max_pixels=1 << 28).to_array()
        )
        c0, t0 = time.thread_time(), time.perf_counter()
        extractor.extract(rgb)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
        decode_wall.append(dw)
    out = summary(wall, cpu)
    out["decode_wall_ms_p50"] = float(np.median(decode_wall) * 1e3)
    return out


def main() -> None:
    # (BLAS threads: the reward app limits them itself, REWARD_BLAS_THREADS)
    from services.reward.main import create_app
    from services.reward.settings import RewardSettings

    load_start = os.getloadavg()
    images, _, mos = read_scores()
    stars = np.clip(np.round(mos), 1, 5).astype(int)
    order = np.random.default_rng(0).permutation(len(images))
    train, unseen = order[:1380], order[1380:]
    repeat = train[:120]
    result: dict[str, Any] = {"command": ".venv/bin/python -m bench.reward_speed"}

    print("features (1 thread)…", flush=True)
    result["features"] = features([images[i] for i in unseen[:100]])
    print(f"  {result['features']}", flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="reward-speed-"))
    settings = RewardSettings(
        database_url=f"sqlite+aiosqlite:///{tmp / 'r.db'}", data_dir=tmp, auto_retrain=False
    )
    headers = {"Authorization": f"Bearer {settings.service_token}"}
    render = {int(i): f"render-{k // 4}" for k, i in enumerate(train)}

    def item(i: int, rater: str = "biq", delta: int = 0) -> dict[str, Any]:
        return {
            "rating_id": f"{rater}-{i}",
            "rating": int(np.clip(stars[i] + delta, 1, 5)),
            "experiment_id": render[int(i)],
            "option": "A",
            "rater": rater,
        }

    def read(i: int) -> bytes:
        return (DATASET / "images" / images[i]).read_bytes()

    with TestClient(create_app(settings), headers=headers) as client:
        print("observe: 32 single calls, then batches of 32…", flush=True)
        single_wall, single_cpu = [], []
        for i in train[:32]:
            form = {k: str(v) for k, v in item(i).items()}
            r, w, c = timed(
                lambda form=form, i=i: client.post(
                    "/ml/observe", data=form, files={"image": ("i.jpg", read(i), "image/jpeg")}
                )
            )
            r.raise_for_status()
            single_wall.append(w)
            single_cpu.append(c)
        todo = [item(i) for i in train[32:]] + [item(i, "strict", -1) for i in repeat]
        batch_wall, batch_cpu = [], []
        for start in range(0, len(todo), BATCH):
            chunk = todo[start : start + BATCH]
            files = [
                ("images", (f"{k}.jpg", read(int(it["rating_id"].split("-")[1])), "image/jpeg"))
                for k, it in enumerate(chunk)
            ]
            r, w, c = timed(
                lambda chunk=chunk, files=files: client.post(
                    "/ml/observe_batch", data={"observations": json.dumps(chunk)}, files=files
                )
            )
            r.raise_for_status()
            assert all(x["status"] == "stored" for x in r.json()["results"]), r.text
            batch_wall.append(w / len(chunk))
            batch_cpu.append(c / len(chunk))
        total = client.get("/ml/status").json()["observations"]
        result["observe"] = {
            "single": summary(single_wall, single_cpu),
            "batch_of_32_per_image": summary(batch_wall, batch_cpu),
            "observations": total,
        }
        print(f"  {result['observe']}", flush=True)

        print(f"train on {total} observations…", flush=True)
        runtime = client.app.state.reward  # type: ignore[attr-defined]
        c0, t0 = time.process_time(), time.perf_counter()
        accepted = client.post("/ml/train")
        answered = time.perf_counter() - t0
        assert accepted.status_code == 202, accepted.text
        assert client.portal is not None
        client.portal.call(runtime.trainer.wait_idle)
        train_wall, train_cpu = time.perf_counter() - t0, time.process_time() - c0
        run = client.get(accepted.json()["status_url"]).json()
        assert run["status"] == "succeeded", run
        res = run["result"]
        result["train"] = {
            "observations": total,
            "post_answered_ms": answered * 1e3,
            "wall_s": train_wall,
            "cpu_s": train_cpu,
            "version": res["version"],
            "activated": res["activated"],
            "reason": res["reason"],
            "n_train": res["n_train"],
            "n_holdout": res["n_holdout"],
            "heldout": res["metrics"],
            "trainer_biases": client.get("/ml/models")
            .json()["versions"][0]["baseline"]
            .get("trainer_biases"),
        }
        print(
            f"  POST answered in {answered * 1e3:.0f} ms; trained in {train_wall:.1f} s wall, "
            f"{train_cpu:.1f} s CPU: {res['version']} {res['reason']}",
            flush=True,
        )

        print("predict 6 unseen photos per call…", flush=True)
        cold_wall, cold_cpu, warm_wall, warm_cpu = [], [], [], []
        for k in range(N_PREDICT_BATCHES):
            blobs = [read(int(i)) for i in unseen[6 * k : 6 * k + 6]]
            files = [("images", (f"c{n}.jpg", b, "image/jpeg")) for n, b in enumerate(blobs)]
            for wall, cpu in ((cold_wall, cold_cpu), (warm_wall, warm_cpu)):
                r, w, c = timed(lambda files=files: client.post("/ml/predict_rating", files=files))
                r.raise_for_status()
                assert len(r.json()["predictions"]) == 6
                wall.append(w)
                cpu.append(c)
        result["predict_6"] = {
            "cold": summary(cold_wall, cold_cpu),
            "warm_cached": summary(warm_wall, warm_cpu),
        }
        print(f"  {result['predict_6']}", flush=True)
        result["status_best_of_n"] = client.get("/ml/status").json()["best_of_n"]

    result["load_average"] = {"start": load_start, "end": os.getloadavg()}
    result["cpu_count"] = os.cpu_count()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(REPO)}; load average {load_start} → {os.getloadavg()}")


if __name__ == "__main__":
    main()
