"""The rating page in headless Chromium (Debian's package, driven by Playwright).

A trainer's whole round at 1440×900 in Spanish and in English without scrolling,
keyboard only; synchronised zoom, slider, flicker and full screen; blindness until
saved; drafts that survive a reload and a language switch; undo and edit from the
history reaching the optimizer, evolution and reward as one rating; "I can't
judge" never reaching them; the phone layout; axe-core (from npm) on every state.
Screenshots go to ``tests/artifacts/`` (ignored by git).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from scripts.run import Cluster
from services.common.testing import make_test_image
from tests.conftest import ARTIFACTS, TEST_PASSWORD, counts, trainer_headers, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.slow]

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
AXE = Path(__file__).parent.parent / "web" / "node_modules" / "axe-core" / "axe.min.js"
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"Chromium not found at {CHROMIUM}; `make test` should install it")
        pytest.skip(f"Chromium not found at {CHROMIUM} (run `make test` to install it)")
    assert AXE.exists(), "axe-core is missing: run `npm ci --prefix web` (make test does)"
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser: Any, viewport: dict[str, int] = DESKTOP, **options: Any) -> Any:
    # bypass_csp only lets the test inject axe-core; the page itself needs no exception.
    page = browser.new_page(viewport=viewport, bypass_csp=True, **options)
    page.set_default_timeout(30_000)
    return page


def axe_violations(page: Any) -> list[str]:
    """Critical and serious axe-core violations on the page as it is now."""
    if not page.evaluate("!!window.axe"):
        page.add_script_tag(path=str(AXE))
    found = page.evaluate("""async () => {
        const result = await axe.run(document);
        return result.violations.filter(v => v.impact === 'critical' || v.impact === 'serious')
          .map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).slice(0, 3).join(' | '));
    }""")
    return list(found)


def in_viewport(page: Any, selector: str) -> bool:
    """The element is entirely inside the window (no scroll needed to reach it)."""
    return bool(page.evaluate("""sel => {
        const r = document.querySelector(sel).getBoundingClientRect();
        return r.top >= 0 && r.left >= 0 && r.bottom <= innerHeight && r.right <= innerWidth
               && r.width > 0 && r.height > 0;
    }""", selector))


def transforms(page: Any) -> list[str]:
    return list(page.evaluate(
        "Array.from(document.querySelectorAll('.compare .stage')).map(s => s.style.transform)"))


def sign_in(page: Any, cluster: Cluster, name: str) -> dict[str, str]:
    """Add trainer ``name`` (command line), sign in through the login page; returns
    headers with her API token for the JSON API."""
    from playwright.sync_api import expect

    headers = trainer_headers(cluster, name)
    page.goto(cluster.url("gateway") + "/login?next=%2Ftrain")
    page.fill("#username", name)
    page.fill("#password", TEST_PASSWORD)
    page.locator("form button[type=submit]").click()
    expect(page).to_have_url(cluster.url("gateway") + "/train")
    return headers


def upload(page: Any, gateway: str, render: Path, lang: str = "es") -> str:
    from playwright.sync_api import expect

    page.goto(gateway + f"/train?lang={lang}")
    page.set_input_files("#image", str(render))
    page.locator("#upload-form button[type=submit]").focus()
    page.keyboard.press("Enter")
    for option in ("A", "B"):  # (on a phone only one of them is visible at a time)
        expect(page.locator(f"#card-{option} .frame[data-ready] img.shot")).to_have_count(
            1, timeout=90_000)
    return str(page.locator("#rating-form").get_attribute("data-experiment-id"))


def stored(cluster_dir: Path, service: str, rating_id: str) -> tuple[int, int] | None:
    """(rating, revision) as the learning service stored it, or None."""
    table = {"optimizer": "observations", "evolution": "prompt_results",
             "reward": "reward_observations"}[service]
    with sqlite3.connect(f"file:{cluster_dir / 'data' / service}.db?mode=ro", uri=True) as db:
        row = db.execute(f"SELECT rating, revision FROM {table} WHERE rating_id = ?",
                         (rating_id,)).fetchone()
    return (int(row[0]), int(row[1])) if row else None


def history(gateway: str, headers: dict[str, str]) -> dict[str, Any]:
    return dict(httpx.get(gateway + "/api/train/history", headers=headers, timeout=10).json())


def rating_ids(gateway: str, headers: dict[str, str], experiment_id: str
               ) -> dict[str, dict[str, Any]]:
    experiment = next(e for e in history(gateway, headers)["experiments"]
                      if e["experiment_id"] == experiment_id)
    return {o["option"]: o for o in experiment["options"]}


@pytest.fixture
def render(tmp_path: Path) -> Path:
    path = tmp_path / "render.png"
    path.write_bytes(make_test_image(1024, 768, "PNG", seed=3))
    return path


def test_spanish_round_fits_one_screen_is_blind_and_loses_nothing(
        cluster: Cluster, browser: Any, render: Path, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    gateway = cluster.url("gateway")
    page = new_page(browser)
    headers = sign_in(page, cluster, "lucia")
    expect(page.locator("h1")).to_have_count(1)
    expect(page.locator("#guide")).to_have_attribute("open", "")  # open on first use
    assert axe_violations(page) == []
    page.screenshot(path=str(ARTIFACTS / "rating-01-empty.png"))

    experiment_id = upload(page, gateway, render)
    # The page scrolled itself to the comparison: stars and the save button need no scroll.
    for selector in ("#card-A .stars", "#card-B .stars", "#submit-ratings",
                     "#pane-O .frame", "#card-A .frame", "#card-B .frame"):
        assert in_viewport(page, selector), selector
    expect(page.locator("#rating-A-1")).to_be_focused()  # focus moved to the comparison
    expect(page.locator("#rate-status")).to_contain_text("Las dos variantes están listas")

    # Blind: nothing in the comparison says which provider, parameters or prompt produced
    # A and B (the status panel above it shows the system's state, not this experiment's).
    described = httpx.get(f"{gateway}/api/experiments/{experiment_id}", headers=headers,
                          timeout=10).json()
    visible = page.locator("#workspace").inner_text()
    for option in described["options"]:
        assert option["prompt_version"] not in visible
        assert option["provider_label"] not in visible
        for name, value in option["parameters"].items():
            if isinstance(value, float):
                assert str(value) not in visible, (name, value)
    assert "optimizador bayesiano" not in visible and "exploración inicial" not in visible
    assert axe_violations(page) == []
    page.screenshot(path=str(ARTIFACTS / "rating-02-ready-1440.png"))

    # Zoom: a wheel over A zooms all three images to the same transform; 0 fits again.
    box = page.locator("#card-A .frame").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.4)
    page.mouse.wheel(0, -400)
    wait_for(lambda: (t := transforms(page))[0] != "" and len(set(t)) == 1
             and "scale(1)" not in t[0] and t, 10, "the three images to zoom together")
    page.screenshot(path=str(ARTIFACTS / "rating-03-zoom-1440.png"))
    page.locator("#rating-A-1").focus()
    page.keyboard.press("0")
    wait_for(lambda: all(t.startswith("scale(1)") for t in transforms(page)), 10, "fit")

    # + zooms in; f shows A in full screen with the same zoom; f again leaves.
    page.keyboard.press("+")
    wait_for(lambda: len(set(t := transforms(page))) == 1 and "scale(1.5)" in t[0], 10, "+")
    page.keyboard.press("f")
    wait_for(lambda: page.evaluate(
        "document.fullscreenElement === document.querySelector('#card-A .frame')"), 10,
        "A in full screen")
    assert "scale(1.5)" in transforms(page)[1]
    page.keyboard.press("f")
    wait_for(lambda: page.evaluate("document.fullscreenElement === null"), 10, "exit")
    page.keyboard.press("0")

    # Before/after: s shows a keyboard-operable slider per variant.
    page.keyboard.press("s")
    slider = page.locator("#card-A img-comparison-slider")
    expect(slider).to_be_visible()
    slider.focus()
    before = page.evaluate("document.querySelector('#card-A img-comparison-slider').value")
    page.keyboard.down("ArrowLeft")  # the line moves while the arrow is held
    wait_for(lambda: page.evaluate(
        "document.querySelector('#card-A img-comparison-slider').value") < before, 10,
        "the slider to move with the keyboard")
    page.keyboard.up("ArrowLeft")
    page.screenshot(path=str(ARTIFACTS / "rating-04-slider-1440.png"))
    page.locator("#rating-A-1").focus()
    page.keyboard.press("s")
    expect(slider).to_be_hidden()

    # Hold space: the original in place of the variants.
    page.keyboard.down(" ")
    expect(page.locator(".compare")).to_have_class("compare flicker")
    assert page.evaluate(
        "getComputedStyle(document.querySelector('#card-A .flick')).visibility") == "visible"
    page.keyboard.up(" ")
    expect(page.locator(".compare")).to_have_class("compare")

    # A draft survives a reload and a language switch.
    page.keyboard.press("4")
    expect(page.locator("#rating-A-4")).to_be_checked()
    expect(page.locator("#level-A")).to_have_text("Casi una foto: fallos solo de cerca")
    page.fill("#comments-A", "se ve un poco plano.")
    page.get_by_role("group", name="Añadir al comentario de la opción A").get_by_role(
        "button", name="iluminación").click()
    expect(page.locator("#comments-A")).to_have_value("se ve un poco plano. Iluminación")
    page.reload()
    expect(page.locator("#rating-A-4")).to_be_checked()
    expect(page.locator("#comments-A")).to_have_value("se ve un poco plano. Iluminación")
    page.get_by_role("link", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("#rating-A-4")).to_be_checked()
    expect(page.locator("#comments-A")).to_have_value("se ve un poco plano. Iluminación")
    page.get_by_role("link", name="Español").click()
    expect(page.locator("html")).to_have_attribute("lang", "es")
    expect(page.locator("#rating-A-4")).to_be_checked()

    # b moves to B in one step; 5 rates it; Enter saves. Then, and only then, the reveal.
    page.keyboard.press("b")
    expect(page.locator("#rating-B-1")).to_be_focused()
    page.keyboard.press("5")
    page.keyboard.press("Enter")
    expect(page.locator("#rated")).to_contain_text("Puntuaciones guardadas")
    expect(page.locator("#next-render")).to_be_focused()
    for option in described["options"]:
        expect(page.locator(f"#reveal-{option['option']} .prompt-version")).to_have_text(
            option["prompt_version"])
    assert axe_violations(page) == []
    page.screenshot(path=str(ARTIFACTS / "rating-05-saved-1440.png"))

    ids = rating_ids(gateway, headers, experiment_id)
    a_id, b_id = ids["A"]["rating_id"], ids["B"]["rating_id"]
    assert ids["A"]["seconds_to_rate"] is not None and ids["A"]["seconds_to_rate"] > 0
    wait_for(lambda: (c := counts(cluster))["optimizer"] == 2 and c["reward"] == 2, 30,
             "both ratings to reach the services")
    assert stored(cluster.log_dir.parent, "optimizer", a_id) == (4, 1)

    # Undo within 30 s reopens the form with what was saved; the correction is a revision.
    page.locator("#undo").click()
    expect(page.locator("#rating-A-4")).to_be_checked()
    expect(page.locator(".editing-note")).to_be_visible()
    page.keyboard.press("a")
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    expect(page.locator("#rated")).to_contain_text("Puntuaciones guardadas")
    for service in ("optimizer", "evolution", "reward"):
        wait_for(lambda s=service: stored(cluster.log_dir.parent, s, a_id) == (2, 2), 30,
                 f"the corrected rating to reach {service}")
    seen = counts(cluster)
    assert seen["optimizer"] == 2 and seen["reward"] == 2  # replaced, not added

    # Edit my own rating from the history page: B 5 → 3, again one rating.
    page.goto(gateway + "/train/history")
    assert axe_violations(page) == []
    page.locator(f"#edit-{b_id} button").click()
    page.locator(f"label[for='edit-{b_id}-3']").click()
    page.locator(f"#edit-{b_id} button[type=submit]").click()
    expect(page.locator(f"#edit-{b_id}")).to_contain_text("revisión 2")
    for service in ("optimizer", "evolution", "reward"):
        wait_for(lambda s=service: stored(cluster.log_dir.parent, s, b_id) == (3, 2), 30,
                 f"the edited rating to reach {service}")
    seen = counts(cluster)
    assert seen["optimizer"] == 2 and seen["reward"] == 2
    page.screenshot(path=str(ARTIFACTS / "rating-06-history-edit.png"))


def test_english_keyboard_only_round_with_cannot_judge(
        cluster: Cluster, browser: Any, render: Path) -> None:
    from playwright.sync_api import expect

    gateway = cluster.url("gateway")
    page = new_page(browser)
    headers = sign_in(page, cluster, "marta")
    experiment_id = upload(page, gateway, render, lang="en")
    expect(page.get_by_role("heading", name="2. Compare and rate")).to_be_visible()
    for selector in ("#card-A .stars", "#card-B .stars", "#submit-ratings"):
        assert in_viewport(page, selector), selector
    assert page.evaluate("getComputedStyle(document.querySelector('.keys')).display") != "none"

    # Keyboard only: 3 rates A (focus was moved there) and moves on to B.
    expect(page.locator("#rating-A-1")).to_be_focused()
    page.keyboard.press("3")
    expect(page.locator("#rating-A-3")).to_be_checked()
    expect(page.locator("#rating-B-1")).to_be_focused()
    # B: "I can't judge", with a reason, by Tab, Space and arrows.
    page.keyboard.press("Tab")
    expect(page.locator("#cj-B")).to_be_focused()
    page.keyboard.press("Space")
    expect(page.locator("#cj-B")).to_be_checked()
    page.keyboard.press("Enter")  # no reason yet: the error is next to B, not at the top
    expect(page.locator("#err-B")).to_contain_text("Choose why you can't judge")
    expect(page.locator("#reason-B")).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(page.locator("#reason-B")).to_have_value("broken")
    page.keyboard.press("Shift+Tab")  # back on the checkbox: hotkeys work again
    page.keyboard.press("Enter")
    expect(page.locator("#rated")).to_contain_text("Ratings saved")
    expect(page.locator("#reveal-B")).to_contain_text("Could not judge")
    assert axe_violations(page) == []

    ids = rating_ids(gateway, headers, experiment_id)
    assert ids["B"]["rating"] is None and ids["B"]["cannot_judge_reason"] == "broken"
    assert ids["A"]["rating"] == 3 and ids["A"]["seconds_to_rate"] > 0
    wait_for(lambda: counts(cluster)["optimizer"] == 1, 30, "A to reach the optimizer")
    # Nothing is still waiting to be delivered, and B never reached any service.
    status = httpx.get(gateway + "/api/train/status", headers=headers, timeout=10).json()
    assert sum(status["pending_deliveries"].values()) == 0
    assert status["phase_1"]["samples_collected"] == 1
    for service in ("optimizer", "evolution", "reward"):
        assert stored(cluster.log_dir.parent, service, ids["B"]["rating_id"]) is None
    assert counts(cluster)["optimizer"] == 1


def test_phone_shows_one_image_at_a_time(cluster: Cluster, browser: Any, render: Path
                                         ) -> None:
    from playwright.sync_api import expect

    gateway = cluster.url("gateway")
    page = new_page(browser, PHONE, has_touch=True, is_mobile=True)
    sign_in(page, cluster, "ana")
    upload(page, gateway, render)
    expect(page.locator(".switcher")).to_be_visible()
    expect(page.locator(".keys")).to_be_hidden()  # no hotkey hints on a phone
    expect(page.locator("#card-A .frame")).to_be_visible()
    expect(page.locator("#card-B .frame")).to_be_hidden()
    expect(page.locator("#submit-ratings")).to_be_visible()
    assert in_viewport(page, "#submit-ratings")
    page.screenshot(path=str(ARTIFACTS / "rating-07-phone-A.png"))
    assert axe_violations(page) == []

    page.get_by_role("tab", name="Opción B").click()
    expect(page.locator("#card-B .frame")).to_be_visible()
    expect(page.locator("#card-A .frame")).to_be_hidden()
    # Swipe left on the image: B → Original (the switcher wraps around).
    page.evaluate("""() => {
        const frame = document.querySelector('#card-B .frame');
        const r = frame.getBoundingClientRect(), y = r.top + r.height / 2;
        const touch = x => new Touch({identifier: 1, target: frame, clientX: x, clientY: y});
        frame.dispatchEvent(new TouchEvent('touchstart', {bubbles: true, touches: [touch(300)],
                                                          changedTouches: [touch(300)]}));
        frame.dispatchEvent(new TouchEvent('touchend', {bubbles: true, touches: [],
                                                        changedTouches: [touch(120)]}));
    }""")
    expect(page.locator(".compare")).to_have_attribute("data-show", "O")
    expect(page.locator("#pane-O .frame")).to_be_visible()
    expect(page.get_by_role("tab", name="Original")).to_have_attribute("aria-selected", "true")
    page.get_by_role("tab", name="Opción A").click()
    page.locator("label[for='rating-A-4']").click()
    page.locator("#submit-ratings").click()
    expect(page.locator("#rated")).to_contain_text("Puntuaciones guardadas")
    page.screenshot(path=str(ARTIFACTS / "rating-08-phone-saved.png"), full_page=True)
