"""The Leonardo AI client against the fake Leonardo server on loopback, failure modes included."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from services.gateway.errors import ProviderError
from services.gateway.providers import LeonardoProvider, ProviderRateLimited, RetryPolicy
from services.gateway.providers.fakes import (
    FakeServer,
    LosingTransport,
    RecordingProgress,
    RecordingSleep,
    Scenario,
)
from services.gateway.tests._provider_support import (
    FAST,
    KEY,
    LEONARDO_MODEL,
    LEONARDO_PARAMS,
    RENDER,
    generation_request,
    looks_inverted,
    non_decreasing,
)

SEED = 4242  # the provider's "random" seed in these tests


@pytest.fixture(scope="module")
def server() -> Iterator[FakeServer]:
    with FakeServer("leonardo") as fake:
        yield fake


class Run:
    """One generation against the fake: its provider, sleeps, progress, and outcome."""

    def __init__(self, fake: FakeServer, **options: Any) -> None:
        self.fake = fake
        self.sleep = RecordingSleep()
        self.progress = RecordingProgress()
        settings: dict[str, Any] = dict(
            base_url=fake.base_url, model_id=LEONARDO_MODEL, controlnet_preprocessor_id=1,
            cost_per_image_usd=0.015, timeout_seconds=10, poll_interval_seconds=0.5,
            request_timeout_seconds=5, policy=FAST, max_side=1024, sleep=self.sleep,
            monotonic=self.sleep.monotonic, seeds=lambda: SEED)
        settings.update(options)
        self.provider = LeonardoProvider(settings.pop("api_key", KEY), **settings)

    async def __call__(self, params: dict[str, Any] = LEONARDO_PARAMS, seed: int = 0) -> Any:
        return await self.provider.generate(generation_request(params, seed=seed),
                                            self.progress)

    async def fails(self, params: dict[str, Any] = LEONARDO_PARAMS) -> ProviderError:
        with pytest.raises(ProviderError) as caught:
            await self(params)
        return caught.value


def fake_with(server: FakeServer, **scenario: Any) -> FakeServer:
    server.reset(Scenario(**scenario))
    return server


async def test_init_image_flow_maps_every_parameter(server: FakeServer) -> None:
    fake = fake_with(server, pending_polls=2)
    run = Run(fake)
    result = await run()
    state = fake.state

    [init] = state.calls("init-image")
    assert init["json"] == {"extension": "jpg"} and init["auth"] == f"Bearer {KEY}"
    [upload] = state.calls("upload")
    key = upload["form"]["key"]
    assert upload["auth"] is None  # the presigned URL never sees the API key
    assert upload["form"] == state.presigned[key] and upload["order"][-1] == "file"
    [image_id] = state.jobs["_init_images"]
    [create] = state.calls("create")
    assert create["json"] == {
        "prompt": "photorealistic interior, natural light, 35mm",
        "negative_prompt": "cartoon, render, blurry",
        "modelId": LEONARDO_MODEL, "width": 1024, "height": 768, "num_images": 1,
        "alchemy": False, "presetStyle": "NONE", "seed": SEED,
        "init_image_id": image_id, "init_strength": 0.72, "guidance_scale": 7,
        "controlnets": [{"initImageId": image_id, "initImageType": "UPLOADED",
                         "preprocessorId": 1, "weight": 0.89}]}
    assert isinstance(create["json"]["guidance_scale"], int)
    assert result.details["request"] == create["json"]  # the variant can record it exactly
    assert all(c["auth"] == f"Bearer {KEY}" for c in state.calls("poll"))
    assert all(c["auth"] is None for c in state.calls("download"))

    assert looks_inverted(result.image, RENDER)  # the uploaded render made the round trip
    assert result.content_type == "image/jpeg"
    assert result.model == f"leonardo:{LEONARDO_MODEL}" and result.estimated_cost_usd == 0.015
    [generation_id] = [k for k in state.jobs if not k.startswith("_")]
    assert result.details["generation_id"] == generation_id
    assert result.details["init_image_id"] == image_id
    assert result.details["polls"] == 3 == len(state.calls("poll"))  # 2 PENDING, 1 COMPLETE
    assert result.details["http_requests"] == len(state.requests) == 7
    assert result.details["retries"] == 0 and result.details["api_credit_cost"] == 12
    assert run.progress.stages == ["upload", "queued", "generating", "download"]
    fractions = [f for _, f in run.progress.reports]
    assert non_decreasing(fractions) and 0 < fractions[0] and fractions[-1] < 1
    assert run.sleep.delays == [0.5, 0.5, 0.5]  # the poll interval, nothing else


async def test_the_requests_seed_wins_else_a_fresh_one_is_sent(server: FakeServer) -> None:
    fake = fake_with(server, pending_polls=0)
    await Run(fake)(seed=1234)
    await Run(fake, seeds=lambda: 99)()
    assert [c["json"]["seed"] for c in fake.state.calls("create")] == [1234, 99]


async def test_429_waits_for_retry_after_then_succeeds(server: FakeServer) -> None:
    fake = fake_with(server, pending_polls=0, retry_after="7", faults={"create": ["429", "429"]})
    run = Run(fake, timeout_seconds=60)  # the 14 s waited count toward the deadline
    result = await run()
    assert looks_inverted(result.image, RENDER)
    assert len(fake.state.calls("create")) == 3
    backoffs = run.sleep.delays[:2]
    assert all(7 <= d <= 7 + FAST.backoff_seconds / 2 for d in backoffs)  # not the 0.5 s backoff
    assert result.details["retries"] == 2
    assert "retrying" in run.progress.stages  # the job's lease is renewed while waiting


async def test_retry_after_beyond_the_cap_hands_the_job_back(server: FakeServer) -> None:
    fake = fake_with(server, retry_after="3600", faults={"create": ["429"]})
    run = Run(fake)
    with pytest.raises(ProviderRateLimited) as caught:
        await run()
    assert caught.value.retryable and caught.value.retry_after_seconds == 3600
    assert "3600" in caught.value.message_es
    assert len(fake.state.calls("create")) == 1 and max(run.sleep.delays, default=0) < 3600


async def test_500_on_create_is_looked_up_before_creating_again(server: FakeServer) -> None:
    fake = fake_with(server, pending_polls=0, faults={"create": ["500"], "upload": ["503"]})
    run = Run(fake)
    result = await run()
    assert looks_inverted(result.image, RENDER)
    routes = [r["route"] for r in fake.state.requests]
    first, second = [i for i, r in enumerate(routes) if r == "create"]
    assert "list" in routes[first:second]  # nothing was created, so it is created again
    assert len(fake.state.calls("upload")) == 2  # an upload is not a create: plain retry
    assert result.details["retries"] == 2 and result.details["creates"] == 2


async def test_500_after_the_generation_was_created_adopts_it(server: FakeServer) -> None:
    fake = fake_with(server, pending_polls=0, faults={"create": ["500-created"]})
    result = await Run(fake)()
    assert looks_inverted(result.image, RENDER)
    assert len(fake.state.calls("create")) == 1  # not paid twice
    [generation_id] = [k for k in fake.state.jobs if not k.startswith("_")]
    assert result.details["generation_id"] == generation_id
    assert result.details["lookups"] == 1 and result.details["api_credit_cost"] is None


async def test_timed_out_create_is_looked_up_not_repeated(server: FakeServer) -> None:
    fake = fake_with(server, pending_polls=0)
    lose = LosingTransport("POST", "/generations", "answer-lost")
    result = await Run(fake, transport=lose)()
    assert looks_inverted(result.image, RENDER)
    assert lose.matched == 1 and len(fake.state.calls("create")) == 1
    assert fake.state.calls("me") and fake.state.calls("list")
    assert result.details["creates"] == 1 and result.details["lookups"] == 1


async def test_timeout_with_nothing_found_fails_instead_of_paying_twice(
        server: FakeServer) -> None:
    fake = fake_with(server, pending_polls=0)
    lose = LosingTransport("POST", "/generations", "timeout-unsent")
    run = Run(fake, transport=lose, lookup_attempts=3)
    error = await run.fails()
    assert lose.matched == 1  # the create was sent once and never again
    assert len(fake.state.calls("list")) == 3 and run.sleep.delays.count(0.5) == 2
    assert not error.retryable  # the job runner must not create it blindly either
    assert "dos veces" in error.message_es and "pay twice" in error.message_en
    assert error.key == "provider_error.create_outcome_unknown"


async def test_refused_connection_on_create_is_retried(server: FakeServer) -> None:
    fake = fake_with(server, pending_polls=0)
    lose = LosingTransport("POST", "/generations", "refused")
    result = await Run(fake, transport=lose)()
    assert looks_inverted(result.image, RENDER)
    assert lose.matched == 2 and len(fake.state.calls("create")) == 1
    assert not fake.state.calls("list")  # provably never sent: no lookup needed


async def test_5xx_gives_up_after_bounded_creates_with_growing_backoff(
        server: FakeServer) -> None:
    fake = fake_with(server, faults={"create": ["500", "502", "503", "500"]})
    run = Run(fake)
    error = await run.fails()
    assert error.retryable
    assert "3 intentos" in error.message_es and "HTTP 503" in error.message_es
    assert "crear la generación" in error.message_es and "3 attempts" in error.message_en
    assert len(fake.state.calls("create")) == 3  # 1 + max_retries, not the 4 scripted
    assert len(fake.state.calls("list")) == 3  # each one looked up first
    first, second = run.sleep.delays
    assert 0.25 <= first <= 0.5 and 0.5 <= second <= 1.0  # exponential with equal jitter


async def test_expired_presigned_upload_restarts_from_init_image(server: FakeServer) -> None:
    fake = fake_with(server, pending_polls=0, faults={"upload": ["expired"]})
    result = await Run(fake)()
    assert looks_inverted(result.image, RENDER)
    assert len(fake.state.calls("init-image")) == 2 and len(fake.state.calls("upload")) == 2
    [create] = fake.state.calls("create")
    second_id = list(fake.state.jobs["_init_images"])[1]
    assert create["json"]["init_image_id"] == second_id and result.details["uploads"] == 2


async def test_upload_refused_twice_names_the_upload_not_the_key(server: FakeServer) -> None:
    fake = fake_with(server, faults={"upload": ["expired", "expired"]})
    error = await Run(fake).fails()
    assert len(fake.state.calls("init-image")) == 2 and not fake.state.calls("create")
    assert "subida del render" in error.message_es and "render upload" in error.message_en
    assert "Request has expired" in error.message_en
    assert "LEONARDO_API_KEY" not in error.message_es + error.message_en
    assert error.retryable


async def test_slow_answer_times_out_and_is_retried(server: FakeServer) -> None:
    fake = fake_with(server, pending_polls=0, slow_seconds=1.0, faults={"poll": ["slow"]})
    run = Run(fake, request_timeout_seconds=0.2)
    result = await run()
    assert looks_inverted(result.image, RENDER)
    assert len(fake.state.calls("poll")) == 2 and result.details["retries"] == 1


async def test_always_slow_is_a_retryable_timeout(server: FakeServer) -> None:
    fake = fake_with(server, slow_seconds=1.0, faults={"init-image": ["slow"] * 3})
    error = await Run(fake, request_timeout_seconds=0.2).fails()
    assert error.retryable and "tiempo de espera" in error.message_es
    assert "timed out" in error.message_en


async def test_malformed_json_is_retried(server: FakeServer) -> None:
    fake = fake_with(server, pending_polls=1, faults={"poll": ["malformed"]})
    result = await Run(fake)()
    assert looks_inverted(result.image, RENDER) and result.details["retries"] == 1


async def test_persistently_malformed_json_is_a_clear_error(server: FakeServer) -> None:
    fake = fake_with(server, faults={"create": ["malformed"] * 3})
    error = await Run(fake).fails()
    assert error.retryable and "JSON" in error.message_es and "JSON" in error.message_en
    assert len(fake.state.calls("list")) == 3  # each unreadable answer looked up first


async def test_failed_generation(server: FakeServer) -> None:
    fake = fake_with(server, pending_polls=1, fail_generation=True)
    error = await Run(fake).fails()
    assert "FAILED" in error.message_es and "FAILED" in error.message_en
    assert error.retryable  # no reason is given, so another attempt may work
    assert not fake.state.calls("download")


async def test_image_url_404(server: FakeServer) -> None:
    fake = fake_with(server, pending_polls=0, image_404=True)
    error = await Run(fake).fails()
    assert error.retryable and "404" in error.message_es
    assert "descargar la imagen generada" in error.message_es
    assert len(fake.state.calls("download")) == FAST.max_retries + 1  # CDN lag tolerated


async def test_bad_key_is_final_and_never_echoed(server: FakeServer,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    secret = "sk-leonardo-secret-0123456789"
    fake = fake_with(server, echo_auth_in_errors=True)
    caplog.set_level(logging.DEBUG)
    run = Run(fake, api_key=secret)
    error = await run.fails()
    assert not error.retryable and "401" in error.message_es
    assert "LEONARDO_API_KEY" in error.message_es and "LEONARDO_API_KEY" in error.message_en
    assert len(fake.state.requests) == 1  # not retried
    assert fake.state.requests[0]["auth"] == f"Bearer {secret}"  # the fake did echo it…
    assert secret not in error.message_es + error.message_en  # …we did not
    assert secret not in caplog.text and secret not in repr(run.provider)


async def test_graphql_error_with_http_200_is_final(server: FakeServer) -> None:
    fake = fake_with(server, faults={"create": ["error-200"]})
    error = await Run(fake).fails()
    assert not error.retryable and "Expected a number" in error.message_es
    assert len(fake.state.calls("create")) == 1


@pytest.mark.parametrize("params", [
    {k: v for k, v in LEONARDO_PARAMS.items() if k != "controlnet_weight"},
    {**LEONARDO_PARAMS, "init_strength": 0.95},
    {**LEONARDO_PARAMS, "guidance_scale": "high"},
    {**LEONARDO_PARAMS, "guidance_scale": 7.2},  # an Int in the API: never rounded here
])
async def test_invalid_parameters_fail_before_any_request(server: FakeServer,
                                                          params: dict[str, Any]) -> None:
    fake = fake_with(server)
    error = await Run(fake).fails(params)
    assert not error.retryable and fake.state.requests == []


async def test_generation_that_never_finishes_times_out(server: FakeServer) -> None:
    fake = fake_with(server, pending_polls=10_000)
    run = Run(fake, timeout_seconds=3, poll_interval_seconds=0.5)  # time passes by sleeping
    error = await run.fails()
    assert "no terminó" in error.message_es and "3 s" in error.message_es
    assert len(fake.state.calls("poll")) == 7  # polls at 0.5 … 3.5 s of the sleep clock
    # Leonardo cannot cancel it: not re-queued, or a second generation would be paid for
    assert not error.retryable and "Retry" in error.message_en
    assert len(fake.state.calls("create")) == 1
    assert [f for s, f in run.progress.reports if s == "generating"][-1] < 0.9


def test_retry_policy_defaults_are_bounded() -> None:
    policy = RetryPolicy()
    delays = [policy.backoff(n, 0.999) for n in range(12)]
    assert non_decreasing(delays) and max(delays) <= policy.max_backoff_seconds
