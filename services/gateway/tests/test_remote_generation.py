"""The gateway generating through Leonardo and Replicate (fake servers on loopback):
jobs, progress, errors kept on the variant, and rating the variant that did succeed."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from services.common.testing import make_test_image, wait_for
from services.gateway import suggestions
from services.gateway.main import create_app
from services.gateway.models import Variant
from services.gateway.providers.fakes import Scenario, serve_fake
from services.gateway.settings import GatewaySettings
from services.gateway.testing import sign_in_with_token

CHOSEN = [
    ({"api": "leonardo", "init_strength": 0.3, "guidance_scale": 7.0,
      "controlnet_weight": 0.9}, "bayesian"),
    ({"api": "stablediffusion", "strength": 0.2, "guidance_scale": 7.5,
      "controlnet_conditioning_scale": 0.95}, "bayesian"),
]


def run(settings: GatewaySettings, monkeypatch: pytest.MonkeyPatch, leonardo: Scenario,
        replicate: Scenario) -> tuple[dict[str, Any], TestClient, Any]:
    async def fixed(*_args: Any, **_kwargs: Any) -> list[tuple[dict[str, Any], str]]:
        return [(dict(p), s) for p, s in CHOSEN]

    monkeypatch.setattr(suggestions, "suggest", fixed)
    leo_server, leo_state = serve_fake("leonardo", leonardo)
    rep_server, rep_state = serve_fake("replicate", replicate)
    leo_server.__enter__()
    rep_server.__enter__()
    configured = settings.model_copy(update={
        "leonardo_api_key": "test-key", "leonardo_base_url": f"{leo_server.url}/api/rest/v1",
        "replicate_api_token": "test-key", "replicate_base_url": f"{rep_server.url}/v1",
        "provider_poll_interval_seconds": 0.01, "provider_backoff_seconds": 0.01,
        "job_max_attempts": 1})
    client = TestClient(create_app(configured))
    client.__enter__()
    sign_in_with_token(client)
    created = client.post("/api/enhance/train", data={"mode": "structure"},
                          files={"image": ("r.png", make_test_image(), "image/png")}).json()

    def finished() -> dict | None:
        body = client.get(f"/api/experiments/{created['experiment_id']}").json()
        return body if body["status"] != "generating" else None

    body = wait_for(finished, 30, "remote generation")

    def close() -> None:
        client.__exit__(None, None, None)
        rep_server.__exit__(None, None, None)
        leo_server.__exit__(None, None, None)

    return body, client, close


def test_both_remote_providers_generate(gateway_settings: GatewaySettings,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    body, client, close = run(gateway_settings, monkeypatch, Scenario(), Scenario())
    try:
        a, b = body["options"]
        assert (a["provider"], a["status"]) == ("leonardo", "succeeded")
        assert (b["provider"], b["status"]) == ("stablediffusion", "succeeded")
        assert a["model"].startswith("leonardo:") and a["estimated_cost_usd"] == 0.015
        assert b["model"].startswith("replicate:") and b["estimated_cost_usd"] == 0.03
        assert client.get(a["url"]).headers["content-type"] == "image/jpeg"
    finally:
        close()


def test_a_failed_provider_does_not_block_the_other_option(gateway_settings: GatewaySettings,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    body, client, close = run(gateway_settings, monkeypatch, Scenario(fail_generation=True),
                              Scenario())
    try:
        a, b = body["options"]
        assert a["status"] == "failed" and "Leonardo" in a["error"]
        assert b["status"] == "succeeded"
        rated = client.post("/api/train/rate", json={
            "experiment_id": body["experiment_id"], "ratings": [{"option": "B", "rating": 4}]})
        assert rated.status_code == 200 and rated.json()["samples_collected"] == 1
        page = client.get(f"/train/variants/{a['variant_id']}/card")
        assert "Reintentar" in page.text and "FAILED" in page.text
        # The final state in words ("1 intentos" once; a failed-for-good card said it
        # would be retried)
        assert "Falló en el primer intento" in page.text
        assert "reintentará" not in page.text
    finally:
        close()


def test_the_english_page_says_the_provider_error_in_english(
        gateway_settings: GatewaySettings, monkeypatch: pytest.MonkeyPatch) -> None:
    body, client, close = run(gateway_settings, monkeypatch, Scenario(fail_generation=True),
                              Scenario())
    try:
        failed = body["options"][0]
        assert failed["status"] == "failed"
        assert failed["error_code"] == "provider_error.leonardo_failed"
        page = {lang: client.get("/train", params={"exp": body["experiment_id"], "lang": lang})
                for lang in ("en", "es")}
        assert page["en"].status_code == page["es"].status_code == 200
        assert "Leonardo AI could not generate the image" in page["en"].text
        assert "no pudo generar" not in page["en"].text
        assert "Leonardo AI no pudo generar la imagen" in page["es"].text

        async def forget_the_key() -> None:  # a row stored before migration 0008
            async with client.app.state.sessions() as session, session.begin():  # type: ignore[attr-defined]
                await session.execute(update(Variant).where(
                    Variant.id == failed["variant_id"]).values(error_code=None,
                                                               error_params=None))

        assert client.portal is not None
        client.portal.call(forget_the_key)
        card = client.get(f"/train/variants/{failed['variant_id']}/card", params={"lang": "en"})
        assert "Leonardo AI no pudo generar la imagen" in card.text  # the stored sentence
    finally:
        close()


def test_cancelling_a_variant_stops_the_remote_prediction(gateway_settings: GatewaySettings,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    async def fixed(*_args: Any, **_kwargs: Any) -> list[tuple[dict[str, Any], str]]:
        return [(dict(CHOSEN[1][0]), "bayesian"), (dict(CHOSEN[1][0]), "bayesian")]

    monkeypatch.setattr(suggestions, "suggest", fixed)
    server, state = serve_fake("replicate", Scenario(pending_polls=100_000))
    with server:
        settings = gateway_settings.model_copy(update={
            "replicate_api_token": "test-key", "replicate_base_url": f"{server.url}/v1",
            "replicate_wait_seconds": 0, "provider_poll_interval_seconds": 0.05,
            "job_max_attempts": 1})
        with TestClient(create_app(settings)) as client:
            sign_in_with_token(client)
            created = client.post("/api/enhance/train", data={"mode": "structure"},
                                  files={"image": ("r.png", make_test_image(), "image/png")}
                                  ).json()
            variant_id = created["options"][0]["variant_id"]

            wait_for(lambda: any(r["route"] == "poll" for r in state.requests), 30,
                     "the prediction to be running remotely")
            assert client.post(f"/api/variants/{variant_id}/cancel").status_code == 200
            wait_for(lambda: any(r["path"].endswith("/cancel") for r in state.requests), 30,
                     "the gateway to cancel the prediction at Replicate")
            body = client.get(f"/api/experiments/{created['experiment_id']}").json()
            assert body["options"][0]["status"] == "cancelled"
