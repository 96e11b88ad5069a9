"""Load: many trainers at once, for minutes (`make load`).

Starts the four services as real processes (:func:`bench._proof.proof_cluster`) on
SQLite or PostgreSQL, with their default settings and the local provider. Then
``--trainers`` trainers (default 50), each with her own API token, loop for
``--minutes`` (default 10): upload a render → follow the page's event stream until
both variants are ready → rate A and B. The outbox deliverer runs as in production,
so every rating is also being delivered to the three learning services.

Reports p50/p95/p99 of upload and rate (and of reading an experiment, and of upload
→ both variants ready), the error and 5xx counts, the resident memory of each
service (its whole process group) at the end, and — after the outbox drains —
whether every rating reached all three learning services. Prints a table and writes
``bench/results/load-<database>.json``. The goal stated in issue 12: 0 5xx, and rate
p95 ≤ 50 ms on PostgreSQL with the deliverer running.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from typing import Any

from bench._proof import (
    DATABASES,
    DOWNSTREAM_TABLES,
    GatewayUnreachable,
    Ledger,
    ProofCluster,
    ProofError,
    Trainer,
    delivered_ids,
    machine,
    percentiles_ms,
    process_group_rss_mb,
    proof_cluster,
    wait_drained,
    write_result,
)
from services.common.testing import make_test_image


async def trainer_loop(trainer: Trainer, image: bytes, stop_at: float,
                       ready: list[float], errors: list[str]) -> None:
    while time.monotonic() < stop_at:
        started = time.perf_counter()
        try:
            created = await trainer.upload(image)
            experiment = await trainer.wait_ready(created["experiment_id"], sse=True,
                                                  deadline_s=600)
            ready.append(time.perf_counter() - started)
            await trainer.rate(experiment)
            trainer.ledger.rounds += 1
        except (AssertionError, GatewayUnreachable) as exc:
            errors.append(f"{trainer.name}: {exc}"[:500])
            await asyncio.sleep(1)  # do not hammer a gateway that refuses


async def drive(cluster: ProofCluster, minutes: float, image: bytes, seed: int
                ) -> dict[str, Any]:
    ledger = Ledger()
    ready: list[float] = []
    errors: list[str] = []
    trainers = [Trainer(name, token, cluster.url("gateway"), ledger,
                        rng=random.Random(f"{seed}-{name}"))
                for name, token in cluster.tokens.items()]
    started = time.monotonic()
    stop_at = started + 60 * minutes
    tasks = [asyncio.create_task(trainer_loop(t, image, stop_at, ready, errors))
             for t in trainers]
    # Trainers stop starting new experiments at the deadline; what is still waiting
    # for its variants then is abandoned (it measures neither upload nor rate).
    await asyncio.wait(tasks, timeout=max(0.0, stop_at - time.monotonic()))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    ran_s = round(time.monotonic() - started, 1)
    memory = {s: process_group_rss_mb(p.pid) for s, p in cluster.cluster.processes.items()}
    for trainer in trainers:
        await trainer.close()
    outbox, drain_s = await wait_drained(cluster.urls["gateway"], 300)
    held = await delivered_ids(cluster.urls)
    saved = set(held["gateway"])
    return {
        "database": cluster.database,
        "trainers": len(trainers),
        "minutes": minutes,
        "ran_s": ran_s,
        "experiments_rated": ledger.rounds,
        "ratings_saved": len(saved),
        "latency": {"upload": percentiles_ms(ledger.latencies["upload"]),
                    "rate": percentiles_ms(ledger.latencies["rate"]),
                    "experiment_get": percentiles_ms(ledger.latencies["experiment"]),
                    "upload_to_both_ready": percentiles_ms(ready)},
        "errors": ledger.count(400, 600) + sum(ledger.unreachable.values()),
        "server_errors": ledger.count(500, 600),
        "unreachable": dict(ledger.unreachable),
        "statuses": {route: dict(c) for route, c in ledger.statuses.items()},
        "rss_mb": memory,
        "outbox_after_drain": outbox,
        "drain_s": drain_s,
        "lost_after_drain": {s: len(saved - set(held[s])) for s in DOWNSTREAM_TABLES},
        "error_samples": errors[:10] + ledger.failures,
    }


def print_table(result: dict[str, Any]) -> None:
    print(f"\nload on {result['database']}: {result['trainers']} trainers for "
          f"{result['minutes']} min ({result['ran_s']} s), local provider, "
          f"{result['size']} renders; {result['experiments_rated']} experiments rated")
    print(f"{'request':34} {'n':>6} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9} {'max ms':>9}")
    for name, row in result["latency"].items():
        if row["n"]:
            print(f"{name:34} {row['n']:>6} {row['p50_ms']:>9} {row['p95_ms']:>9} "
                  f"{row['p99_ms']:>9} {row['max_ms']:>9}")
    print(f"errors: {result['errors']} (5xx: {result['server_errors']}) · outbox drained "
          f"in {result['drain_s']} s after the run · ratings missing downstream: "
          + ", ".join(f"{s} {n}" for s, n in result["lost_after_drain"].items()))
    print("resident memory at the end (MB, whole process group): "
          + ", ".join(f"{s} {m}" for s, m in result["rss_mb"].items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trainers", type=int, default=50)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--database", choices=DATABASES, default="sqlite")
    parser.add_argument("--size", default="1024x768", help="render size, WIDTHxHEIGHT")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    image = make_test_image(width, height, "JPEG", seed=args.seed)
    try:
        with proof_cluster(args.database, args.trainers) as cluster:
            result = asyncio.run(drive(cluster, args.minutes, image, args.seed))
    except ProofError as exc:
        print(f"load on {args.database} could not run: {exc}", file=sys.stderr)
        return 2
    result.update(size=args.size, seed=args.seed, machine=machine(),
                  command="python -m bench.load " + " ".join(argv or sys.argv[1:]))
    print_table(result)
    print(f"wrote {write_result(f'load-{args.database}.json', result)}")
    return 0 if result["server_errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
