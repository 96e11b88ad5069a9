"""The trainer's flow in headless Chromium (Debian's package, driven by Playwright).

Spanish by default, stars given with the keyboard only (keys 1–5, Enter to submit).
Screenshots go to ``tests/artifacts/`` (ignored by git).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from scripts.run import Cluster
from services.common.testing import make_test_image
from services.gateway.testing import TEST_PASSWORD
from tests.conftest import ARTIFACTS, counts, trainer_headers, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.slow]

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


@pytest.fixture
def browser_page():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"Chromium not found at {CHROMIUM}; `make test` should install it")
        pytest.skip(f"Chromium not found at {CHROMIUM} (run `make test` to install it)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(20_000)
        try:
            yield page
        finally:
            browser.close()


def sign_in(page, cluster: Cluster, name: str = "lucia") -> None:
    """Sign in through the login page, as a trainer would (after any page redirects there)."""
    from playwright.sync_api import expect

    trainer_headers(cluster, name)  # adds the trainer with the command line
    page.goto(cluster.url("gateway") + "/train")
    expect(page).to_have_url(cluster.url("gateway") + "/login?next=%2Ftrain")
    page.fill("#username", name)
    page.fill("#password", TEST_PASSWORD)
    page.get_by_role("button", name="Entrar").click()
    expect(page).to_have_url(cluster.url("gateway") + "/train")
    expect(page.locator("#signed-in-as")).to_contain_text(name)


def test_trainer_flow_in_spanish_with_keyboard(cluster: Cluster, browser_page, tmp_path: Path
                                               ) -> None:
    from playwright.sync_api import expect

    page = browser_page
    render = tmp_path / "render.png"
    render.write_bytes(make_test_image(900, 600, "PNG", seed=3))
    gateway = cluster.url("gateway")

    sign_in(page, cluster)
    expect(page.locator("html")).to_have_attribute("lang", "es")
    expect(page.get_by_role("heading", name="1. Sube un render")).to_be_visible()
    expect(page.locator(".empty")).to_contain_text("Aún no hay ningún render")
    expect(page.locator(".provider-note")).to_contain_text("no es un modelo de difusión")
    expect(page.locator("#status-samples")).to_have_text("0")
    page.screenshot(path=str(ARTIFACTS / "01-entrenar-vacio.png"), full_page=True)

    page.set_input_files("#image", str(render))
    page.check("input[name=mode][value=surfaces]")
    page.get_by_role("button", name="Subir y generar").click()

    expect(page.get_by_role("heading", name="2. Compara y puntúa")).to_be_visible()
    expect(page.locator("#card-A .frame[data-ready] img.shot")).to_be_visible(timeout=60_000)
    expect(page.locator("#card-B .frame[data-ready] img.shot")).to_be_visible(timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "02-variantes.png"), full_page=True)

    # Stars with the keyboard only: 4 rates option A, then focus moves to B; 5 rates B.
    page.keyboard.press("4")
    expect(page.locator("#rating-A-4")).to_be_checked()
    page.keyboard.press("5")
    expect(page.locator("#rating-B-5")).to_be_checked()
    expect(page.locator("#submit-ratings")).to_be_focused()
    page.fill("#comments-A", "se ve un poco plano")
    page.locator("#submit-ratings").focus()
    page.keyboard.press("Enter")

    expect(page.locator("#rated")).to_contain_text("Puntuaciones guardadas")
    # Acknowledged within the short wait, or delivered in the background: either is said.
    expect(page.locator("#rated")).to_contain_text(
        re.compile("El optimizador (ya aprendió de ellas|aún no lo ha confirmado)"))
    expect(page.locator("#status-samples")).to_have_text("2")
    expect(page.locator("#status-best")).to_contain_text("5.0")
    expect(page.locator("#status-prompt")).to_contain_text("v1.0.0")
    page.screenshot(path=str(ARTIFACTS / "03-puntuado.png"), full_page=True)

    seen = wait_for(lambda: (c := counts(cluster))["reward"] == 2 and c, 30,
                    "ratings to reach every service")
    assert seen["optimizer"] == 2 and seen["evolution"]["v1.0.0"] == 2

    page.goto(gateway + "/train/history")
    expect(page.locator("table.history tbody tr")).to_have_count(1)  # one row per experiment
    expect(page.locator("table.history")).to_contain_text("se ve un poco plano")

    page.goto(gateway + "/train?lang=en")
    expect(page.get_by_role("heading", name="1. Upload a render")).to_be_visible()
    page.goto(gateway + "/train")  # the choice is remembered
    expect(page.locator("html")).to_have_attribute("lang", "en")


def test_a_broken_upload_shows_a_spanish_error(cluster: Cluster, browser_page, tmp_path: Path
                                               ) -> None:
    from playwright.sync_api import expect

    page = browser_page
    fake = tmp_path / "render.jpg"
    fake.write_text("<html>esto no es una imagen</html>")
    sign_in(page, cluster)
    page.set_input_files("#image", str(fake))
    page.get_by_role("button", name="Subir y generar").click()
    # The error appears next to the file field, where the trainer is looking.
    expect(page.locator("#upload-error .error-box")).to_contain_text("no es una imagen válida")
    expect(page.locator(".empty")).to_be_visible()  # nothing else on the page changed
    page.screenshot(path=str(ARTIFACTS / "04-error-subida.png"), full_page=True)
