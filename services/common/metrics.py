"""Prometheus metrics of the four services, served at ``GET /metrics``.

:func:`install_metrics` (called once by :func:`services.common.app.build_app`) adds
an ASGI middleware that times every HTTP request and a ``/metrics`` route. The
domain metrics are module-level objects with small helper functions, so the code
that knows a number calls one function and never touches label names:

=============================================  =========  ==========================  =========
metric                                         type       labels                      set by
=============================================  =========  ==========================  =========
``afinador_http_requests_total``               counter    service, method, route,     all
                                                          status
``afinador_http_request_duration_seconds``     histogram  service, method, route      all
``afinador_http_unhandled_exceptions_total``   counter    service, route, exception   all
``afinador_outbox_backlog``                    gauge      target                      gateway
``afinador_outbox_oldest_pending_seconds``     gauge      target                      gateway
``afinador_outbox_rejected``                   gauge      target                      gateway
``afinador_outbox_delivered_total``            counter    target                      gateway
``afinador_job_queue_depth``                   gauge      state                       gateway
``afinador_provider_generation_seconds``       histogram  provider, outcome           gateway
``afinador_provider_failures_total``           counter    provider, retryable         gateway
``afinador_gp_fit_seconds``                    histogram  (none)                      optimizer
``afinador_gp_model_cache_total``              counter    result                      optimizer
``afinador_reward_training_runs_total``        counter    outcome                     reward
``afinador_reward_training_seconds``           histogram  outcome                     reward
``afinador_ab_decisions_total``                counter    decision                    evolution
``afinador_rating_stars``                      histogram  mode                        evolution
=============================================  =========  ==========================  =========

Decisions:

* **prometheus-client, no instrumentator.** The middleware is 40 lines, and owning
  it keeps the ``route`` label a template (``/prompts/versions/{version}``, never a
  raw id: cardinality stays bounded whatever the URL) and lets unmatched paths
  share one label (``<unmatched>``), so a scanner cannot create series.
* **Latency is time to the response's start** (status line and headers). For
  ordinary answers that is all of it; for server-sent event streams it is the time
  to open the stream, not the stream's life.
* **Label values are closed sets.** Helpers refuse a value outside their set
  (``ValueError``), so a typo or an id never becomes a new series.
* **``/metrics`` requires the service token**, like every internal route: the
  gateway faces the internet behind the load balancer, and route names, traffic
  and error rates are operational information. Prometheus sends the token
  (``authorization: credentials_file`` in ``infra/prometheus/prometheus.yml``),
  so all four services are scraped the same way.
* One process per container (uvicorn without ``--workers``), so the default
  registry is the process's whole truth; no multiprocess mode is needed.
* Ratings are counted by the evolution service, which stores each rating id once
  (re-deliveries are ignored), so ``afinador_rating_stars`` never counts twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED = "<unmatched>"

# --- HTTP (every service) ----------------------------------------------------------

HTTP_REQUESTS = Counter(
    "afinador_http_requests_total", "HTTP requests answered, by route template and status.",
    ["service", "method", "route", "status"])
HTTP_LATENCY = Histogram(
    "afinador_http_request_duration_seconds",
    "Time from a request's arrival to its response's start, by route template.",
    ["service", "method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))
HTTP_UNHANDLED = Counter(
    "afinador_http_unhandled_exceptions_total",
    "Requests that ended in an exception no handler knew (answered 500).",
    ["service", "route", "exception"])

# --- gateway: outbox, jobs, providers ----------------------------------------------

TARGETS = ("optimizer", "evolution", "reward")
OUTBOX_BACKLOG = Gauge(
    "afinador_outbox_backlog", "Outbox messages not yet delivered, per target service.",
    ["target"])
OUTBOX_OLDEST = Gauge(
    "afinador_outbox_oldest_pending_seconds",
    "Age of the oldest undelivered outbox message per target (0 when none).", ["target"])
OUTBOX_REJECTED = Gauge(
    "afinador_outbox_rejected",
    "Outbox messages a target refused (terminal 'rejected' state), per target.", ["target"])
OUTBOX_DELIVERED = Counter(
    "afinador_outbox_delivered_total", "Outbox messages a target acknowledged.", ["target"])

JOB_STATES = ("queued", "running")
JOB_QUEUE = Gauge(
    "afinador_job_queue_depth", "Generation jobs waiting (queued) or being run (running).",
    ["state"])

PROVIDER_SECONDS = Histogram(
    "afinador_provider_generation_seconds",
    "Duration of one generation by a provider, by outcome (ok or failed).",
    ["provider", "outcome"],
    buckets=(0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 180.0, 300.0))
PROVIDER_FAILURES = Counter(
    "afinador_provider_failures_total",
    "Failed generations per provider; retryable=true ones go back to the queue.",
    ["provider", "retryable"])

# --- optimizer: Gaussian process -----------------------------------------------------

GP_FIT_SECONDS = Histogram(
    "afinador_gp_fit_seconds", "Duration of one Gaussian-process fit.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0))
GP_CACHE_RESULTS = ("hit", "miss")
GP_CACHE = Counter(
    "afinador_gp_model_cache_total",
    "Fitted-model lookups: hit (a fitted model was reused) or miss (a fit was needed).",
    ["result"])

# --- reward: training runs -------------------------------------------------------------

TRAINING_OUTCOMES = ("validated", "rejected", "not_enough_data", "failed")
REWARD_TRAINING_RUNS = Counter(
    "afinador_reward_training_runs_total",
    "Reward-model training runs by outcome: validated (activated), rejected (did not "
    "beat the gate), not_enough_data, failed.", ["outcome"])
REWARD_TRAINING_SECONDS = Histogram(
    "afinador_reward_training_seconds", "Duration of one reward-model training run.",
    ["outcome"], buckets=(0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0))

# --- evolution: A/B decisions and ratings ------------------------------------------------

AB_DECISIONS_KINDS = ("promote", "rollback", "stopped", "auto_rollback", "monitor_passed")
AB_DECISIONS = Counter(
    "afinador_ab_decisions_total",
    "Automatic prompt A/B decisions: promote, rollback (challenger retired), stopped, and "
    "after a promotion auto_rollback or monitor_passed.", ["decision"])
MODES = ("structure", "surfaces")
RATING_STARS = Histogram(
    "afinador_rating_stars",
    "Stars of each new rating, counted once per rating id (by the evolution service).",
    ["mode"], buckets=(1.0, 2.0, 3.0, 4.0, 5.0))


def _check(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}; got {value!r}")
    return value


# --- helpers other code calls ----------------------------------------------------------


def set_outbox_state(target: str, *, pending: int, rejected: int,
                     oldest_pending_seconds: float = 0.0) -> None:
    """Outbox counts for one target, as read from the database (call after each pass)."""
    _check(target, TARGETS, "target")
    OUTBOX_BACKLOG.labels(target).set(pending)
    OUTBOX_REJECTED.labels(target).set(rejected)
    OUTBOX_OLDEST.labels(target).set(max(0.0, oldest_pending_seconds))


def count_outbox_delivered(target: str, messages: int = 1) -> None:
    """``messages`` outbox rows acknowledged by ``target``."""
    OUTBOX_DELIVERED.labels(_check(target, TARGETS, "target")).inc(messages)


def set_job_queue_depth(*, queued: int, running: int) -> None:
    """Generation jobs waiting and running (as read from the database)."""
    JOB_QUEUE.labels("queued").set(queued)
    JOB_QUEUE.labels("running").set(running)


def observe_provider_generation(provider: str, seconds: float, *, ok: bool,
                                retryable: bool = False) -> None:
    """One generation by ``provider`` (its name, e.g. ``local``, ``leonardo``)."""
    PROVIDER_SECONDS.labels(provider, "ok" if ok else "failed").observe(seconds)
    if not ok:
        PROVIDER_FAILURES.labels(provider, "true" if retryable else "false").inc()


@contextmanager
def time_provider_generation(provider: str) -> Iterator[None]:
    """Time the block as one generation; an exception counts as a failure (its
    ``retryable`` attribute, if any, is kept) and is re-raised."""
    started = time.perf_counter()
    try:
        yield
    except Exception as exc:
        observe_provider_generation(provider, time.perf_counter() - started, ok=False,
                                    retryable=bool(getattr(exc, "retryable", False)))
        raise
    observe_provider_generation(provider, time.perf_counter() - started, ok=True)


def observe_gp_fit(seconds: float) -> None:
    GP_FIT_SECONDS.observe(seconds)


@contextmanager
def time_gp_fit() -> Iterator[None]:
    """Time the block as one GP fit (recorded only if it completes)."""
    started = time.perf_counter()
    yield
    GP_FIT_SECONDS.observe(time.perf_counter() - started)


def count_gp_cache(*, hit: bool) -> None:
    GP_CACHE.labels("hit" if hit else "miss").inc()


def record_reward_training(outcome: str, seconds: float) -> None:
    """One training run: ``validated``, ``rejected``, ``not_enough_data`` or ``failed``."""
    _check(outcome, TRAINING_OUTCOMES, "outcome")
    REWARD_TRAINING_RUNS.labels(outcome).inc()
    REWARD_TRAINING_SECONDS.labels(outcome).observe(seconds)


def count_ab_decision(decision: str) -> None:
    """One automatic A/B decision (see :data:`AB_DECISIONS_KINDS`)."""
    AB_DECISIONS.labels(_check(decision, AB_DECISIONS_KINDS, "decision")).inc()


def observe_ratings(ratings: Iterable[tuple[str, int]]) -> None:
    """New ratings as ``(mode, stars)``; call once per stored rating id."""
    for mode, stars in ratings:
        RATING_STARS.labels(_check(mode, MODES, "mode")).observe(stars)


# --- HTTP middleware and /metrics --------------------------------------------------------


def route_template(scope: Scope) -> str:
    """The matched route's path template, or :data:`UNMATCHED` (never the raw path).

    FastAPI puts the matched route in ``scope["route"]``. A mounted app (static
    files) has none; its mount point is the part of ``root_path`` the mount added
    to the application's own ``app_root_path``.
    """
    route: Any = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if isinstance(template, str) and template:
        return template
    app_root = str(scope.get("app_root_path", ""))
    root = str(scope.get("root_path", ""))
    if "app_root_path" in scope and root != app_root and root.startswith(app_root):
        return root[len(app_root):].rstrip("/") + "/{path}"
    return UNMATCHED


class MetricsMiddleware:
    """Counts and times every HTTP request by method, route template and status."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        recorded = False

        def record(status: int) -> None:
            nonlocal recorded
            if recorded:
                return
            recorded = True
            route, method = route_template(scope), scope["method"]
            HTTP_LATENCY.labels(self.service, method, route).observe(
                time.perf_counter() - started)
            HTTP_REQUESTS.labels(self.service, method, route, str(status)).inc()

        async def send_and_record(message: Message) -> None:
            if message["type"] == "http.response.start":
                record(int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        except Exception as exc:
            HTTP_UNHANDLED.labels(self.service, route_template(scope),
                                  type(exc).__name__).inc()
            record(500)
            raise


metrics_router = APIRouter(tags=["ops"])


@metrics_router.get(
    "/metrics", response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}},
                     "description": "Prometheus text exposition format."}})
async def metrics() -> Response:
    """Prometheus metrics of this process (requires the service token)."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def install_metrics(app: FastAPI, service: str) -> None:
    """Time every request of ``app`` under ``service``. The caller includes
    :data:`metrics_router` with the service-token dependency."""
    app.add_middleware(MetricsMiddleware, service=service)
