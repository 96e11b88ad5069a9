"""What the proof targets share (`make chaos`, `make load`, `make fuzz`).

- :func:`proof_cluster`: the four services as real processes, started the way
  ``scripts/run.py`` starts them, on free loopback ports, in a temporary data
  directory, on SQLite files or on one fresh PostgreSQL database per service
  (``TEST_POSTGRES_URL``), each in its own process group so it can be SIGKILLed
  with whatever it spawned. Trainers' accounts and API tokens are created in the
  gateway's database before the gateway starts (no lock contention with it).
- :class:`Trainer`: a trainer's loop over HTTP (upload → wait for both variants →
  rate), recording every request's latency and status in a shared :class:`Ledger`.
  With ``through_outages`` a request that cannot reach the gateway is retried until
  it answers, and a rating whose answer was lost is looked up instead of sent twice.
- :func:`delivered_ids`: which rating ids each service's database holds, read
  straight from the four databases, and the outbox's state.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import platform
import random
import secrets
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.gateway import free_ports
from scripts.run import SERVICES, Cluster

RESULTS = Path(__file__).resolve().parent / "results"
DATABASES = ("sqlite", "postgres")
COMMENTS = ("", "buena luz, algo plano", "sombras duras", "la madera parece plástico",
            "structure changed", "muy realista", "demasiado saturado", "")


class ProofError(RuntimeError):
    """The proof could not run (a service did not start, no PostgreSQL…)."""


def internal_headers() -> dict[str, str]:
    from services.common.settings import DEV_SERVICE_TOKEN

    return {"Authorization": f"Bearer {DEV_SERVICE_TOKEN}"}


# The cluster ------------------------------------------------------------------------

@contextmanager
def service_databases(kind: str, data_dir: Path) -> Iterator[dict[str, str]]:
    """One database URL per service: SQLite files under ``data_dir``, or fresh
    PostgreSQL databases (dropped afterwards) on the server of ``TEST_POSTGRES_URL``."""
    if kind == "sqlite":
        yield {s: f"sqlite+aiosqlite:///{data_dir / f'{s}.db'}" for s in SERVICES}
        return
    if kind != "postgres":
        raise ProofError(f"unknown database {kind!r}: sqlite or postgres")
    from services.common import testing

    if not testing.POSTGRES_URL:
        raise ProofError("--database postgres needs TEST_POSTGRES_URL "
                         "(e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test)")
    with ExitStack() as stack:
        urls = {}
        for service in SERVICES:
            database = testing.postgres_database()
            urls[service] = next(database)
            stack.callback(next, database, None)
        yield urls


@dataclass
class ProofCluster:
    cluster: Cluster
    database: str
    urls: dict[str, str]
    tokens: dict[str, str]
    """Trainers' API tokens by user name."""
    work_dir: Path
    admin_tokens: dict[str, str] = field(default_factory=dict)

    def url(self, service: str) -> str:
        return self.cluster.url(service)


def _create_users(gateway_url: str, count: int, role: str = "trainer",
                  prefix: str = "trainer") -> dict[str, str]:
    """Apply the gateway's migrations and add ``count`` users; their API tokens."""
    from scripts.users import MIGRATIONS
    from services.common.db import create_engine, run_migrations, session_factory
    from services.gateway import accounts

    run_migrations(MIGRATIONS, gateway_url, "alembic_version_gateway")

    async def create() -> dict[str, str]:
        engine = create_engine(gateway_url)
        try:
            async with session_factory(engine)() as session, session.begin():
                tokens = {}
                for i in range(count):
                    name = f"{prefix}{i:03d}"
                    await accounts.add_user(session, name, secrets.token_urlsafe(18),
                                            role, actor="bench")  # type: ignore[arg-type]
                    tokens[name] = await accounts.issue_token(session, name, actor="bench")
                return tokens
        finally:
            await engine.dispose()

    return asyncio.run(create())


@contextmanager
def proof_cluster(database: str, trainers: int, env: dict[str, str] | None = None,
                  keep_dir: Path | None = None, admins: int = 0) -> Iterator[ProofCluster]:
    """The four services on ``database`` with ``trainers`` trainers' (and ``admins``
    admins') API tokens."""
    with ExitStack() as stack:
        work_dir = keep_dir or Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix="afinador-proof-")))
        urls = stack.enter_context(service_databases(database, work_dir / "data"))
        tokens = _create_users(urls["gateway"], trainers)
        admin_tokens = _create_users(urls["gateway"], admins, "admin", "admin") if admins else {}
        cluster = Cluster(
            ports=free_ports(), log_dir=work_dir / "logs", own_process_group=True,
            env={"DATA_DIR": str(work_dir / "data"), "LOG_LEVEL": "WARNING",
                 **{f"{s.upper()}_DATABASE_URL": url for s, url in urls.items()},
                 **(env or {})})
        # Everything has been read by the time it ends: SIGKILL is as good as a stop, and quicker.
        for service in SERVICES:
            stack.callback(cluster.kill, service)
        cluster.start_all()
        try:
            cluster.wait_healthy(deadline_s=180)
        except (RuntimeError, TimeoutError) as exc:
            raise ProofError(str(exc)) from exc
        yield ProofCluster(cluster, database, urls, tokens, work_dir, admin_tokens)


def process_group_rss_mb(pid: int) -> float:
    """Resident memory of a service: its process and every process of its group."""
    total_kb = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != pid and int(entry.name) != pid:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return round(total_kb / 1024, 1)


# Trainers over HTTP --------------------------------------------------------------------

@dataclass
class Ledger:
    """Every request the trainers made: latency and status per route."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    unreachable: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    """The first few unexpected answers, with their body (for the report)."""
    acknowledged: set[str] = field(default_factory=set)
    """Rating ids the gateway confirmed (a 200 answer, or found after a lost answer)."""
    lost_answers: int = 0
    retried_variants: int = 0
    orphan_experiments: int = 0
    rounds: int = 0

    def record(self, route: str, seconds: float, status: int) -> None:
        self.latencies[route].append(seconds)
        self.statuses[route][status] += 1

    def count(self, low: int, high: int) -> int:
        return sum(n for c in self.statuses.values() for s, n in c.items() if low <= s < high)

    def note(self, text: str) -> None:
        if len(self.failures) < 20:
            self.failures.append(text[:500])


def percentiles_ms(values: list[float]) -> dict[str, float | int]:
    """n, p50, p95, p99 and max in milliseconds (nearest-rank percentiles)."""
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def rank(p: float) -> float:
        return round(1000 * ordered[max(0, math.ceil(p * len(ordered)) - 1)], 1)

    return {"n": len(ordered), "p50_ms": rank(0.50), "p95_ms": rank(0.95),
            "p99_ms": rank(0.99), "max_ms": round(1000 * ordered[-1], 1)}


class GatewayUnreachable(Exception):
    pass


class Trainer:
    """One trainer's client. ``through_outages``: wait for the gateway to come back."""

    def __init__(self, name: str, token: str, gateway: str, ledger: Ledger, *,
                 rng: random.Random, through_outages: bool = False,
                 outage_deadline_s: float = 120) -> None:
        self.name = name
        self.ledger = ledger
        self.rng = rng
        self.through_outages = through_outages
        self.outage_deadline_s = outage_deadline_s
        self.client = httpx.AsyncClient(
            base_url=gateway, headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(120, connect=5),
            limits=httpx.Limits(max_connections=4, max_keepalive_connections=2))

    async def close(self) -> None:
        await self.client.aclose()

    async def request(self, route: str, method: str, url: str, *, retry: bool = True,
                      **kwargs: Any) -> httpx.Response:
        """One request, timed. Unreachable gateway: retried (when allowed) until the
        outage deadline, else :class:`GatewayUnreachable`."""
        deadline = time.monotonic() + self.outage_deadline_s
        while True:
            start = time.perf_counter()
            try:
                answer = await self.client.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                self.ledger.unreachable[route] += 1
                if not (self.through_outages and retry) or time.monotonic() > deadline:
                    raise GatewayUnreachable(f"{route}: {exc!r}") from exc
                await asyncio.sleep(0.2)  # the gateway is down; try again shortly
                continue
            self.ledger.record(route, time.perf_counter() - start, answer.status_code)
            if answer.status_code >= 500 or answer.status_code in (401, 403):
                self.ledger.note(f"{method} {route} → {answer.status_code}: {answer.text}")
            return answer

    async def upload(self, image: bytes, filename: str = "render.jpg") -> dict[str, Any]:
        """Upload a render; the new experiment (a lost answer means an orphan experiment
        the trainer never sees, and a new upload)."""
        while True:
            try:
                answer = await self.request(
                    "upload", "POST", "/api/enhance/train", retry=False,
                    data={"mode": self.rng.choice(["structure", "surfaces"]),
                          "project_id": "proof"},
                    files={"image": (filename, image, "image/jpeg")})
            except GatewayUnreachable:
                if not self.through_outages:
                    raise
                self.ledger.orphan_experiments += 1  # perhaps created, answer lost
                await self.wait_for_gateway()
                continue
            if answer.status_code != 202:
                self.ledger.note(f"upload → {answer.status_code}: {answer.text}")
                raise AssertionError(f"upload refused: {answer.status_code} {answer.text}")
            body: dict[str, Any] = answer.json()
            return body

    async def wait_for_gateway(self) -> None:
        deadline = time.monotonic() + self.outage_deadline_s
        while time.monotonic() < deadline:
            try:
                answer = await self.client.get("/healthz", timeout=2)
                if answer.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
        raise GatewayUnreachable("the gateway did not come back")

    async def experiment(self, experiment_id: str) -> dict[str, Any]:
        answer = await self.request("experiment", "GET", f"/api/experiments/{experiment_id}")
        if answer.status_code != 200:
            raise AssertionError(f"experiment {experiment_id}: {answer.status_code} {answer.text}")
        body: dict[str, Any] = answer.json()
        return body

    async def wait_ready(self, experiment_id: str, *, sse: bool = False,
                         deadline_s: float = 300) -> dict[str, Any]:
        """Until both options have an image. A failed option is retried (it can be,
        from the page); ``sse`` follows the page's event stream instead of polling."""
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            if sse:
                await self._follow_events(experiment_id)
            body = await self.experiment(experiment_id)
            statuses = {o["option"]: o["status"] for o in body["options"]}
            if all(s == "succeeded" for s in statuses.values()):
                return body
            for option in body["options"]:
                if option["status"] in ("failed", "cancelled"):
                    self.ledger.retried_variants += 1
                    self.ledger.note(f"variant {option['variant_id']} {option['status']}: "
                                     f"{option.get('error')}")
                    await self.request("retry", "POST",
                                       f"/api/variants/{option['variant_id']}/retry")
            if not sse:
                await asyncio.sleep(0.25)  # polling, as the page does without SSE
        raise AssertionError(f"experiment {experiment_id} not ready after {deadline_s}s")

    async def _follow_events(self, experiment_id: str) -> None:
        start = time.perf_counter()
        try:
            async with self.client.stream(
                    "GET", f"/api/experiments/{experiment_id}/events") as stream:
                self.ledger.record("events", time.perf_counter() - start, stream.status_code)
                if stream.status_code != 200:
                    return
                async for line in stream.aiter_lines():
                    if line.startswith("event: done"):
                        return
        except httpx.TransportError:
            self.ledger.unreachable["events"] += 1
            await asyncio.sleep(0.25)

    async def rate(self, experiment: dict[str, Any]) -> list[str]:
        """Rate both options (random stars and a comment); the saved rating ids.

        If the answer is lost (the gateway died after or before committing), the
        experiment is read back: rated options are taken as saved, otherwise the same
        rating is sent again. A 409 is then a double submission, and is reported."""
        experiment_id = experiment["experiment_id"]
        body = {"experiment_id": experiment_id,
                "seconds_to_rate": round(self.rng.uniform(3, 40), 1),
                "ratings": [{"option": o["option"], "rating": self.rng.randint(1, 5),
                             "comments": self.rng.choice(COMMENTS)}
                            for o in experiment["options"]]}
        while True:
            try:
                answer = await self.request("rate", "POST", "/api/train/rate", retry=False,
                                            json=body)
            except GatewayUnreachable:
                if not self.through_outages:
                    raise
                saved = await self._read_back(experiment_id, len(body["ratings"]))
                if saved:
                    return saved
                continue
            if answer.status_code != 200:
                self.ledger.note(f"rate → {answer.status_code}: {answer.text}")
                raise AssertionError(f"rating refused: {answer.status_code} {answer.text}")
            ids: list[str] = answer.json()["rating_ids"]
            self.ledger.acknowledged.update(ids)
            return ids

    async def _read_back(self, experiment_id: str, expected: int) -> list[str]:
        """After a lost answer: the rating ids the gateway saved, or [] if none."""
        self.ledger.lost_answers += 1
        await self.wait_for_gateway()
        current = await self.experiment(experiment_id)
        saved = [o["rating_id"] for o in current["options"] if o.get("rating_id")]
        if saved and len(saved) != expected:
            raise AssertionError(f"{experiment_id}: only part of a rating was saved")
        self.ledger.acknowledged.update(saved)
        return saved


# What the databases hold ------------------------------------------------------------------

DOWNSTREAM_TABLES = {"optimizer": "observations", "evolution": "prompt_results",
                     "reward": "reward_observations"}


async def _query(url: str, sql: str) -> list[tuple[Any, ...]]:
    from sqlalchemy import text

    from services.common.db import create_engine

    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return [tuple(row) for row in (await connection.execute(text(sql))).all()]
    finally:
        await engine.dispose()


async def outbox_state(gateway_url: str) -> dict[str, dict[str, int]]:
    """Outbox rows per target: delivered, pending and rejected."""
    rows = await _query(gateway_url, """
        SELECT target,
               CASE WHEN rejected_at IS NOT NULL THEN 'rejected'
                    WHEN delivered_at IS NOT NULL THEN 'delivered' ELSE 'pending' END,
               COUNT(*)
        FROM outbox GROUP BY 1, 2""")
    state: dict[str, dict[str, int]] = {t: {"delivered": 0, "pending": 0, "rejected": 0}
                                        for t in DOWNSTREAM_TABLES}
    for target, kind, n in rows:
        state[target][kind] = int(n)
    return state


async def delivered_ids(urls: dict[str, str]) -> dict[str, Counter[str]]:
    """Rating ids with stars in the gateway, and how often each downstream database
    holds each rating id."""
    held: dict[str, Counter[str]] = {
        "gateway": Counter(r[0] for r in await _query(
            urls["gateway"], "SELECT id FROM ratings WHERE rating IS NOT NULL"))}
    for service, table in DOWNSTREAM_TABLES.items():
        held[service] = Counter({r[0]: int(r[1]) for r in await _query(
            urls[service], f"SELECT rating_id, COUNT(*) FROM {table} GROUP BY rating_id")})
    return held


async def wait_drained(gateway_url: str, deadline_s: float) -> tuple[dict[str, Any], float]:
    """Poll the gateway's outbox until nothing is pending (or the deadline passes)."""
    started = time.monotonic()
    while True:
        state = await outbox_state(gateway_url)
        if all(s["pending"] == 0 for s in state.values()):
            return state, round(time.monotonic() - started, 1)
        if time.monotonic() - started > deadline_s:
            return state, round(time.monotonic() - started, 1)
        await asyncio.sleep(0.5)


def reported_counts(cluster: ProofCluster) -> dict[str, int]:
    """What each learning service says it has counted (its own status routes)."""
    with httpx.Client(headers=internal_headers(), timeout=30) as client:
        optimizer = client.get(cluster.url("optimizer") + "/ml/status").json()
        versions = client.get(cluster.url("evolution") + "/prompts/versions").json()
        reward = client.get(cluster.url("reward") + "/ml/status").json()
    return {"optimizer": int(optimizer["samples_seen"]),
            "evolution": sum(int(v["performance"]["sample_count"]) for v in versions["versions"]),
            "reward": int(reward["observations"])}


def machine() -> dict[str, Any]:
    load1, load5, _ = os.getloadavg()
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "load_average_1m_at_end": round(load1, 2), "load_average_5m_at_end": round(load5, 2)}


def write_result(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    return path
