"""The gateway's prompt-version pages and ``POST /api/train/evolve`` over HTTP, against a
real evolution service on a loopback port (uvicorn in a thread, offline evolver,
temporary database and export folder)."""

from __future__ import annotations

import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from services.common.settings import REPO_ROOT
from services.evolution.main import create_app as create_evolution
from services.evolution.settings import EvolutionSettings
from services.gateway.main import create_app as create_gateway
from services.gateway.settings import GatewaySettings
from services.gateway.testing import add_user, sign_in_with_token


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def evolution_url(tmp_path: Path) -> Iterator[str]:
    import uvicorn

    prompts = tmp_path / "prompts"
    shutil.copytree(REPO_ROOT / "prompts", prompts)
    settings = EvolutionSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'evolution.db'}", prompts_dir=prompts,
        export_dir=tmp_path / "export", data_dir=tmp_path / "data", engine="offline")
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_evolution(settings), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "evolution did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def _gateway(tmp_path: Path, evolution_url: str) -> TestClient:
    closed = f"http://127.0.0.1:{_free_port()}"
    settings = GatewaySettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}", data_dir=tmp_path / "gw",
        optimizer_url=closed, reward_url=closed, evolution_url=evolution_url,
        internal_timeout_seconds=5)
    return TestClient(create_gateway(settings))


@pytest.fixture
def gateway(tmp_path: Path, evolution_url: str) -> Iterator[TestClient]:
    """Signed in as admin ``ana`` (prompt decisions are admins')."""
    with _gateway(tmp_path, evolution_url) as client:
        sign_in_with_token(client, "ana", "admin")
        yield client


def _internal(evolution_url: str, method: str, path: str, **kwargs: Any) -> Any:
    from services.common.settings import DEV_SERVICE_TOKEN

    response = httpx.request(method, evolution_url + path, timeout=10,
                             headers={"Authorization": f"Bearer {DEV_SERVICE_TOKEN}"}, **kwargs)
    response.raise_for_status()
    return response.json()


def _wait_run(gateway: TestClient, run_id: int, headers: dict[str, str] | None = None) -> str:
    """Poll the run fragment (as the page does) until the run is no longer running."""
    deadline = time.monotonic() + 20
    while True:
        answer = gateway.get(f"/prompts/runs/{run_id}", headers=headers)
        assert answer.status_code == 200, answer.text  # not the sign-in page: it would not wait
        html = answer.text
        if "run-running" not in html:
            return html
        assert time.monotonic() < deadline, "evolution run did not finish"
        time.sleep(0.05)


def test_lineage_evolve_diff_promote_and_audit(gateway: TestClient, evolution_url: str
                                               ) -> None:
    _internal(evolution_url, "POST", "/prompts/results", json={"results": [
        {"rating_id": "r1", "experiment_id": "e1", "option": "A", "version": "v1.0.0",
         "mode": "structure", "rating": 2, "comments": "se ve muy plano", "rater": "lucia"},
        {"rating_id": "r2", "experiment_id": "e1", "option": "B", "version": "v1.0.0",
         "mode": "structure", "rating": 3, "comments": "faltan sombras", "rater": "lucia"},
    ]})
    page = gateway.get("/prompts")
    assert page.status_code == 200
    html = page.text
    assert '<html lang="es">' in html and "Versiones de prompt" in html
    assert 'name="actor"' not in html and "admin-locked" not in html  # ana is an admin
    assert 'id="version-v1.0.0"' in html and "activa" in html
    assert "Plano / sin profundidad" in html and "«se ve muy plano»" in html
    assert "No hay ninguna prueba en curso." in html

    started = gateway.post("/prompts/evolve", data={"reason": "probar"},
                           headers={"HX-Request": "true"})
    assert started.status_code == 200
    run_id = int(re.search(r"/prompts/runs/(\d+)", started.text).group(1))  # type: ignore[union-attr]
    finished = _wait_run(gateway, run_id)
    assert "creada la versión v1.0.1" in finished

    html = gateway.get("/prompts").text
    assert 'id="version-v1.0.1"' in html and "candidata" in html
    assert "v1.0.1 (retadora) contra v1.0.0 (campeona)" in html
    assert 'id="evolve-blocked"' in html
    assert "evolución" in html and "ana" in html and "probar" in html  # audit row

    diff = gateway.get("/prompts/diff", params={"from": "v1.0.0", "to": "v1.0.1"})
    assert diff.status_code == 200 and 'class="term added"' in diff.text

    detail = gateway.get("/prompts/versions/v1.0.1").text
    assert "Versión v1.0.1" in detail and "Cambios respecto a v1.0.0" in detail
    assert 'id="version-changes"' in detail and 'id="promote-form"' in detail

    refused = gateway.post("/prompts/versions/v1.0.1/promote", data={"actor": "ana"},
                           headers={"HX-Request": "true"})
    assert refused.status_code == 422 and refused.headers["HX-Retarget"] == "#flash"
    assert "por qué" in refused.text
    done = gateway.post("/prompts/versions/v1.0.1/promote",
                        data={"actor": "ana", "reason": "mejor a ojo"},
                        headers={"HX-Request": "true"})
    assert done.status_code == 200 and done.headers["HX-Redirect"] == "/prompts"
    html = gateway.get("/prompts").text
    assert re.search(r'id="prompts-current"><a [^>]*>v1.0.1<', html)
    assert "promoción manual" in html and "mejor a ojo" in html

    again = gateway.post("/prompts/versions/v1.0.1/promote",
                         data={"actor": "ana", "reason": "otra vez"},
                         headers={"HX-Request": "true"})
    assert again.status_code == 409 and "ya es la versión activa" in again.text

    english = gateway.get("/prompts?lang=en").text
    assert "Prompt versions" in english and "manual promotion" in english


def test_api_train_evolve_proxies_and_reports_a_running_test(gateway: TestClient) -> None:
    first = gateway.post("/api/train/evolve", json={"actor": "script", "reason": "nightly"})
    assert first.status_code == 202, first.text
    body = first.json()
    assert (body["trigger"], body["actor"], body["status"]) == ("manual", "ana", "running")
    _wait_run(gateway, body["id"])
    second = gateway.post("/api/train/evolve")
    assert second.status_code == 409
    assert "prueba A/B" in second.json()["detail"]
    assert second.json()["error"]["code"] == "evolution_blocked"
    bad = gateway.post("/api/train/evolve", content=b"[1]",
                       headers={"Content-Type": "application/json"})
    assert bad.status_code == 422


def test_pages_say_so_in_spanish_when_evolution_is_down(tmp_path: Path) -> None:
    with _gateway(tmp_path, f"http://127.0.0.1:{_free_port()}") as gateway:
        sign_in_with_token(gateway, "ana", "admin")
        page = gateway.get("/prompts", headers={"accept": "text/html"})
        assert page.status_code == 503
        assert "El servicio de evolución de prompts no responde" in page.text
        assert "no se pierde ninguna puntuación" in page.text
        api = gateway.post("/api/train/evolve")
        assert api.status_code == 503
        assert "no responde" in api.json()["detail"]
        flash = gateway.post("/prompts/evolve", data={"actor": "ana"},
                             headers={"HX-Request": "true"})
        assert flash.status_code == 503 and flash.headers["HX-Retarget"] == "#flash"


def test_only_admins_decide_and_the_actor_is_the_signed_in_admin(
        tmp_path: Path, evolution_url: str) -> None:
    with _gateway(tmp_path, evolution_url) as gateway:
        trainer = {"Authorization": f"Bearer {add_user(gateway, 'tere', 'trainer')}"}
        page = gateway.get("/prompts", headers=trainer)
        assert page.status_code == 200  # reading is for every signed-in user
        assert 'class="hint admin-locked"' in page.text and "Solo un administrador" in page.text
        assert 'id="evolve-button"' not in page.text

        refused = gateway.post("/api/train/evolve", json={"actor": "tere"}, headers=trainer)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_only"
        flash = gateway.post("/prompts/evolve", data={"reason": "probar"},
                             headers={**trainer, "HX-Request": "true"})
        assert flash.status_code == 403 and flash.headers["HX-Retarget"] == "#flash"
        assert _internal(evolution_url, "GET", "/prompts/runs")["runs"] == []  # nothing started

        # The audited name is the signed-in admin's, whatever the body says.
        admin = {"Authorization": f"Bearer {add_user(gateway, 'marta', 'admin')}"}
        started = gateway.post("/api/train/evolve", json={"actor": "someone-else"},
                               headers=admin)
        assert started.status_code == 202, started.text
        assert started.json()["actor"] == "marta"
        _wait_run(gateway, started.json()["id"], headers=admin)

        assert gateway.post("/prompts/versions/v1.0.1/promote", data={"reason": "mejor a ojo"},
                            headers=trainer).status_code == 403
        done = gateway.post("/prompts/versions/v1.0.1/promote",
                            data={"actor": "ana", "reason": "mejor a ojo"},
                            headers={**admin, "HX-Request": "true"})
        assert done.status_code == 200, done.text
        audit = _internal(evolution_url, "GET", "/prompts/audit")["entries"]
        promotion = next(e for e in audit if e["reason"] == "mejor a ojo")
        assert promotion["actor"] == "marta"
        log = gateway.get("/admin/audit", headers=admin).text
        assert "prompt_promote" in log and "prompt_evolve" in log and "marta" in log


def test_the_spanish_page_is_all_spanish_and_the_diff_covers_local(
        gateway: TestClient, evolution_url: str) -> None:
    _internal(evolution_url, "POST", "/prompts/results", json={"results": [
        {"rating_id": f"r{i}", "experiment_id": f"e{i}", "option": "A", "version": "v1.0.0",
         "mode": "structure", "rating": 2, "comments": "se ve muy plano", "rater": "lucia"}
        for i in range(3)]})
    started = gateway.post("/prompts/evolve", data={"reason": "probar"},
                           headers={"HX-Request": "true"})
    run_id = int(re.search(r"/prompts/runs/(\d+)", started.text).group(1))  # type: ignore[union-attr]
    _wait_run(gateway, run_id)
    changes = _internal(evolution_url, "GET", "/prompts/versions/v1.0.1")["document"]["changes"]
    assert changes and all(re.match(r"(structure|surfaces): (added|replaced|moved|removed) ",
                                    c) for c in changes)  # the offline engine writes English

    html = gateway.get("/prompts?lang=es").text
    for english in ("added '", "to the prompt", "comment(s)", "manual<", "created<", " vs "):
        assert english not in html, english
    assert "se añadió «" in html or "se cambió «" in html or "se adelantó «" in html
    assert "a mano" in html and "versión creada" in html  # the run table
    assert "Aún no hay pares puntuados" in html  # the A/B test in words

    detail = gateway.get("/prompts/versions/v1.0.1?lang=es").text
    assert "added '" not in detail
    assert 'data-provider="local"' in detail and "usa el prompt de" in detail
    diff = gateway.get("/prompts/diff", params={"from": "v1.0.0", "to": "v1.0.1"}).text
    providers = set(re.findall(r'<h4 data-provider="([a-z]+)"', diff))
    assert providers == {"leonardo", "stablediffusion", "local"}

    english = gateway.get("/prompts?lang=en").text
    assert "se añadió" not in english and "by hand" in english
