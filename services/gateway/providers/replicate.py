"""Stable Diffusion on Replicate (option "stablediffusion"): the predictions API.

Model (evidence in docs/providers.md): ``fofr/sdxl-multi-controlnet-lora``, a community
model, pinned to a version (configurable). With ``image`` and a ControlNet it runs
SDXL image-to-image *with* ControlNet (``StableDiffusionXLControlNetImg2ImgPipeline``),
which is what the optimizer assumes: strength, guidance and a structure weight all
reach the pipeline.

1. The render goes in as a data URL when small (≤ 256 KB, Replicate's advice) and
   otherwise through ``POST /files`` (multipart ``content``) whose ``urls.get`` is passed;
2. ``POST /predictions`` ``{"version", "input"}`` (a community model has no
   ``/models/{owner}/{name}/predictions`` endpoint: that answers 404; it is used only
   when no version is configured, for an official model), with ``Prefer: wait=N`` so
   short runs finish inside the call and ``Cancel-After`` so Replicate stops the run
   (and the billing) if this gateway dies. The input maps as::

       image, controlnet_1_image      ← the render (data URL or file URL)
       controlnet_1                   ← settings ("edge_canny")
       sizing_strategy = "input_image", num_outputs = 1
       prompt, negative_prompt        ← the request's prompt version
       prompt_strength                ← parameters["strength"]   (model range 0–1)
       guidance_scale                 ← parameters["guidance_scale"]  (1–50)
       controlnet_1_conditioning_scale ← parameters["controlnet_conditioning_scale"] (0–4)
       seed                           ← request.seed, or a fresh random one

   The create call is never repeated blindly (Replicate has no idempotency keys and
   replicate-python never retries a POST): after a timeout or 5xx the client lists
   recent predictions (``GET /predictions``) and adopts the one with this version,
   seed and prompt; only a 5xx with nothing found is created again;
3. poll ``urls.get`` until ``succeeded``, ``failed``, ``canceled`` or ``aborted``
   (``starting`` is reported as stage ``queued``, ``processing`` as ``generating``).
   When a sync wait already returns the output files the prediction is used as is;
4. download ``output`` (a URL, or the first of a list; no API key: it is a CDN).

If the time budget runs out, or the job is cancelled, the prediction is cancelled with
``urls.cancel`` so it stops billing. A ``failed`` prediction whose error speaks of
content (NSFW, safety) or invalid input is final; other failures (out of memory,
interrupted) are retryable; ``canceled`` by someone else is final.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import random
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from services.gateway.errors import ProviderError
from services.gateway.providers._http import (
    CreateOutcomeUnknown,
    ProgressTracker,
    ProviderHTTP,
    RetryPolicy,
    Sleep,
    require_number,
)
from services.gateway.providers.base import GenerationRequest, GenerationResult, ProgressCallback
from services.gateway.providers.messages import provider_error

log = logging.getLogger(__name__)

LABEL = "Replicate"
DATA_URL_LIMIT = 256 * 1024
EXPECTED_SECONDS = 20.0  # typical SDXL run; shapes the progress bar only
RUNNING = ("starting", "processing")
DEFAULT_MODEL = "fofr/sdxl-multi-controlnet-lora"
DEFAULT_VERSION = "89eb212b3d1366a83e949c12a4b45dfe6b6b313b594cb8268e864931ac9ffb16"
DEFAULT_CONTROLNET = "edge_canny"
CANCEL_AFTER_MARGIN_SECONDS = 60  # Replicate's own deadline, past the gateway's
LOOKUP_CANDIDATES = 10
MAX_SEED = 2**31 - 1

INPUT_NAMES: dict[str, tuple[str, float, float]] = {
    # variant parameter → (the model's input name, the model's own range)
    "strength": ("prompt_strength", 0.0, 1.0),
    "guidance_scale": ("guidance_scale", 1.0, 50.0),
    "controlnet_conditioning_scale": ("controlnet_1_conditioning_scale", 0.0, 4.0),
}
"""The variant's (optimizer's) names onto the model's real inputs, one to one."""

_FINAL_FAILURE = re.compile(
    r"nsfw|safety|unsafe|inappropriate|content policy|flagged|sensitive|moderat"
    r"|invalid|validation|must be|not a valid|unsupported", re.IGNORECASE)


def failure_is_final(error: str) -> bool:
    """Content-policy and invalid-input failures will fail again; others may not."""
    return bool(_FINAL_FAILURE.search(error))


def _generating_fraction(elapsed: float) -> float:
    return 0.25 + 0.6 * (1 - math.exp(-elapsed / EXPECTED_SECONDS))


def _random_seed() -> int:
    return random.SystemRandom().randint(1, MAX_SEED)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class ReplicateProvider:
    """A Replicate model (SDXL img2img + ControlNet). Stateless between calls."""

    name = "stablediffusion"
    label_es = "Stable Diffusion (Replicate)"
    label_en = "Stable Diffusion (Replicate)"

    def __init__(self, api_token: str, *, base_url: str = "https://api.replicate.com/v1",
                 model: str = DEFAULT_MODEL, version: str = DEFAULT_VERSION,
                 controlnet: str = DEFAULT_CONTROLNET, cost_per_image_usd: float,
                 timeout_seconds: float = 180.0, poll_interval_seconds: float = 2.0,
                 wait_seconds: int = 30, request_timeout_seconds: float = 30.0,
                 policy: RetryPolicy | None = None, lookup_attempts: int = 3,
                 sleep: Sleep = asyncio.sleep, seeds: Callable[[], int] = _random_seed,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 monotonic: Callable[[], float] = time.monotonic,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        if "/" not in model and not version:
            raise ValueError("replicate model must be 'owner/name' (or pin a version)")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.version = version
        self.controlnet = controlnet
        self.cost_per_image_usd = cost_per_image_usd
        self.timeout_seconds = timeout_seconds
        self.poll_interval_seconds = poll_interval_seconds
        self.wait_seconds = max(0, min(60, int(wait_seconds)))  # the API accepts 1–60
        self.request_timeout_seconds = request_timeout_seconds
        self.policy = policy or RetryPolicy()
        self.lookup_attempts = max(1, lookup_attempts)
        self._api_token = api_token
        self._sleep = sleep
        self._seeds = seeds
        self._monotonic = monotonic  # the generation deadline's clock (tests inject one)
        self._clock = clock
        self._transport = transport

    def __repr__(self) -> str:  # never show the token
        return (f"ReplicateProvider(base_url={self.base_url!r}, model={self.model!r}, "
                f"version={self.version[:12]!r})")

    @property
    def cancel_after(self) -> str:
        """The ``Cancel-After`` header: the gateway's own deadline plus a margin."""
        return f"{math.ceil(self.timeout_seconds) + CANCEL_AFTER_MARGIN_SECONDS}s"

    def build_input(self, request: GenerationRequest, image: str, seed: int) -> dict[str, Any]:
        """The model input for ``request`` (parameters checked against the model's ranges)."""
        inputs: dict[str, Any] = {
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt,
            "image": image,
            "sizing_strategy": "input_image",
            "num_outputs": 1,
            "controlnet_1": self.controlnet,
            "controlnet_1_image": image,
            "seed": seed,
        }
        for name, (model_name, low, high) in INPUT_NAMES.items():
            inputs[model_name] = require_number(request.parameters, name, low, high, LABEL)
        return inputs

    async def generate(self, request: GenerationRequest, progress: ProgressCallback
                       ) -> GenerationResult:
        seed = request.seed or self._seeds()
        self.build_input(request, "", seed)  # refuse bad parameters before any call

        tracker = ProgressTracker(progress)
        started = self._monotonic()
        # A sync wait holds the create call open up to wait_seconds.
        timeout = httpx.Timeout(self.request_timeout_seconds + self.wait_seconds,
                                connect=min(10.0, self.request_timeout_seconds))
        async with httpx.AsyncClient(timeout=timeout, transport=self._transport,
                                     headers={"User-Agent": "afinador-gateway"}) as client:
            http = ProviderHTTP(client, provider=LABEL, api_base=self.base_url,
                                token=self._api_token, key_env="REPLICATE_API_TOKEN",
                                policy=self.policy, progress=tracker, sleep=self._sleep)
            await tracker.report("upload", 0.02)
            image = await self._image_input(http, request.image)
            inputs = self.build_input(request, image, seed)
            if self.version:
                url = f"{self.base_url}/predictions"
                body: dict[str, Any] = {"version": self.version, "input": inputs}
            else:
                url = f"{self.base_url}/models/{self.model}/predictions"
                body = {"input": inputs}
            headers = {"Cancel-After": self.cancel_after}
            if self.wait_seconds:
                headers["Prefer"] = f"wait={self.wait_seconds}"
            await tracker.report("queued", 0.1)
            prediction, creates, lookups = await self._create(http, url, body, headers)
            prediction, polls = await self._wait(http, prediction, tracker, started)
            output_url = _first_output(prediction.get("output"))
            if output_url is None:
                raise provider_error("replicate_no_image", retryable=True)
            await tracker.report("download", 0.9)
            data, content_type = await http.download_image(output_url)
        version = prediction.get("version") or self.version
        metrics = prediction.get("metrics") or {}
        image_kind = "data-url" if image.startswith("data:") else "file"
        logged = {**body, "input": {k: (f"<{image_kind}>" if k in ("image", "controlnet_1_image")
                                        else v) for k, v in inputs.items()}}
        return GenerationResult(
            image=data, content_type=content_type,
            model=f"replicate:{self.model}" + (f":{self.version[:12]}" if self.version else ""),
            estimated_cost_usd=self.cost_per_image_usd,
            details={"provider": self.name, "prediction_id": prediction.get("id"),
                     "version": version, "status": prediction.get("status"),
                     "request": logged, "seed": seed, "cancel_after": self.cancel_after,
                     "predict_time": metrics.get("predict_time") if isinstance(metrics, dict)
                     else None,
                     "image_input": image_kind, "polls": polls, "creates": creates,
                     "lookups": lookups, "http_requests": http.requests,
                     "retries": http.retries,
                     "seconds": round(self._monotonic() - started, 3)})

    async def _image_input(self, http: ProviderHTTP, image: bytes) -> str:
        if len(image) <= DATA_URL_LIMIT:
            return "data:image/jpeg;base64," + base64.b64encode(image).decode()
        uploaded = await http.json("POST", f"{self.base_url}/files", "upload_render",
                                   files={"content": ("render.jpg", image, "image/jpeg")})
        url = (uploaded.get("urls") or {}).get("get") if isinstance(uploaded, dict) else None
        if not isinstance(url, str) or not url:
            raise provider_error("replicate_no_file_url", retryable=True)
        return url

    async def _create(self, http: ProviderHTTP, url: str, body: dict[str, Any],
                      headers: dict[str, str]) -> tuple[dict[str, Any], int, int]:
        """Create the prediction without ever paying twice; returns it, the creates sent
        and the lookups made."""
        creates = lookups = 0
        while True:
            creates += 1
            sent_at = self._clock()
            try:
                answer = await http.json("POST", url, "create_prediction", json=body,
                                         headers=headers, idempotent=False)
                return _prediction(answer), creates, lookups
            except CreateOutcomeUnknown as unknown:
                found, used = await self._find(http, body, sent_at, unknown)
                lookups += used
                if found is not None:
                    log.info("Replicate: lost answer to the create call; adopted prediction "
                             "%s found in the account", found.get("id"))
                    return found, creates, lookups
                if unknown.answered and creates <= self.policy.max_retries:
                    await http.pause(creates - 1)
                    continue  # the service answered an error and created nothing
                raise unknown.final_error(LABEL, "create_prediction", creates) from None

    async def _find(self, http: ProviderHTTP, body: dict[str, Any], sent_at: datetime,
                    unknown: CreateOutcomeUnknown) -> tuple[dict[str, Any] | None, int]:
        """The prediction ``body`` created, from ``GET /predictions`` (newest first):
        same version (or model), created since just before ``sent_at``, and the same
        seed and prompt (read from the listed input, or from the prediction itself when
        the list leaves the input out)."""
        attempts = 1 if unknown.answered else self.lookup_attempts
        since = sent_at - timedelta(minutes=2)  # clock skew between us and Replicate
        inputs = body["input"]
        for attempt in range(attempts):
            if attempt:
                await self._sleep(self.poll_interval_seconds)
            try:
                listed = await http.json("GET", f"{self.base_url}/predictions",
                                         "find_prediction")
                results = listed.get("results") if isinstance(listed, dict) else None
                for candidate in (results or [])[:LOOKUP_CANDIDATES]:
                    if not isinstance(candidate, dict) or not self._same_target(candidate):
                        continue
                    created = _parse_time(candidate.get("created_at"))
                    if created is not None and created < since:
                        break  # newest first: nothing older can be ours
                    full = candidate
                    if not isinstance(candidate.get("input"), dict):
                        full = await http.json("GET", self._get_url(candidate),
                                               "find_prediction")
                    got = full.get("input") if isinstance(full, dict) else None
                    if isinstance(got, dict) and got.get("seed") == inputs["seed"] and (
                            got.get("prompt") == inputs["prompt"]):
                        return _prediction(full), attempt + 1
            except ProviderError as exc:
                raise provider_error("lookup_failed", retryable=False, provider=LABEL,
                                     step="create_prediction", reason=unknown.reason,
                                     **unknown.params) from exc
        return None, attempts

    def _same_target(self, prediction: dict[str, Any]) -> bool:
        if self.version:
            return prediction.get("version") == self.version
        return prediction.get("model") == self.model

    async def _wait(self, http: ProviderHTTP, prediction: dict[str, Any],
                    tracker: ProgressTracker, started: float) -> tuple[dict[str, Any], int]:
        polls = 0
        try:
            while True:
                status = prediction.get("status")
                if status == "succeeded":
                    return prediction, polls
                if status in RUNNING and polls == 0 and _first_output(prediction.get("output")):
                    return prediction, polls  # the sync wait already delivered the files
                if status == "failed":
                    if not prediction.get("error"):
                        raise provider_error("replicate_failed_no_detail", retryable=True)
                    error = http.redact(str(prediction["error"]))[:300]
                    final = failure_is_final(error)
                    raise provider_error("replicate_failed" if final else
                                         "replicate_failed_retry", retryable=not final,
                                         detail=error)
                if status == "canceled":
                    raise provider_error("replicate_canceled", retryable=False)
                if status == "aborted":  # the Cancel-After deadline passed before it ran
                    raise provider_error("replicate_aborted", retryable=True,
                                         seconds=self.cancel_after.rstrip("s"))
                if status not in RUNNING:
                    raise provider_error("unknown_status", retryable=True, provider=LABEL,
                                         status=status)
                elapsed = self._monotonic() - started
                if elapsed > self.timeout_seconds:
                    await self._cancel(http, prediction)
                    raise provider_error("replicate_deadline", retryable=True,
                                         seconds=f"{self.timeout_seconds:g}")
                if status == "starting":
                    await tracker.report("queued", 0.1 + 0.1 * min(1.0, elapsed / 60))
                else:
                    await tracker.report("generating", _generating_fraction(elapsed))
                await self._sleep(self.poll_interval_seconds)
                polls += 1
                prediction = _prediction(await http.json("GET", self._get_url(prediction),
                                                         "check_prediction"))
        except asyncio.CancelledError:
            # The variant was cancelled (or the worker is stopping): stop the billing.
            await asyncio.shield(self._cancel(http, prediction))
            raise

    def _get_url(self, prediction: dict[str, Any]) -> str:
        url = (prediction.get("urls") or {}).get("get")
        return str(url) if url else f"{self.base_url}/predictions/{prediction['id']}"

    async def _cancel(self, http: ProviderHTTP, prediction: dict[str, Any]) -> None:
        url = (prediction.get("urls") or {}).get("cancel")
        if not url and prediction.get("id"):
            url = f"{self.base_url}/predictions/{prediction['id']}/cancel"
        if url:
            await http.best_effort("POST", str(url))


def _prediction(answer: Any) -> dict[str, Any]:
    if not isinstance(answer, dict) or not answer.get("id") or "status" not in answer:
        raise provider_error("replicate_bad_prediction", retryable=True)
    return answer


def _first_output(output: Any) -> str | None:
    if isinstance(output, list):
        output = output[0] if output else None
    return output if isinstance(output, str) and output else None
