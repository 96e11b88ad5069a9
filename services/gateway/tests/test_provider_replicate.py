"""The Replicate client against the fake Replicate server on loopback, failure modes included."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from services.common.testing import make_test_image
from services.gateway.errors import ProviderError
from services.gateway.providers import ReplicateProvider
from services.gateway.providers.fakes import (
    FakeServer,
    LosingTransport,
    RecordingProgress,
    RecordingSleep,
    Scenario,
)
from services.gateway.providers.fakes.replicate_contract import MODEL, VERSION
from services.gateway.providers.replicate import failure_is_final
from services.gateway.tests._provider_support import (
    FAST,
    KEY,
    RENDER,
    SD_PARAMS,
    generation_request,
    looks_inverted,
    non_decreasing,
)

BIG_RENDER = make_test_image(600, 450, "PNG", seed=5)  # > 256 KB: uploaded, not inlined


SEED = 31337  # the provider's "random" seed in these tests


@pytest.fixture(scope="module")
def server() -> Iterator[FakeServer]:
    with FakeServer("replicate") as fake:
        yield fake


class Run:
    def __init__(self, fake: FakeServer, **options: Any) -> None:
        self.fake = fake
        self.sleep = RecordingSleep()
        self.progress = RecordingProgress()
        settings: dict[str, Any] = dict(
            base_url=fake.base_url, cost_per_image_usd=0.03,
            timeout_seconds=10, poll_interval_seconds=0.5, wait_seconds=5,
            request_timeout_seconds=5, policy=FAST, sleep=self.sleep,
            monotonic=self.sleep.monotonic, seeds=lambda: SEED)
        settings.update(options)
        self.provider = ReplicateProvider(settings.pop("api_token", KEY), **settings)

    async def __call__(self, params: dict[str, Any] = SD_PARAMS, image: bytes = RENDER,
                       seed: int = 0) -> Any:
        return await self.provider.generate(generation_request(params, image, seed),
                                            self.progress)

    async def fails(self, params: dict[str, Any] = SD_PARAMS) -> ProviderError:
        with pytest.raises(ProviderError) as caught:
            await self(params)
        return caught.value


def fake_with(server: FakeServer, **scenario: Any) -> FakeServer:
    server.reset(Scenario(**scenario))
    return server


async def test_prediction_maps_every_parameter(server: FakeServer) -> None:
    fake = fake_with(server, pending_polls=2)
    run = Run(fake)
    result = await run(seed=77)
    state = fake.state

    [create] = state.calls("create")
    assert create["path"] == "/v1/predictions"  # a community model runs by version only
    assert create["prefer"] == "wait=5" and create["auth"] == f"Bearer {KEY}"
    assert create["cancel_after"] == "70s"  # the gateway's 10 s deadline plus a margin
    assert create["json"]["version"] == VERSION
    inputs = create["json"]["input"]
    image = inputs.pop("image")
    assert inputs.pop("controlnet_1_image") == image  # the ControlNet sees the render too
    assert inputs == {"prompt": "photorealistic interior, natural light, 35mm",
                      "negative_prompt": "cartoon, render, blurry", "prompt_strength": 0.22,
                      "guidance_scale": 8.1, "controlnet_1_conditioning_scale": 0.93,
                      "controlnet_1": "edge_canny", "sizing_strategy": "input_image",
                      "num_outputs": 1, "seed": 77}
    assert image.startswith("data:image/jpeg;base64,")
    assert base64.b64decode(image.split(",", 1)[1]) == RENDER
    sent = result.details["request"]
    assert sent["version"] == VERSION and sent["input"]["image"] == "<data-url>"
    assert {k: v for k, v in sent["input"].items() if "image" not in k} == inputs
    assert all(c["auth"] is None for c in state.calls("download"))

    assert looks_inverted(result.image, RENDER) and result.content_type == "image/png"
    assert result.model == f"replicate:{MODEL}:{VERSION[:12]}"
    assert result.estimated_cost_usd == 0.03
    [prediction_id] = state.jobs
    assert result.details["prediction_id"] == prediction_id
    assert result.details["polls"] == 3 == len(state.calls("poll"))
    assert result.details["predict_time"] == 4.2 and result.details["image_input"] == "data-url"
    assert result.details["http_requests"] == len(state.requests) == 5
    # starting is reported as queued, processing as generating
    assert run.progress.stages == ["upload", "queued", "generating", "download"]
    assert non_decreasing([f for _, f in run.progress.reports])


async def test_large_render_is_uploaded_as_a_file(server: FakeServer) -> None:
    fake = fake_with(server, pending_polls=0)
    result = await Run(fake)(image=BIG_RENDER)
    [create] = fake.state.calls("create")
    [upload] = fake.state.calls("files")
    assert upload["fields"] == ["content"] and upload["auth"] == f"Bearer {KEY}"
    assert create["json"]["input"]["image"].startswith(f"{fake.url}/v1/files/")
    assert looks_inverted(result.image, BIG_RENDER)
    assert result.details["image_input"] == "file"


async def test_unpinned_version_calls_an_official_model_by_name(server: FakeServer) -> None:
    fake = fake_with(server, pending_polls=0, official_models={"official/sdxl": VERSION})
    result = await Run(fake, model="official/sdxl", version="")()
    [create] = fake.state.calls("create")
    assert create["path"] == "/v1/models/official/sdxl/predictions"
    assert set(create["json"]) == {"input"} and looks_inverted(result.image, RENDER)


async def test_a_community_model_by_name_is_refused_with_404(server: FakeServer) -> None:
    """Yesterday's default (no version pinned) against the real behaviour: 404."""
    fake = fake_with(server)
    failure = await Run(fake, model="lucataco/sdxl-controlnet", version="").fails()
    assert not failure.retryable and "404" in failure.message_en
    assert "could not be found" in failure.message_en


@pytest.mark.parametrize("mode", ["complete", "output-early"])
async def test_sync_wait_needs_no_polling(server: FakeServer, mode: str) -> None:
    fake = fake_with(server, prefer_wait=mode)
    result = await Run(fake)()
    assert looks_inverted(result.image, RENDER)
    assert result.details["polls"] == 0 and not fake.state.calls("poll")


async def test_wait_zero_polls_without_prefer(server: FakeServer) -> None:
    fake = fake_with(server, pending_polls=1, prefer_wait="complete")
    result = await Run(fake, wait_seconds=0)()
    assert fake.state.calls("create")[0]["prefer"] is None
    assert result.details["polls"] == 2


@pytest.mark.parametrize(("error", "retryable"), [
    ("NSFW content detected. Try running it again, or try a different prompt.", False),
    ("CUDA out of memory. Tried to allocate 2.00 GiB", True),
    ("Prediction interrupted; please retry (code: PA)", True),
])
async def test_failed_prediction_is_classified(server: FakeServer, error: str,
                                               retryable: bool) -> None:
    fake = fake_with(server, pending_polls=1, fail_generation=error)
    failure = await Run(fake).fails()
    assert failure.retryable is retryable
    assert error.split(".")[0] in failure.message_es and error.split(".")[0] in failure.message_en
    assert not fake.state.calls("download")


def test_failure_classification_words() -> None:
    assert failure_is_final("Input validation failed: strength must be <= 1")
    assert failure_is_final("The output was flagged by the safety checker")
    assert not failure_is_final("Internal error, worker restarted")


async def test_cancelled_elsewhere_is_final(server: FakeServer) -> None:
    fake = fake_with(server, pending_polls=1, cancel_remotely=True)
    failure = await Run(fake).fails()
    assert not failure.retryable and "cancel" in failure.message_es


async def test_429_then_500_then_success(server: FakeServer) -> None:
    fake = fake_with(server, pending_polls=0, retry_after="2", faults={"create": ["429", "500"]})
    run = Run(fake)
    result = await run()
    assert looks_inverted(result.image, RENDER)
    assert len(fake.state.calls("create")) == 3 and result.details["retries"] == 2
    routes = [r["route"] for r in fake.state.requests]
    assert routes[:4] == ["create", "create", "list", "create"]  # a 429 created nothing;
    # after the 500 the prediction list is read before creating again
    assert 2 <= run.sleep.delays[0] <= 2 + FAST.backoff_seconds / 2  # Retry-After honoured
    assert run.sleep.delays[1] <= FAST.backoff_seconds * 2  # then plain backoff for the 500


async def test_429_without_header_reads_the_body(server: FakeServer) -> None:
    fake = fake_with(server, pending_polls=0, retry_after=None, faults={"create": ["429"]})
    run = Run(fake)
    await run()
    assert 1 <= run.sleep.delays[0] <= 1 + FAST.backoff_seconds / 2  # "available in 1 second"


async def test_persistent_429_is_a_retryable_rate_limit(server: FakeServer) -> None:
    fake = fake_with(server, retry_after="1", faults={"create": ["429"] * 3})
    failure = await Run(fake).fails()
    assert failure.retryable and "429" in failure.message_es
    assert len(fake.state.calls("create")) == 3


async def test_invalid_input_422_is_final(server: FakeServer) -> None:
    fake = fake_with(server, faults={"create": ["422"]})
    failure = await Run(fake).fails()
    assert not failure.retryable and "422" in failure.message_es
    assert "too large" in failure.message_en and len(fake.state.calls("create")) == 1


async def test_timed_out_create_is_found_in_the_list_not_repeated(server: FakeServer) -> None:
    fake = fake_with(server, pending_polls=0)
    fake.state.jobs.clear()
    lose = LosingTransport("POST", "/v1/predictions", "answer-lost")
    await Run(fake, seeds=lambda: 5)()  # another recent prediction, with another seed
    result = await Run(fake, transport=lose)()
    assert looks_inverted(result.image, RENDER)
    assert lose.matched == 1 and len(fake.state.calls("create")) == 2  # 1 other + ours once
    [ours] = [pid for pid, job in fake.state.jobs.items() if job["input"]["seed"] == SEED]
    assert result.details["prediction_id"] == ours and result.details["lookups"] == 1


async def test_timeout_with_nothing_found_fails_instead_of_paying_twice(
        server: FakeServer) -> None:
    fake = fake_with(server, pending_polls=0)
    lose = LosingTransport("POST", "/v1/predictions", "timeout-unsent")
    run = Run(fake, transport=lose, lookup_attempts=2)
    failure = await run.fails()
    assert lose.matched == 1 and len(fake.state.calls("list")) == 2
    assert not failure.retryable and "pay twice" in failure.message_en
    assert "dos veces" in failure.message_es


async def test_500_after_creating_adopts_the_prediction(server: FakeServer) -> None:
    fake = fake_with(server, pending_polls=0, faults={"create": ["500-created"]})
    result = await Run(fake)()
    assert looks_inverted(result.image, RENDER)
    assert len(fake.state.calls("create")) == 1 and result.details["creates"] == 1
    [prediction_id] = fake.state.jobs
    assert result.details["prediction_id"] == prediction_id


async def test_timeout_cancels_the_prediction(server: FakeServer) -> None:
    fake = fake_with(server, pending_polls=10_000)
    run = Run(fake, timeout_seconds=3, poll_interval_seconds=0.5)  # time passes by sleeping
    failure = await run.fails()
    assert failure.retryable and "3 s" in failure.message_es
    assert len(fake.state.calls("poll")) == 7
    [cancel] = fake.state.calls("cancel")
    assert cancel["auth"] == f"Bearer {KEY}"
    [job] = fake.state.jobs.values()
    assert job["status"] == "canceled"


async def test_cancelling_the_job_cancels_the_prediction(server: FakeServer) -> None:
    fake = fake_with(server, pending_polls=10_000)
    run = Run(fake, poll_interval_seconds=0.02, sleep=asyncio.sleep)
    task = asyncio.create_task(run())
    deadline = time.monotonic() + 10
    while not fake.state.calls("poll"):  # poll with a deadline until it is really running
        assert time.monotonic() < deadline, "the client never polled"
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(fake.state.calls("cancel")) == 1
    assert [j["status"] for j in fake.state.jobs.values()] == ["canceled"]


async def test_bad_token_is_final_and_never_echoed(server: FakeServer,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    secret = "r8_secret_token_abcdefghijklmnop"
    fake = fake_with(server, echo_auth_in_errors=True)
    caplog.set_level(logging.DEBUG)
    run = Run(fake, api_token=secret)
    failure = await run.fails()
    assert not failure.retryable and "REPLICATE_API_TOKEN" in failure.message_es
    assert len(fake.state.requests) == 1
    assert secret not in failure.message_es + failure.message_en + caplog.text
    assert secret not in repr(run.provider)


async def test_output_404(server: FakeServer) -> None:
    fake = fake_with(server, pending_polls=0, image_404=True)
    failure = await Run(fake).fails()
    assert failure.retryable and "404" in failure.message_en
    assert len(fake.state.calls("download")) == FAST.max_retries + 1


async def test_transient_poll_failures_recover(server: FakeServer) -> None:
    fake = fake_with(server, pending_polls=1, slow_seconds=1.0,
                     faults={"poll": ["malformed", "slow"]})
    result = await Run(fake, request_timeout_seconds=0.2, wait_seconds=0)()
    assert looks_inverted(result.image, RENDER)
    assert result.details["retries"] == 2 and result.details["polls"] == 2
    assert len(fake.state.calls("poll")) == 4  # 2 polls, one of them tried 3 times


async def test_render_upload_is_retried(server: FakeServer) -> None:
    fake = fake_with(server, pending_polls=0, faults={"files": ["503"]})
    result = await Run(fake)(image=BIG_RENDER)
    assert looks_inverted(result.image, BIG_RENDER)
    assert len(fake.state.calls("files")) == 2 and result.details["retries"] == 1


@pytest.mark.parametrize("params", [
    {k: v for k, v in SD_PARAMS.items() if k != "strength"},
    {**SD_PARAMS, "controlnet_conditioning_scale": 4.5},
    {**SD_PARAMS, "guidance_scale": float("nan")},
])
async def test_invalid_parameters_fail_before_any_request(server: FakeServer,
                                                          params: dict[str, Any]) -> None:
    fake = fake_with(server)
    failure = await Run(fake).fails(params)
    assert not failure.retryable and fake.state.requests == []
