"""The rating page's rules on the gateway: "cannot judge" never becomes a delivery,
a correction is a new revision of the same rating (delivered again, never a second
rating), only its trainer may correct it, and the page never shows what would
unblind her before she saves."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from services.common.testing import make_test_image
from services.gateway.models import OutboxMessage, Rating
from services.gateway.testing import add_user
from services.gateway.tests.test_api import create, wait_generated


def outbox(client: TestClient) -> list[tuple[str, str, int]]:
    async def load() -> list[tuple[str, str, int]]:
        async with client.app.state.sessions() as session:  # type: ignore[attr-defined]
            rows = (await session.execute(select(OutboxMessage))).scalars()
            return sorted((m.rating_id, m.target, m.revision) for m in rows)

    assert client.portal is not None
    return client.portal.call(load)


def ratings(client: TestClient) -> dict[str, Rating]:
    async def load() -> dict[str, Rating]:
        async with client.app.state.sessions() as session:  # type: ignore[attr-defined]
            return {r.option: r for r in (await session.execute(select(Rating))).scalars()}

    assert client.portal is not None
    return client.portal.call(load)


def rated_experiment(gateway: TestClient, a: dict[str, Any], b: dict[str, Any]) -> str:
    created = create(gateway)
    wait_generated(gateway, created["experiment_id"])
    answer = gateway.post("/train/rate", data={
        "experiment_id": created["experiment_id"], **a, **b, "seconds_to_rate": "12.5"})
    assert answer.status_code == 200, answer.text
    return str(created["experiment_id"])


def test_cannot_judge_is_stored_but_never_delivered(gateway: TestClient) -> None:
    rated_experiment(gateway, {"rating_A": "4"},
                     {"cannot_judge_B": "1", "cannot_judge_reason_B": "broken"})
    saved = ratings(gateway)
    assert saved["B"].rating is None and saved["B"].cannot_judge_reason == "broken"
    assert saved["A"].seconds_to_rate == 12.5
    assert {rid for rid, _, _ in outbox(gateway)} == {saved["A"].id}  # B: nothing to send
    status = gateway.get("/api/train/status").json()
    assert status["phase_1"]["samples_collected"] == 1


def test_cannot_judge_needs_a_reason(gateway: TestClient) -> None:
    created = create(gateway)
    wait_generated(gateway, created["experiment_id"])
    answer = gateway.post("/train/rate", data={"experiment_id": created["experiment_id"],
                                               "cannot_judge_A": "1"},
                          headers={"HX-Request": "true"})
    assert answer.status_code == 422
    assert "Elige por qué no puedes juzgar la opción A" in answer.text
    assert ratings(gateway) == {}


def test_undo_and_edit_are_revisions_of_the_same_rating(gateway: TestClient) -> None:
    experiment_id = rated_experiment(gateway, {"rating_A": "4"}, {"rating_B": "5"})
    first = ratings(gateway)
    reopened = gateway.post(f"/train/experiments/{experiment_id}/undo")
    assert reopened.status_code == 200 and 'name="editing"' in reopened.text
    assert re.search(r'id="rating-A-4"[^>]*checked', reopened.text)  # the saved value
    again = gateway.post("/train/rate", data={"experiment_id": experiment_id,
                                              "rating_A": "2", "rating_B": "5",
                                              "editing": "1"})
    assert again.status_code == 200, again.text
    edited = gateway.post(f"/train/ratings/{first['B'].id}/edit", data={"rating": "3"})
    assert edited.status_code == 200 and "revisión 2" in edited.text
    now = ratings(gateway)
    assert {o: (r.id, r.rating, r.revision) for o, r in now.items()} == {
        "A": (first["A"].id, 2, 2), "B": (first["B"].id, 3, 2)}
    targets = ("evolution", "optimizer", "reward")
    assert outbox(gateway) == sorted(
        [(first[o].id, t, n) for o in "AB" for t in targets for n in (1, 2)])
    # Both corrections are in the audit log, with who, what before and after.
    admin = {"Authorization": f"Bearer {add_user(gateway, 'jefa', 'admin')}"}
    log = gateway.get("/admin/audit", params={"action": "rating_edited"}, headers=admin).text
    assert log.count("audit-rating_edited") == 3  # A and B after undo (B unchanged), B from history
    assert "via: history" in log and "before: 5" in log and "after: 3" in log


def test_only_her_trainer_may_correct_a_rating(gateway: TestClient) -> None:
    experiment_id = rated_experiment(gateway, {"rating_A": "4"}, {"rating_B": "5"})
    rating_id = ratings(gateway)["A"].id
    gateway.headers["Authorization"] = f"Bearer {add_user(gateway, 'bea')}"
    refused = gateway.post(f"/train/ratings/{rating_id}/edit", data={"rating": "1"},
                           headers={"HX-Request": "true"})
    assert refused.status_code == 409 and "tus propias puntuaciones" in refused.text
    assert gateway.post(f"/train/experiments/{experiment_id}/undo").status_code == 409
    assert ratings(gateway)["A"].rating == 4


def test_the_comparison_is_blind_until_saved(gateway: TestClient) -> None:
    created = create(gateway)
    body = wait_generated(gateway, created["experiment_id"])
    page = gateway.get("/train", params={"exp": created["experiment_id"]}).text
    for option in body["options"]:
        assert option["prompt_version"] not in page.split('id="workspace"')[1]
        for value in option["parameters"].values():
            if isinstance(value, float):
                assert str(value) not in page


def test_pending_lists_my_unrated_uploads_only(gateway: TestClient) -> None:
    uploaded = gateway.post("/train/upload", data={"mode": "surfaces"},
                            files={"image": ("r.png", make_test_image(), "image/png")})
    assert uploaded.status_code == 200, uploaded.text
    experiment_id = uploaded.headers["HX-Push-Url"].split("exp=")[1]
    assert experiment_id in gateway.get("/train/pending").text
    mine = gateway.headers["Authorization"]
    gateway.headers["Authorization"] = f"Bearer {add_user(gateway, 'bea')}"
    assert experiment_id not in gateway.get("/train/pending").text
    gateway.headers["Authorization"] = mine
    wait_generated(gateway, experiment_id)
    gateway.post("/train/rate", data={"experiment_id": experiment_id, "rating_A": "3"})
    assert experiment_id not in gateway.get("/train/pending").text  # rated: no longer waiting
