"""The shared provider HTTP plumbing (retry decisions, auth scoping, limits) and the
settings that enable and configure the remote providers."""

from __future__ import annotations

import email.utils
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.gateway.errors import ProviderError
from services.gateway.providers import (
    LeonardoProvider,
    ReplicateProvider,
    RetryPolicy,
    build_providers,
)
from services.gateway.providers._http import (
    CreateOutcomeUnknown,
    ProgressTracker,
    ProviderHTTP,
    loggable,
    parse_retry_after,
)
from services.gateway.providers.fakes import RecordingProgress, RecordingSleep
from services.gateway.providers.messages import provider_error, render
from services.gateway.settings import GatewaySettings
from services.gateway.tests._provider_support import RENDER

API = "https://api.example.test/v1"


def answer(status: int = 200, *, headers: dict[str, str] | None = None,
           text: str = "") -> httpx.Response:
    return httpx.Response(status, headers=headers, text=text)


def test_retry_after_as_seconds_date_or_body_text() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after(answer(429, headers={"Retry-After": "5"})) == 5
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(answer(429, headers={"Retry-After": date}), now=now) == 30
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert parse_retry_after(answer(429, headers={"Retry-After": past}), now=now) == 0
    body = '{"detail":"Request was throttled. Your rate limit resets in ~30s."}'
    assert parse_retry_after(answer(429, text=body)) == 30
    assert parse_retry_after(answer(429, headers={"Retry-After": "soon"})) is None


def test_backoff_is_exponential_with_equal_jitter_and_capped() -> None:
    policy = RetryPolicy(backoff_seconds=1.0, max_backoff_seconds=8.0)
    assert [policy.backoff(n, 0.0) for n in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert [policy.backoff(n, 0.999999) for n in range(5)] == pytest.approx([1, 2, 4, 8, 8],
                                                                             abs=1e-4)


def test_logged_urls_lose_their_signatures() -> None:
    url = "https://bucket.s3.amazonaws.com/key.jpg?X-Amz-Signature=abc&X-Amz-Credential=x"
    assert loggable(url) == "https://bucket.s3.amazonaws.com/key.jpg"


def session(handler: Any, **policy: Any) -> tuple[ProviderHTTP, RecordingSleep]:
    sleep = RecordingSleep()
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    http = ProviderHTTP(client, provider="Prov", api_base=API, token="tok-123",
                        key_env="PROV_KEY", policy=RetryPolicy(**policy),
                        progress=ProgressTracker(RecordingProgress()), sleep=sleep)
    return http, sleep


async def test_the_token_goes_only_to_the_api_origin() -> None:
    seen: dict[str, str | None] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen[str(request.url)] = request.headers.get("authorization")
        return httpx.Response(200, json={})

    http, _ = session(handler)
    for url in (f"{API}/x", "https://cdn.example.test/img.png",
                "https://api.example.test:8443/v1/x", "http://api.example.test/v1/x"):
        await http.send("GET", url, "check_generation")
    assert seen == {f"{API}/x": "Bearer tok-123", "https://cdn.example.test/img.png": None,
                    "https://api.example.test:8443/v1/x": None,
                    "http://api.example.test/v1/x": None}


async def test_oversized_answers_are_refused() -> None:
    http, _ = session(lambda request: httpx.Response(200, content=b"x" * 4096))
    with pytest.raises(ProviderError) as caught:
        await http.send("GET", f"{API}/big", "check_generation", max_bytes=1024)
    assert not caught.value.retryable and http.requests == 1


async def test_connection_errors_are_retried_then_reported() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    http, sleep = session(handler, max_retries=3, backoff_seconds=0.1)
    with pytest.raises(ProviderError) as caught:
        await http.send("GET", f"{API}/x", "check_generation")
    assert caught.value.retryable and "ConnectError" in caught.value.message_es
    assert http.requests == 4 and len(sleep.delays) == 3


async def test_provider_text_in_errors_is_redacted() -> None:
    body = {"detail": "bad input for token tok-123"}
    http, _ = session(lambda request: httpx.Response(400, json=body))
    with pytest.raises(ProviderError) as caught:
        await http.send("POST", f"{API}/x", "create_prediction")
    assert "tok-123" not in caught.value.message_es and "***" in caught.value.message_es
    assert not caught.value.retryable


async def test_downloads_must_be_images() -> None:
    http, _ = session(lambda request: httpx.Response(200, text="<html>oops</html>"))
    with pytest.raises(ProviderError) as caught:
        await http.download_image("https://cdn.example.test/x.png", "download_result")
    assert caught.value.retryable and "no es una imagen" in caught.value.message_es
    import base64

    inline = "data:image/jpeg;base64," + base64.b64encode(RENDER).decode()
    assert await http.download_image(inline, "download_result") == (RENDER, "image/jpeg")


def raising(kind: type[httpx.TransportError]) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        raise kind("scripted", request=request)
    return handler


@pytest.mark.parametrize(("outcome", "answered"), [
    (lambda request: httpx.Response(502, json={"detail": "bad gateway"}), True),
    (lambda request: httpx.Response(201, text='{"id": '), True),
    (raising(httpx.ReadTimeout), False),
    (raising(httpx.RemoteProtocolError), False),
])
async def test_a_create_that_may_have_reached_the_service_is_not_resent(
        outcome: Any, answered: bool) -> None:
    http, sleep = session(outcome, max_retries=3)
    with pytest.raises(CreateOutcomeUnknown) as caught:
        await http.json("POST", f"{API}/predictions", "create_prediction", idempotent=False)
    assert http.requests == 1 and sleep.delays == []
    assert caught.value.answered is answered


async def test_a_create_that_never_left_or_was_refused_with_429_is_resent() -> None:
    answers: list[httpx.Response | None] = [
        None, httpx.Response(429, headers={"Retry-After": "0"}),
        httpx.Response(201, json={"id": "p1", "status": "starting"})]

    def handler(request: httpx.Request) -> httpx.Response:
        step = answers.pop(0)
        if step is None:
            raise httpx.ConnectError("refused", request=request)
        return step

    http, _ = session(handler, max_retries=3)
    answer = await http.json("POST", f"{API}/predictions", "create_prediction",
                             idempotent=False)
    assert answer["id"] == "p1" and http.requests == 3


def test_provider_messages_exist_in_both_languages_with_their_code() -> None:
    error = provider_error("refused", retryable=False, provider="Replicate",
                           step="create_prediction", status=422, detail=": bad input")
    assert error.message_es.startswith("Replicate rechazó la petición al crear la predicción")
    assert error.message_en.startswith("Replicate refused the request to create the prediction")
    assert error.key == "provider_error.refused" and error.params == {
        "provider": "Replicate", "step": "create_prediction", "status": 422,
        "detail": ": bad input"}
    again = render("refused", "en", error.params)
    assert again == error.message_en


# settings -----------------------------------------------------------------------------
def test_keys_enable_providers_and_are_read_from_plain_env_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LEONARDO_API_KEY", "GATEWAY_LEONARDO_API_KEY", "REPLICATE_API_TOKEN",
                 "GATEWAY_REPLICATE_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    assert set(build_providers(GatewaySettings(data_dir=tmp_path))) == {"local"}
    monkeypatch.setenv("LEONARDO_API_KEY", "leo-secret-1")
    assert set(build_providers(GatewaySettings(data_dir=tmp_path))) == {"local", "leonardo"}
    monkeypatch.delenv("LEONARDO_API_KEY")
    monkeypatch.setenv("GATEWAY_LEONARDO_API_KEY", "leo-secret-2")
    monkeypatch.setenv("REPLICATE_API_TOKEN", "rep-secret-3")
    settings = GatewaySettings(data_dir=tmp_path)
    assert settings.leonardo_api_key == "leo-secret-2"
    assert set(build_providers(settings)) == {"local", "leonardo", "stablediffusion"}
    assert "secret" not in repr(settings) and "secret" not in str(settings)


def test_settings_reach_the_clients(tmp_path: Path) -> None:
    settings = GatewaySettings(
        data_dir=tmp_path, leonardo_api_key="k", replicate_api_token="t",
        leonardo_model_id="m-1", leonardo_controlnet_preprocessor_id=20,
        leonardo_alchemy=True, leonardo_preset_style="",
        replicate_model="o/n", replicate_version="v9", replicate_wait_seconds=12,
        replicate_controlnet="depth_midas",
        provider_timeout_seconds=99, provider_poll_interval_seconds=1.5,
        provider_request_timeout_seconds=7, provider_max_retries=5,
        provider_backoff_seconds=0.3, provider_max_backoff_seconds=9,
        provider_max_retry_after_seconds=42, max_generation_side=768)
    providers = build_providers(settings)
    leonardo, replicate = providers["leonardo"], providers["stablediffusion"]
    assert isinstance(leonardo, LeonardoProvider) and isinstance(replicate, ReplicateProvider)
    assert (leonardo.model_id, leonardo.controlnet_preprocessor_id, leonardo.max_side) == (
        "m-1", 20, 768)
    assert (leonardo.alchemy, leonardo.preset_style) == (True, None)
    assert (replicate.model, replicate.version, replicate.wait_seconds) == ("o/n", "v9", 12)
    assert replicate.controlnet == "depth_midas"
    expected = RetryPolicy(max_retries=5, backoff_seconds=0.3, max_backoff_seconds=9,
                           max_retry_after_seconds=42)
    for provider in (leonardo, replicate):
        assert provider.policy == expected
        assert provider.timeout_seconds == 99 and provider.poll_interval_seconds == 1.5
        assert provider.request_timeout_seconds == 7


def test_default_models_are_the_documented_img2img_controlnet_ones(tmp_path: Path) -> None:
    settings = GatewaySettings(data_dir=tmp_path)
    assert settings.leonardo_model_id == "e316348f-7773-490e-adcd-46757c738eb7"  # SD1.5
    assert settings.leonardo_controlnet_preprocessor_id == 1  # Edge to Image on SD1.5
    assert settings.leonardo_alchemy is False
    assert settings.replicate_model == "fofr/sdxl-multi-controlnet-lora"
    assert len(settings.replicate_version) == 64  # pinned: a community model needs it


def test_cost_defaults_follow_seed_000(tmp_path: Path) -> None:
    settings = GatewaySettings(data_dir=tmp_path)
    assert 0.01 <= settings.leonardo_cost_per_image_usd <= 0.02
    assert 0.02 <= settings.replicate_cost_per_image_usd <= 0.04
    with pytest.raises(ValueError):
        GatewaySettings(data_dir=tmp_path, replicate_wait_seconds=61)
