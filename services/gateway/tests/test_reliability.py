"""Reliability defects of issue 12, each pinned by a test that failed before the fix:
poison messages, head-of-line blocking, slow rating answers, concurrent first
uploads, same answers on both databases, and a database that is down."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from services.common.http import InternalClient
from services.common.testing import wait_for
from services.gateway import prompts
from services.gateway.main import create_app
from services.gateway.models import OutboxMessage, PromptSnapshot
from services.gateway.settings import GatewaySettings
from services.gateway.testing import sign_in_with_token
from services.gateway.tests.test_api import create, wait_generated

DELIVERY_PATHS = {"/ml/update_model", "/prompts/results", "/ml/observe", "/ml/observe_batch"}


def accept(request: httpx.Request) -> httpx.Response:
    """What a receiver answers when it takes everything (per item for a reward batch)."""
    if request.url.path == "/ml/observe_batch":
        count = request.content.count(b'name="images"')
        return httpx.Response(200, json={"results": [
            {"index": i, "rating_id": f"r{i}", "status": "stored"} for i in range(count)]})
    return httpx.Response(200, json={"ok": True})


class FakeSibling:
    """A sibling service on an httpx MockTransport: records the deliveries it gets and
    answers them as told (200 by default); anything else answers 503, so the gateway
    uses its fallbacks (random parameters, baseline prompts)."""

    def __init__(self, name: str, answer: Any = None) -> None:
        self.name = name
        self.calls: list[httpx.Request] = []
        self.answer = answer or accept

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path not in DELIVERY_PATHS and not request.url.path.startswith(
                "/prompts/versions"):
            return httpx.Response(503, text="not in this fake")
        self.calls.append(request)
        return self.answer(request)

    def posts(self) -> int:
        return len(self.calls)

    def client(self) -> InternalClient:
        return InternalClient(self.name, f"http://{self.name}.test", "t", retries=0,
                              transport=httpx.MockTransport(self.handler))


def install(gateway: TestClient, **siblings: FakeSibling) -> None:
    ctx = gateway.app.state.context  # type: ignore[attr-defined]
    for name, fake in siblings.items():
        setattr(ctx.clients, name, fake.client())


def rated_experiment(gateway: TestClient, stars: int = 3, comments: str = "") -> str:
    created = create(gateway)
    wait_generated(gateway, created["experiment_id"])
    answer = gateway.post("/api/train/rate", json={
        "experiment_id": created["experiment_id"],
        "ratings": [{"option": "A", "rating": stars, "comments": comments}]})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["rating_ids"][0])


def outbox_rows(gateway: TestClient) -> list[OutboxMessage]:
    async def rows() -> list[OutboxMessage]:
        async with gateway.app.state.sessions() as session:  # type: ignore[attr-defined]
            return list((await session.execute(select(OutboxMessage))).scalars())

    assert gateway.portal is not None
    return gateway.portal.call(rows)


def state(row: OutboxMessage) -> str:
    return "rejected" if row.rejected_at else "delivered" if row.delivered_at else "pending"


def settled(gateway: TestClient, target: str, count: int) -> None:
    """Wait until ``target``'s ``count`` messages were each tried and none is in flight,
    so swapping the fake receiver cannot race an attempt still using the old one."""
    wait_for(lambda: len(rows := [r for r in outbox_rows(gateway) if r.target == target]) == count
             and all(r.last_error and r.lease_expires_at is None for r in rows), 10,
             f"every {target} message to have been tried")


def refuse_with_422(request: httpx.Request) -> httpx.Response:
    return httpx.Response(422, json={"detail": "rater: vacío", "error": {
        "code": "validation_failed", "message": "rater: vacío", "message_en": "rater: empty"}})


def test_a_refused_message_is_rejected_for_good_and_counted(gateway: TestClient) -> None:
    optimizer = FakeSibling("optimizer", refuse_with_422)
    evolution, reward = FakeSibling("evolution"), FakeSibling("reward")
    install(gateway, optimizer=optimizer, evolution=evolution, reward=reward)
    rating_id = rated_experiment(gateway)
    ctx = gateway.app.state.context  # type: ignore[attr-defined]

    rows = wait_for(lambda: (r := outbox_rows(gateway)) and all(
        state(x) != "pending" for x in r) and r, 10, "every message to settle")
    assert {row.target: state(row) for row in rows} == {
        "optimizer": "rejected", "evolution": "delivered", "reward": "delivered"}
    rejected = next(r for r in rows if r.target == "optimizer")
    assert rejected.rating_id == rating_id and "HTTP 422" in (rejected.last_error or "")

    calls = optimizer.posts()
    for _ in range(3):  # wake the deliverer: a rejected message is never sent again
        ctx.outbox.notify()
        assert gateway.portal is not None
        gateway.portal.call(ctx.outbox.deliver_due, "optimizer")
    assert optimizer.posts() == calls
    status = gateway.get("/api/train/status").json()
    assert status["rejected_deliveries"] == {"optimizer": 1}
    assert status["pending_deliveries"] == {}


def test_a_refused_batch_is_split_so_only_the_bad_message_is_rejected(
        gateway: TestClient) -> None:
    def refuse_the_one_with_a_zero(request: httpx.Request) -> httpx.Response:
        results = json.loads(request.content)["results"]
        if any(r["rating"] == 2 for r in results):
            return refuse_with_422(request)
        return accept(request)

    ctx = gateway.app.state.context  # type: ignore[attr-defined]
    down = FakeSibling("optimizer", lambda r: httpx.Response(503, text="down"))
    install(gateway, optimizer=down, evolution=FakeSibling("evolution"),
            reward=FakeSibling("reward"))
    ids = [rated_experiment(gateway, stars) for stars in (4, 2, 5)]
    settled(gateway, "optimizer", 3)
    # The optimizer comes back: the three wait in one batch, one of them poisoned.
    optimizer = FakeSibling("optimizer", refuse_the_one_with_a_zero)
    install(gateway, optimizer=optimizer)

    async def release() -> None:
        async with ctx.sessions() as session, session.begin():  # one write, no read first
            await session.execute(update(OutboxMessage).values(
                next_attempt_at=OutboxMessage.created_at, lease_expires_at=None))
        await ctx.outbox.deliver_due("optimizer")

    assert gateway.portal is not None
    gateway.portal.call(release)
    # (the background loop may have claimed the released rows first: wait for it to end)
    expected = {ids[0]: "delivered", ids[1]: "rejected", ids[2]: "delivered"}

    def optimizer_states() -> dict[str, str] | None:
        found = {r.rating_id: state(r) for r in outbox_rows(gateway) if r.target == "optimizer"}
        return found if "pending" not in found.values() else None

    assert wait_for(optimizer_states, 30, "the optimizer's batch") == expected
    first = json.loads(optimizer.calls[0].content)["results"]
    assert len(first) == 3  # sent as one batch first


def test_a_down_optimizer_does_not_hold_up_the_other_services(gateway: TestClient) -> None:
    optimizer = FakeSibling("optimizer", lambda r: (_ for _ in ()).throw(
        httpx.ConnectError("refused")))
    evolution, reward = FakeSibling("evolution"), FakeSibling("reward")
    install(gateway, optimizer=optimizer, evolution=evolution, reward=reward)
    for _ in range(3):
        rated_experiment(gateway)
    rows = wait_for(lambda: (r := outbox_rows(gateway)) and all(
        state(x) == "delivered" if x.target != "optimizer" else x.last_error for x in r) and r,
        10, "evolution and reward to receive everything, and the optimizer to be tried")
    assert Counter((r.target, state(r)) for r in rows) == {
        ("optimizer", "pending"): 3, ("evolution", "delivered"): 3, ("reward", "delivered"): 3}
    assert all("refused" in (r.last_error or "") for r in rows if r.target == "optimizer")


def test_rating_answers_without_waiting_for_a_stuck_optimizer(gateway: TestClient) -> None:
    never = asyncio.Event()

    class Stuck(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path != "/ml/update_model":
                return httpx.Response(503, text="busy")  # suggestions fall back to random
            await never.wait()  # the optimizer took the ratings and went silent
            return httpx.Response(503, text="gone")

    ctx = gateway.app.state.context  # type: ignore[attr-defined]
    ctx.clients.optimizer = InternalClient("optimizer", "http://optimizer.test", "t",
                                           retries=0, transport=Stuck())
    install(gateway, evolution=FakeSibling("evolution"), reward=FakeSibling("reward"))
    created = create(gateway)
    wait_generated(gateway, created["experiment_id"])
    answer = gateway.post("/api/train/rate", json={
        "experiment_id": created["experiment_id"], "ratings": [{"option": "B", "rating": 4}]})
    assert answer.status_code == 200
    body = answer.json()
    assert body["ml_updated"] is False and body["samples_collected"] == 1
    assert "en cuanto responda" in body["message"]
    assert gateway.portal is not None
    gateway.portal.call(never.set)  # let the background delivery end, so shutdown is quick


def test_same_clear_422_on_both_databases_for_text_a_receiver_would_refuse(
        gateway: TestClient) -> None:
    created = create(gateway)
    wait_generated(gateway, created["experiment_id"])
    experiment_id = created["experiment_id"]
    for bad in ({"option": "A", "rating": 3, "comments": "bien\x00mal"},
                {"option": "A", "rating": "inf"}, {"option": "A", "rating": "NaN"},
                {"option": "A", "rating": 4.5}):
        answer = gateway.post("/api/train/rate", json={"experiment_id": experiment_id,
                                                       "ratings": [bad]})
        assert answer.status_code == 422, (bad, answer.text)
        assert answer.json()["error"]["message_en"] != answer.json()["detail"]  # both languages
    long_project = gateway.post("/api/enhance/train", data={"project_id": "p" * 101},
                                files={"image": ("r.png", b"not read", "image/png")})
    assert long_project.status_code == 422 and "100" in long_project.json()["detail"]
    nul_project = gateway.post("/api/enhance/train", data={"project_id": "a\x00b"},
                               files={"image": ("r.png", b"not read", "image/png")})
    assert nul_project.status_code == 422
    assert outbox_rows(gateway) == []  # nothing was saved


def test_concurrent_first_uploads_of_a_prompt_version_both_succeed(
        gateway: TestClient) -> None:
    ctx = gateway.app.state.context  # type: ignore[attr-defined]
    first = prompts.PromptAssignment("A", "v9.9.9", "champion",
                                     {"local": {"prompt": "p1", "negative_prompt": "n"}},
                                     "evolution")
    second = prompts.PromptAssignment("A", "v9.9.9", "champion",
                                      {"local": {"prompt": "p2", "negative_prompt": "n"}},
                                      "evolution")

    async def race() -> list[PromptSnapshot]:
        await asyncio.gather(*(prompts._remember(ctx.sessions, mode, [a])
                               for mode in ("structure", "surfaces")
                               for a in (first, second)))
        async with ctx.sessions() as session:
            return list((await session.execute(select(PromptSnapshot).where(
                PromptSnapshot.version == "v9.9.9"))).scalars())

    assert gateway.portal is not None
    rows = gateway.portal.call(race)
    assert sorted(r.mode for r in rows) == ["structure", "surfaces"]
    assert all(r.prompts["local"]["prompt"] in ("p1", "p2") for r in rows)


def test_a_database_that_is_down_gives_503_with_a_sentence(gateway_settings: GatewaySettings
                                                           ) -> None:
    down = gateway_settings.model_copy(update={
        "database_url": "postgresql+asyncpg://nobody@127.0.0.1:9/none",
        "migrate_on_start": False, "generation_workers": 0})
    with TestClient(create_app(down)) as client:
        assert client.get("/livez").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "base de datos" in ready.json()["detail"]
        api = client.get("/api/train/status", headers={"Authorization": "Bearer afn_x"})
        assert api.status_code == 503
        assert api.json()["error"]["code"] == "database_unavailable"
        page = client.get("/train", headers={"accept": "text/html",
                                             "Authorization": "Bearer afn_x"})
        assert page.status_code == 503 and "La base de datos no responde" in page.text


def test_version_names_are_quoted_into_internal_urls(gateway: TestClient) -> None:
    evolution = FakeSibling("evolution", lambda r: httpx.Response(
        404, json={"detail": "No existe", "error": {"code": "not_found", "message": "No existe",
                                                     "message_en": "No such version"}}))
    install(gateway, evolution=evolution)
    sign_in_with_token(gateway, "jefa", "admin")
    answer = gateway.get("/prompts/versions/v1.0.0%3Fx=1", headers={"accept": "text/html"})
    assert answer.status_code == 404
    assert [r.url.raw_path.decode() for r in evolution.calls][0] == \
        "/prompts/versions/v1.0.0%3Fx%3D1"


def test_due_observations_go_to_the_reward_service_in_one_batch(gateway: TestClient) -> None:
    down = FakeSibling("reward", lambda r: httpx.Response(503, text="down"))
    install(gateway, optimizer=FakeSibling("optimizer"), evolution=FakeSibling("evolution"),
            reward=down)
    ids = [rated_experiment(gateway, stars) for stars in (3, 4, 5)]
    settled(gateway, "reward", 3)

    def refuse_the_second(request: httpx.Request) -> httpx.Response:
        count = request.content.count(b'name="images"')
        return httpx.Response(200, json={"results": [
            {"index": i, "rating_id": "x", "status": "rejected" if i == 1 else "stored",
             "error": {"code": "invalid_image", "message": "no es una imagen",
                       "message_en": "not an image"} if i == 1 else None}
            for i in range(count)]})

    reward = FakeSibling("reward", refuse_the_second)
    install(gateway, reward=reward)
    ctx = gateway.app.state.context  # type: ignore[attr-defined]

    async def release() -> None:
        async with ctx.sessions() as session, session.begin():  # one write, no read first
            await session.execute(update(OutboxMessage).values(
                next_attempt_at=OutboxMessage.created_at, lease_expires_at=None))
        await ctx.outbox.deliver_due("reward")

    assert gateway.portal is not None
    gateway.portal.call(release)
    assert [r.url.path for r in reward.calls] == ["/ml/observe_batch"]
    assert reward.calls[0].content.count(b'name="images"') == 3
    by_rating = {r.rating_id: state(r) for r in outbox_rows(gateway) if r.target == "reward"}
    assert by_rating == {ids[0]: "delivered", ids[1]: "rejected", ids[2]: "delivered"}
