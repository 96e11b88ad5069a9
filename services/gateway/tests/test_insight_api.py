"""History filters, pagination, export, repeats and the status page, on SQLite and
PostgreSQL (the ``database_url`` fixture), with the sibling services down."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from services.gateway.models import OutboxMessage
from services.gateway.testing import sign_in_with_token
from services.gateway.tests.insight_seed import Seeded, seed

COUNT = 30


def ratings_of(seeded: list[Seeded]) -> list[dict[str, Any]]:
    out = []
    for s in seeded:
        for option in ("A", "B"):
            out.append({"experiment_id": s.experiment_id, "option": option,
                        "rating": s.ratings[option], "rated_by": s.trainer,
                        "provider": s.providers[option], "prompt_version": s.versions[option],
                        "mode": s.mode, "created_at": s.created_at})
    return out


def experiments(gateway: TestClient, **params: Any) -> dict:
    answer = gateway.get("/api/train/experiments", params={"per_page": 200, **params})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_filters_select_the_right_experiments_and_ratings(gateway: TestClient) -> None:
    seeded = seed(gateway, COUNT)
    rows = ratings_of(seeded)
    cases: list[tuple[dict[str, Any], Any]] = [
        ({"trainer": "bea"}, lambda r: r["rated_by"] == "bea"),
        ({"provider": "leonardo"}, lambda r: r["provider"] == "leonardo"),
        ({"prompt_version": "v1.1.0"}, lambda r: r["prompt_version"] == "v1.1.0"),
        ({"mode": "surfaces"}, lambda r: r["mode"] == "surfaces"),
        ({"rating_min": 4}, lambda r: r["rating"] >= 4),
        ({"rating_min": 2, "rating_max": 3}, lambda r: 2 <= r["rating"] <= 3),
        ({"trainer": "ana", "provider": "local", "rating_max": 2},
         lambda r: r["rated_by"] == "ana" and r["provider"] == "local" and r["rating"] <= 2),
        ({"date_from": "2026-11-03", "date_to": "2026-11-04"},
         lambda r: "2026-11-03" <= r["created_at"].date().isoformat() <= "2026-11-04"),
    ]
    for params, keep in cases:
        expected = [r for r in rows if keep(r)]
        body = experiments(gateway, **params)
        assert body["ratings"] == len(expected), params
        assert {e["experiment_id"] for e in body["experiments"]} == \
            {r["experiment_id"] for r in expected}, params
        assert body["total"] == len({r["experiment_id"] for r in expected}), params
    # Every experiment shows both options, original and images, trainer and comments.
    first = experiments(gateway, trainer="carlos")["experiments"][0]
    assert first["original_url"].startswith("/images/")
    assert [o["option"] for o in first["options"]] == ["A", "B"]
    assert all(o["rated_by"] == "carlos" and o["image_url"] for o in first["options"])
    assert first["seconds_to_rate"] == pytest.approx(150.0)


def test_date_range_is_read_in_the_given_time_zone(gateway: TestClient) -> None:
    seeded = seed(gateway, COUNT)
    zone = ZoneInfo("America/Mexico_City")  # UTC-6 in November
    day = "2026-11-04"
    expected = {s.experiment_id for s in seeded
                if s.created_at.astimezone(zone).date().isoformat() == day}
    in_utc = {s.experiment_id for s in seeded if s.created_at.date().isoformat() == day}
    assert expected != in_utc  # the case tells the two readings apart
    body = experiments(gateway, date_from=day, date_to=day, tz="America/Mexico_City")
    assert {e["experiment_id"] for e in body["experiments"]} == expected


def test_pagination_and_sorting_cover_every_experiment_once(gateway: TestClient) -> None:
    seeded = seed(gateway, COUNT)
    seen: list[str] = []
    page = 1
    while True:
        body = experiments(gateway, per_page=7, page=page)
        assert body["total"] == COUNT and body["pages"] == 5
        seen += [e["experiment_id"] for e in body["experiments"]]
        if page == body["pages"]:
            break
        page += 1
    newest_first = [s.experiment_id for s in sorted(seeded, key=lambda s: s.created_at,
                                                    reverse=True)]
    assert seen == newest_first
    oldest = experiments(gateway, sort="oldest")["experiments"]
    assert [e["experiment_id"] for e in oldest] == newest_first[::-1]
    best = experiments(gateway, sort="rating_desc")["experiments"]
    means = [sum(o["rating"] for o in e["options"]) / 2 for e in best]
    assert means == sorted(means, reverse=True)
    worst = experiments(gateway, sort="rating_asc")["experiments"]
    assert [sum(o["rating"] for o in e["options"]) / 2 for e in worst] == sorted(means)
    # A page past the end shows the last page rather than nothing.
    assert experiments(gateway, per_page=7, page=99)["page"] == 5


def test_export_csv_parses_back_to_the_same_ratings_as_json(gateway: TestClient) -> None:
    seeded = seed(gateway, COUNT)
    params: dict[str, Any] = {"provider": "local", "rating_min": 2}
    as_json = gateway.get("/api/train/export", params={"format": "json", **params})
    assert as_json.status_code == 200
    body = as_json.json()
    expected = [r for r in ratings_of(seeded) if r["provider"] == "local" and r["rating"] >= 2]
    assert body["count"] == len(expected) == len(body["rows"])

    as_csv = gateway.get("/api/train/export", params={"format": "csv", **params})
    assert as_csv.status_code == 200
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in as_csv.headers["content-disposition"]
    parsed = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert len(parsed) == len(body["rows"])
    for row, item in zip(parsed, body["rows"], strict=True):
        assert row["rating_id"] == item["rating_id"]
        assert int(row["rating"]) == item["rating"]
        assert row["rated_by"] == item["rated_by"]
        assert row["comments"] == item["comments"]  # commas survive quoting
        assert row["provider"] == item["provider"] == "local"
        assert float(row["strength"]) == pytest.approx(item["strength"])
        assert row["image_url"] == item["image_url"]
        assert datetime.fromisoformat(row["rated_at"]) == datetime.fromisoformat(
            item["rated_at"].replace("Z", "+00:00"))
    got = sorted((r["experiment_id"], r["option"], int(r["rating"])) for r in parsed)
    assert got == sorted((r["experiment_id"], r["option"], r["rating"]) for r in expected)
    assert any("," in r["comments"] for r in parsed)


def test_invalid_filters_are_refused_with_a_sentence(gateway: TestClient) -> None:
    seed(gateway, 2)
    answer = gateway.get("/api/train/experiments", params={"rating_min": 5, "rating_max": 2})
    assert answer.status_code == 422
    assert "mínima" in answer.json()["error"]["message"]
    assert gateway.get("/api/train/export", params={"tz": "Mars/Olympus"}).status_code == 422
    page = gateway.get("/train/history", params={"date_from": "2026-11-05",
                                                 "date_to": "2026-11-01"})
    assert page.status_code == 422
    assert "posterior" in page.text


def test_history_page_renders_one_row_per_experiment_with_a_chart(gateway: TestClient) -> None:
    seed(gateway, 12)
    page = gateway.get("/train/history", params={"per_page": 5, "trainer": "ana"})
    assert page.status_code == 200
    assert page.text.count('<tr data-experiment="') == 4  # ana rated 4 of 12
    assert len(re.findall(r'class="pt dot-ratings" data-series="ratings"', page.text)) == 8
    assert "/api/train/export?format=csv&amp;trainer=ana" in page.text
    # The form sends every field, empty ones as "": they mean "any".
    blank = gateway.get("/train/history?tz=&date_from=&date_to=&trainer=ana&provider="
                        "&prompt_version=&mode=&rating_min=&rating_max=&sort=newest&per_page=20")
    assert blank.status_code == 200 and blank.text.count('<tr data-experiment="') == 4
    english = gateway.get("/train/history", params={"lang": "en"})
    assert "Ratings in the selection" in english.text and "Valoraciones" not in english.text


def test_status_page_figures_match_the_api(gateway: TestClient) -> None:
    seed(gateway, 6)
    api = gateway.get("/api/train/status").json()
    html = gateway.get("/status").text

    def value(element_id: str) -> str:
        found = re.search(rf'id="{element_id}" data-value="([^"]*)"', html)
        assert found, element_id
        return found.group(1)

    p1 = api["phase_1"]
    assert int(value("fig-samples")) == p1["samples_collected"] == 12
    assert float(value("fig-best")) == p1["best_rating"]
    assert value("fig-phase") == ("true" if not p1["active"] else "false")
    assert int(value("fig-pending")) == sum(api["pending_deliveries"].values())
    assert value("fig-reward") == ("true" if api["phase_2"]["ready_for_inference"] else "false")
    # The optimizer is down: no certainty, no recommendation, no provider percentages.
    assert value("fig-certainty") == ""
    assert "sin datos" in html
    assert "El optimizador no responde" in html
    assert 'data-probability=""' in html and "%" not in re.sub(
        r"(?s)<style.*?</style>", "", html.split('id="fig-providers"')[1].split("</table>")[0])
    # The ratings chart draws one point per rating.
    assert len(re.findall(r'data-series="ratings"', html)) == p1["samples_collected"]
    english = gateway.get("/status", params={"lang": "en"}).text
    assert "Learning status" in english and "¿Qué significa?" not in english


def test_a_repeat_reshows_the_same_images_and_reaches_the_optimizer_as_a_rating(
        gateway: TestClient) -> None:
    seeded = seed(gateway, 3, blobs=True)
    source = seeded[0]
    assert gateway.post("/api/train/repeats", json={"rated_by": "bea"}).status_code == 403
    admin = sign_in_with_token(gateway, "boss", "admin")
    made = gateway.post("/api/train/repeats", json={"rated_by": "bea",
                                                    "experiment_id": source.experiment_id})
    assert made.status_code == 201, made.text
    repeat_id = made.json()["experiment_id"]
    original = gateway.get(f"/api/experiments/{source.experiment_id}").json()
    repeat = gateway.get(f"/api/experiments/{repeat_id}").json()
    assert repeat["status"] == "ready"
    assert repeat["original_url"] == original["original_url"]
    assert {o["image_id"] for o in repeat["options"]} == \
        {o["image_id"] for o in original["options"]}
    # Blind: nothing in the repeat carries the earlier ratings.
    assert all(o["rating"] is None and o["comments"] is None for o in repeat["options"])

    by_image = {o["image_id"]: o for o in original["options"]}
    sign_in_with_token(gateway, "bea", "trainer")
    rated = gateway.post("/api/train/rate", json={
        "experiment_id": repeat_id, "rated_by": "bea",
        "ratings": [{"option": o["option"], "rating": by_image[o["image_id"]]["rating"]}
                    for o in repeat["options"]]})
    assert rated.status_code == 200, rated.text

    # The optimizer gets ordinary ratings of the same render and parameters.
    ctx = gateway.app.state.context  # type: ignore[attr-defined]

    async def payloads() -> list[dict]:
        from sqlalchemy import select

        async with ctx.sessions() as session:
            rows = (await session.execute(select(OutboxMessage).where(
                OutboxMessage.target == "optimizer",
                OutboxMessage.rating_id.in_(rated.json()["rating_ids"])))).scalars().all()
        return [r.payload["results"][0] for r in rows]

    assert gateway.portal is not None
    sent = gateway.portal.call(payloads)
    assert len(sent) == 2
    source_params = {o["parameters"]["api"] + str(sorted(o["parameters"].items()))
                     for o in original["options"]}
    for item in sent:
        assert item["rater"] == "bea" and item["experiment_id"] == repeat_id
        assert item["parameters"]["api"] + str(sorted(item["parameters"].items())) in \
            source_params
    image_of_original = gateway.portal.call(_original_image_id, ctx, source.experiment_id)
    assert {item["image_id"] for item in sent} == {image_of_original}

    assert gateway.get("/api/train/quality").status_code == 403  # trainers: no
    gateway.headers["Authorization"] = f"Bearer {admin}"
    report = gateway.get("/api/train/quality").json()
    assert report["repeats"] == 1 and report["repeat_ratings"] == 2
    assert report["units"] == 2  # both images now have two ratings
    pair = report["pairs"][0]
    assert {pair["first"], pair["second"]} == {source.trainer, "bea"} or \
        source.trainer == "bea"
    history = experiments(gateway, trainer="bea")
    assert any(e["repeat_of"] == source.experiment_id for e in history["experiments"])
    page = gateway.get("/quality")
    assert page.status_code == 200 and "Calidad de las valoraciones" in page.text
    assert "tendencia de cada persona" in page.text  # the optimizer is down: said plainly


async def _original_image_id(ctx: object, experiment_id: str) -> str:
    from services.gateway.models import Experiment

    async with ctx.sessions() as session:  # type: ignore[attr-defined]
        experiment = await session.get(Experiment, experiment_id)
        return str(experiment.original_image_id)


def test_repeats_follow_the_configured_share(gateway: TestClient) -> None:
    import random

    from services.gateway import repeats

    seed(gateway, 4)
    ctx = gateway.app.state.context  # type: ignore[attr-defined]
    assert gateway.portal is not None
    never = gateway.portal.call(repeats.maybe_repeat, ctx, "ana", random.Random(1), 0.0)
    assert never is None
    made = gateway.portal.call(repeats.maybe_repeat, ctx, "ana", random.Random(1), 1.0)
    assert made is not None and made.repeat_of is not None
    # The default share is 5 %: over 2,000 draws about 100 would be repeats.
    rng = random.Random(7)
    drawn = sum(rng.random() < ctx.settings.repeat_share for _ in range(2000))
    assert ctx.settings.repeat_share == 0.05 and 70 < drawn < 130
    # A repeat is never chosen as the source of another repeat.
    async def sources() -> set[str]:
        from sqlalchemy.ext.asyncio import AsyncSession

        async with ctx.sessions() as session:
            assert isinstance(session, AsyncSession)
            return {e.id for e, _ in await repeats.candidates(session, "zoe")}

    assert made.id not in gateway.portal.call(sources)


def test_untimed_export_has_utc_times(gateway: TestClient) -> None:
    seeded = seed(gateway, 1)
    row = gateway.get("/api/train/export", params={"format": "json"}).json()["rows"][0]
    assert datetime.fromisoformat(row["experiment_created_at"].replace("Z", "+00:00")) == \
        seeded[0].created_at.astimezone(UTC)


def test_rating_on_the_page_offers_a_blind_repeat_at_the_configured_share(
        gateway_settings: Any) -> None:
    from services.gateway.main import create_app

    gateway_settings.repeat_share = 1.0  # every rating is followed by a repeat
    with TestClient(create_app(gateway_settings)) as gateway:
        seeded = seed(gateway, 2, blobs=True)
        sign_in_with_token(gateway, "boss", "admin")
        fresh = gateway.post("/api/train/repeats", json={
            "rated_by": "ana", "experiment_id": seeded[1].experiment_id}).json()
        sign_in_with_token(gateway, "ana", "trainer")
        answer = gateway.post("/train/rate", data={
            "experiment_id": fresh["experiment_id"],
            "rating_A": "4", "rating_B": "2"}, headers={"HX-Request": "true"})
        assert answer.status_code == 200, answer.text
        offer = re.search(r'hx-get="/train/experiments/(exp_[0-9a-f]+)"', answer.text)
        assert offer, answer.text
        shown = gateway.get(f"/train/experiments/{offer.group(1)}")
        assert shown.status_code == 200 and 'id="rating-form"' in shown.text
        body = gateway.get(f"/api/experiments/{offer.group(1)}").json()
        assert body["status"] == "ready"
        assert all(o["rating"] is None for o in body["options"])
