"""Status, history and rater-quality pages in headless Chromium, Spanish and English,
on the four real services: charts drawn from the API's data, figures equal to
``/api/train/status``, and no critical or serious axe-core violations.

Screenshots at 1440×900 and 390×844 go to ``tests/artifacts/`` (ignored by git).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from scripts.run import Cluster
from services.common.testing import make_test_image
from services.gateway.testing import TEST_PASSWORD
from tests.conftest import ARTIFACTS, counts, trainer_headers, wait_for
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.slow]

AXE = Path(__file__).resolve().parents[1] / "web" / "node_modules" / "axe-core" / "axe.min.js"
RATINGS = [(4, 2), (3, 3), (5, 2), (2, 4), (3, 5), (4, 4)]
TRAINERS = ["lucia", "marta", "lucia", "nico", "marta", "lucia"]


@pytest.fixture
def browser() -> Any:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"Chromium not found at {CHROMIUM}; `make test` should install it")
        pytest.skip(f"Chromium not found at {CHROMIUM} (run `make test` to install it)")
    if not AXE.exists():
        pytest.fail(f"axe-core missing at {AXE}: run `npm ci --prefix web`")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def wait_ready(client: httpx.Client, url: str) -> None:
    wait_for(lambda: client.get(url).json()["status"] == "ready", 60, "generation")


def admin_headers(cluster: Cluster, name: str = "sofia") -> dict[str, str]:
    """An admin added with the command line, and the API token it prints for her."""
    cluster.env.update({"AFINADOR_PASSWORD": TEST_PASSWORD})
    cluster.users("add", name, "--role", "admin")
    return {"Authorization": f"Bearer {cluster.users('token', name).splitlines()[-1]}"}


def sign_in(page: Any, gateway: str, name: str) -> None:
    from playwright.sync_api import expect

    page.goto(gateway + "/login?next=%2Fstatus")
    page.fill("#username", name)
    page.fill("#password", TEST_PASSWORD)
    page.get_by_role("button", name="Entrar").click()
    expect(page.locator("#signed-in-as")).to_contain_text(name)


def rate_some(cluster: Cluster) -> None:
    gateway = cluster.url("gateway")
    headers = {name: trainer_headers(cluster, name) for name in sorted(set(TRAINERS))}
    with httpx.Client(base_url=gateway, timeout=30) as client:
        for index, ((a, b), trainer) in enumerate(zip(RATINGS, TRAINERS, strict=True)):
            client.headers.update(headers[trainer])
            created = client.post("/api/enhance/train", data={"mode": "structure"}, files={
                "image": ("room.png", make_test_image(480, 320, "PNG", seed=index),
                          "image/png")})
            assert created.status_code == 202, created.text
            experiment_id = created.json()["experiment_id"]
            wait_ready(client, f"/api/experiments/{experiment_id}")
            rated = client.post("/api/train/rate", json={
                "experiment_id": experiment_id, "rated_by": trainer,
                "ratings": [{"option": "A", "rating": a, "comments": "un poco plano"},
                            {"option": "B", "rating": b}]})
            assert rated.status_code == 200, rated.text


def axe_violations(page: Any) -> list[dict[str, Any]]:
    # Evaluated through the DevTools protocol, which the page's CSP (no inline script)
    # does not govern, so the pages are checked under their real policy.
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8") + "\n;undefined")
    found: list[dict[str, Any]] = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
             .map(v => ({id: v.id, impact: v.impact, help: v.help,
                         nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))""")
    return [v for v in found if v["impact"] in ("critical", "serious")]


def test_status_history_and_quality_pages(cluster: Cluster, browser: Any) -> None:
    from playwright.sync_api import expect

    gateway = cluster.url("gateway")
    rate_some(cluster)
    admin = admin_headers(cluster)
    wait_for(lambda: counts(cluster)["optimizer"] == 2 * len(RATINGS), 60,
             "ratings to reach the optimizer")
    with httpx.Client(base_url=gateway, timeout=30, headers=admin) as client:
        made = client.post("/api/train/repeats", json={"rated_by": "nico"})
        assert made.status_code == 201, made.text
        status = client.get("/api/train/status").json()
        export = client.get("/api/train/export", params={"format": "json"}).json()
        listed = client.get("/api/train/experiments", params={"per_page": 50}).json()
    samples = status["phase_1"]["samples_collected"]
    assert samples == 2 * len(RATINGS) == export["count"]

    context = browser.new_context(viewport={"width": 1440, "height": 900},
                                  timezone_id="Europe/Madrid", locale="es-ES")
    page = context.new_page()
    page.set_default_timeout(20_000)
    sign_in(page, gateway, "sofia")
    for lang, heading, what in (("es", "Estado del aprendizaje", "¿Qué significa?"),
                                ("en", "Learning status", "What does it mean?")):
        page.goto(f"{gateway}/status?lang={lang}")
        expect(page.locator("h1")).to_have_text(heading)
        expect(page.locator(".what").first).to_contain_text(what)
        expect(page.locator("#chart-ratings circle.pt")).to_have_count(samples)
        expect(page.locator("#chart-providers circle.pt")).to_have_count(
            len(status["api_performance"]))
        expect(page.locator("#fig-samples")).to_have_text(str(samples))
        expect(page.locator("#fig-pending")).to_have_text(
            str(sum(status["pending_deliveries"].values())))
        best = status["phase_1"]["best_rating"]
        expect(page.locator("#fig-best")).to_contain_text(str(int(best)))
        certainty = (status["phase_1"]["posterior_convergence"] or {}).get("probability_within")
        assert certainty is not None  # the optimizer is up and has a model
        expected_pct = f"{round(certainty * 100)}" + ("\u00a0%" if lang == "es" else "%")
        expect(page.locator("#fig-certainty")).to_have_text(expected_pct)
        predicted = status["phase_1"]["predicted_rating"]
        shown = f"{predicted:.1f}".replace(".", "," if lang == "es" else ".")
        expect(page.locator("#fig-predicted")).to_contain_text(shown)
        recipe = page.locator("#fig-recommended li")
        expect(recipe).to_have_count(3)
        if lang == "es":
            expect(recipe.first).to_contain_text("intensidad")
            expect(recipe.first).to_contain_text(",")
        for name, post in status["provider_posterior"].items():
            row = page.locator(f'#fig-providers tr[data-provider="{name}"] .prob')
            expect(row).to_contain_text(f"{round(post['probability_best'] * 100)}")
        assert axe_violations(page) == [], lang
        page.screenshot(path=str(ARTIFACTS / f"status-{lang}-1440.png"), full_page=True)

        page.goto(f"{gateway}/train/history?lang={lang}")
        expect(page.locator("#chart-filtered circle.pt")).to_have_count(export["count"])
        expect(page.locator("#history-table tbody tr")).to_have_count(listed["total"])
        # Times are shown in the browser's zone (Madrid, UTC+1 in winter), localised.
        first = page.locator("#history-table tbody tr time").first
        expect(first).to_have_attribute("title", first.get_attribute("title") or "x")
        assert "UTC" not in (first.text_content() or "")
        assert axe_violations(page) == [], lang
        page.screenshot(path=str(ARTIFACTS / f"history-{lang}-1440.png"), full_page=True)

        page.goto(f"{gateway}/quality?lang={lang}")
        expect(page.locator("#quality-trainers tbody tr")).to_have_count(3)
        assert axe_violations(page) == [], lang

    # Filters and the export link carry the same query.
    page.goto(f"{gateway}/train/history?lang=es")
    page.select_option("#f-trainer", "lucia")
    page.get_by_role("button", name="Aplicar filtros").click()
    expect(page.locator("#history-table tbody tr")).to_have_count(
        sum(t == "lucia" for t in TRAINERS))
    assert "trainer=lucia" in (page.locator("#export-csv").get_attribute("href") or "")
    assert "tz=Europe" in page.url  # the browser's zone travelled with the filters
    context.close()

    phone = browser.new_context(viewport={"width": 390, "height": 844})
    mobile = phone.new_page()
    mobile.set_default_timeout(20_000)
    sign_in(mobile, gateway, "sofia")
    for path, name in (("/status?lang=es", "status-es-390"), ("/train/history?lang=es",
                                                              "history-es-390")):
        mobile.goto(gateway + path)
        width = mobile.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (path, width)  # nothing overflows the phone's width
        mobile.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    phone.close()
