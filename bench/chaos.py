"""Chaos: no rating is lost or counted twice while services are SIGKILLed (`make chaos`).

Starts the four services as real processes (:func:`bench._proof.proof_cluster`), on
SQLite and, with ``TEST_POSTGRES_URL``, on PostgreSQL (one database per service).
``--trainers`` trainers then play ``--rounds`` rounds over HTTP between them (upload a
render → wait for both variants → rate A and B), while ``--kills`` times, at random
points of the run, a service chosen at random is SIGKILLed with its process group,
stays down for a random moment (up to ``--max-downtime`` s) and is started again.
Trainers behave as the page does: they wait for a gateway that is down, retry a
variant that failed, and read an experiment back when a rating's answer was lost
rather than sending it twice.

At the end it waits for the gateway's outbox to drain and compares the rating ids
held by the four databases (gateway ``ratings`` vs optimizer ``observations`` vs
evolution ``prompt_results`` vs reward ``reward_observations``) and the counts each
learning service reports. The run passes with 0 lost, 0 unknown, 0 double-counted,
0 valid requests refused (4xx), 0 server errors (5xx) and 0 outbox rows rejected.

Four settings differ from the defaults, to keep the run short, and are recorded in
the result: ``GATEWAY_OUTBOX_MAX_BACKOFF_SECONDS=2`` (a restarted service gets its
backlog within 2 s rather than up to 60 s), ``GATEWAY_JOB_LEASE_SECONDS=10`` with
``GATEWAY_JOB_HEARTBEAT_SECONDS=3``, and ``GATEWAY_OUTBOX_LEASE_SECONDS=10`` (the
generation jobs and deliveries a killed gateway had claimed are taken over after
10 s rather than 30 s and 60 s).

Prints a table and writes ``bench/results/chaos-<database>.json``; exits 1 if any
count that must be 0 is not.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
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
    proof_cluster,
    reported_counts,
    wait_drained,
    write_result,
)
from scripts.run import SERVICES
from services.common.testing import POSTGRES_URL, make_test_image

CHAOS_ENV = {"GATEWAY_OUTBOX_MAX_BACKOFF_SECONDS": "2", "GATEWAY_JOB_LEASE_SECONDS": "10",
             "GATEWAY_JOB_HEARTBEAT_SECONDS": "3", "GATEWAY_OUTBOX_LEASE_SECONDS": "10"}


@dataclass
class Kill:
    service: str
    after_round: int
    """Killed once this many rounds are finished…"""
    delay_s: float
    """…and this long after (so the kill lands anywhere in the next round)."""
    downtime_s: float
    restart_s: float = 0.0


@dataclass
class Progress:
    """Rounds handed out and finished; the killer waits on ``finished``."""

    total: int
    handed_out: int = 0
    finished: int = 0
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    def take(self) -> bool:
        if self.handed_out >= self.total:
            return False
        self.handed_out += 1
        return True

    async def done_one(self) -> None:
        async with self.changed:
            self.finished += 1
            self.changed.notify_all()


def plan_kills(rounds: int, kills: int, rng: random.Random, max_downtime_s: float,
               services: list[str] | None = None) -> list[Kill]:
    """``kills`` kills at random points of the run; unless ``services`` names them, the
    services are drawn so that every service is killed once before any is killed twice."""
    points = sorted(rng.randint(1, max(1, rounds - 1)) for _ in range(kills))
    order = list(services or [])
    while len(order) < kills:
        cycle = list(SERVICES)
        rng.shuffle(cycle)
        order.extend(cycle)
    return [Kill(service, point, round(rng.uniform(0, 1.5), 2),
                 round(rng.uniform(0, max_downtime_s), 2))
            for service, point in zip(order, points, strict=False)]


async def killer(cluster: ProofCluster, plan: list[Kill], progress: Progress) -> None:
    for kill in plan:
        def reached(point: int = kill.after_round) -> bool:
            return progress.finished >= point

        async with progress.changed:
            await progress.changed.wait_for(reached)
        await asyncio.sleep(kill.delay_s)  # a random moment of the next round
        await asyncio.to_thread(cluster.cluster.kill, kill.service)
        await asyncio.sleep(kill.downtime_s)  # the outage itself, not a synchronisation
        started = time.monotonic()
        cluster.cluster.start(kill.service)
        await asyncio.to_thread(cluster.cluster.wait_healthy, (kill.service,), 180)
        kill.restart_s = round(time.monotonic() - started, 2)


async def play(trainer: Trainer, progress: Progress, image: bytes, errors: list[str]) -> None:
    while progress.take():
        try:
            created = await trainer.upload(image)
            ready = await trainer.wait_ready(created["experiment_id"], deadline_s=240)
            await trainer.rate(ready)
            trainer.ledger.rounds += 1
        except (AssertionError, GatewayUnreachable) as exc:
            errors.append(f"{trainer.name}: {exc}")
        finally:
            await progress.done_one()


async def drive(cluster: ProofCluster, rounds: int, plan: list[Kill], seed: int,
                drain_deadline_s: float) -> dict[str, Any]:
    ledger = Ledger()
    progress = Progress(rounds)
    image = make_test_image(640, 480, "JPEG", seed=seed)
    trainers = [Trainer(name, token, cluster.url("gateway"), ledger,
                        rng=random.Random(f"{seed}-{name}"), through_outages=True)
                for name, token in cluster.tokens.items()]
    errors: list[str] = []
    started = time.monotonic()
    chaos = asyncio.create_task(killer(cluster, plan, progress))
    try:
        await asyncio.gather(*(play(t, progress, image, errors) for t in trainers))
        await chaos
    finally:
        chaos.cancel()
        for trainer in trainers:
            await trainer.close()
    played_s = round(time.monotonic() - started, 1)
    outbox, drain_s = await wait_drained(cluster.urls["gateway"], drain_deadline_s)
    held = await delivered_ids(cluster.urls)
    reported = await asyncio.to_thread(reported_counts, cluster)
    return compare(cluster, ledger, plan, held, reported, outbox, errors,
                   {"played_s": played_s, "drain_s": drain_s})


def compare(cluster: ProofCluster, ledger: Ledger, plan: list[Kill],
            held: dict[str, Counter[str]], reported: dict[str, int],
            outbox: dict[str, Any], errors: list[str], timing: dict[str, float]
            ) -> dict[str, Any]:
    saved = set(held["gateway"])
    services = {}
    for service in DOWNSTREAM_TABLES:
        ids = held[service]
        services[service] = {
            "held": len(ids),
            "lost": len(saved - set(ids)),
            "unknown": len(set(ids) - saved),
            "double_counted": sum(n - 1 for n in ids.values() if n > 1)
                              + max(0, reported[service] - len(ids)),
            "reported": reported[service],
            "outbox": outbox[service],
        }
    totals = {
        "lost": sum(s["lost"] for s in services.values())
                + len(ledger.acknowledged - saved),
        "unknown": sum(s["unknown"] for s in services.values()),
        "double_counted": sum(s["double_counted"] for s in services.values()),
        "undercounted": sum(max(0, len(held[s]) - reported[s]) for s in DOWNSTREAM_TABLES),
        "rejected_valid_requests": ledger.count(400, 500),
        "server_errors": ledger.count(500, 600),
        "outbox_rejected": sum(s["outbox"]["rejected"] for s in services.values()),
        "outbox_pending": sum(s["outbox"]["pending"] for s in services.values()),
        "rounds_failed": len(errors),
    }
    return {
        "database": cluster.database,
        "trainers": len(cluster.tokens),
        "rounds_played": ledger.rounds,
        "ratings_saved": len(saved),
        "ratings_acknowledged": len(ledger.acknowledged),
        "acknowledged_but_missing": len(ledger.acknowledged - saved),
        "kills": [vars(k) for k in plan],
        "kills_per_service": dict(Counter(k.service for k in plan)),
        "services": services,
        "totals": totals,
        "passed": all(v == 0 for v in totals.values()),
        "trainer_view": {
            "answers_lost_and_read_back": ledger.lost_answers,
            "uploads_resent_after_a_lost_answer": ledger.orphan_experiments,
            "variants_retried": ledger.retried_variants,
            "requests_that_found_the_gateway_down": dict(ledger.unreachable),
            "statuses": {route: dict(c) for route, c in ledger.statuses.items()},
        },
        "errors": errors[:20] + ledger.failures,
        **timing,
    }


def run_chaos(database: str, *, rounds: int, trainers: int, kills: int, seed: int = 1,
              max_downtime_s: float = 2.0, drain_deadline_s: float = 180,
              kill_services: list[str] | None = None) -> dict[str, Any]:
    """One chaos run on ``database``; its result (see :func:`compare`).

    ``kill_services`` fixes which services are killed first (the rest are drawn)."""
    started = time.monotonic()
    plan = plan_kills(rounds, kills, random.Random(seed), max_downtime_s, kill_services)
    with proof_cluster(database, trainers, env=CHAOS_ENV) as cluster:
        startup_s = round(time.monotonic() - started, 1)
        result = asyncio.run(drive(cluster, rounds, plan, seed, drain_deadline_s))
        result["startup_s"] = startup_s
    result.update(wall_s=round(time.monotonic() - started, 1), seed=seed,
                  settings=CHAOS_ENV, rounds=rounds, max_downtime_s=max_downtime_s)
    return result


def print_table(result: dict[str, Any]) -> None:
    kills = ", ".join(f"{s} {n}" for s, n in sorted(result["kills_per_service"].items()))
    print(f"\nchaos on {result['database']}: {result['rounds_played']}/{result['rounds']} rounds "
          f"by {result['trainers']} trainers, {len(result['kills'])} SIGKILLs ({kills}); "
          f"played {result['played_s']} s, outbox drained in {result['drain_s']} s")
    print(f"{'service':10} {'rating ids':>10} {'lost':>5} {'unknown':>8} {'double':>7} "
          f"{'reported':>9} {'delivered':>10} {'rejected':>9}")
    print(f"{'gateway':10} {result['ratings_saved']:>10} "
          f"{result['acknowledged_but_missing']:>5}  (acknowledged to trainers: "
          f"{result['ratings_acknowledged']})")
    for service, row in result["services"].items():
        print(f"{service:10} {row['held']:>10} {row['lost']:>5} {row['unknown']:>8} "
              f"{row['double_counted']:>7} {row['reported']:>9} "
              f"{row['outbox']['delivered']:>10} {row['outbox']['rejected']:>9}")
    totals = result["totals"]
    view = result["trainer_view"]
    print(f"valid requests refused (4xx): {totals['rejected_valid_requests']} · "
          f"server errors (5xx): {totals['server_errors']} · rounds failed: "
          f"{totals['rounds_failed']} · answers lost and read back: "
          f"{view['answers_lost_and_read_back']} · variants retried: {view['variants_retried']}")
    print("PASSED" if result["passed"] else "FAILED: " + "; ".join(result["errors"][:5]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60, help="experiments rated, in all")
    parser.add_argument("--trainers", type=int, default=4)
    parser.add_argument("--kills", type=int, default=12, help="SIGKILLs over the run")
    parser.add_argument("--database", choices=DATABASES, action="append",
                        help="repeat for both; default: sqlite, and postgres when "
                             "TEST_POSTGRES_URL is set")
    parser.add_argument("--max-downtime", type=float, default=2.0,
                        help="longest time a killed service stays down, seconds")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    databases = args.database or (["sqlite", "postgres"] if POSTGRES_URL else ["sqlite"])
    passed = True
    for database in databases:
        try:
            result = run_chaos(database, rounds=args.rounds, trainers=args.trainers,
                               kills=args.kills, seed=args.seed,
                               max_downtime_s=args.max_downtime)
        except ProofError as exc:
            print(f"chaos on {database} could not run: {exc}", file=sys.stderr)
            return 2
        result["machine"] = machine()
        result["command"] = "python -m bench.chaos " + " ".join(argv or sys.argv[1:])
        print_table(result)
        print(f"wrote {write_result(f'chaos-{database}.json', result)}")
        passed = passed and result["passed"]
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
