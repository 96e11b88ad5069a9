"""Stable Diffusion on Replicate (option "stablediffusion"): the predictions API.

1. The render goes in as a data URL when small (≤ 256 KB, Replicate's advice) and
   otherwise through ``POST /files`` (multipart ``content``) whose ``urls.get`` is passed;
2. ``POST /predictions`` ``{"version", "input"}`` for a pinned version, else ``POST
   /models/{owner}/{name}/predictions`` ``{"input"}``, with ``Prefer: wait=N`` so short
   runs finish inside the call. The input maps as::

       image                          ← the render (data URL or file URL)
       prompt, negative_prompt        ← the request's prompt version
       strength                       ← parameters["strength"]  (API range 0–1)
       guidance_scale                 ← parameters["guidance_scale"]  (1–50)
       controlnet_conditioning_scale  ← parameters["controlnet_conditioning_scale"] (0–2)
       seed                           ← request.seed when non-zero

3. poll ``urls.get`` until ``succeeded``, ``failed`` or ``canceled`` (``starting`` is
   reported as stage ``queued``, ``processing`` as ``generating``). When a sync wait
   already returns the output files the prediction is used as is (Replicate answers as
   soon as the files exist, possibly still ``processing``);
4. download ``output`` (a URL, or the first of a list; no API key: it is a CDN).

If the time budget runs out, or the job is cancelled, the prediction is cancelled with
``urls.cancel`` so it stops billing. A ``failed`` prediction whose error speaks of
content (NSFW, safety) or invalid input is final; other failures (out of memory,
interrupted) are retryable; ``canceled`` by someone else is final.
"""

from __future__ import annotations

import asyncio
import base64
import math
import re
import time
from typing import Any

import httpx

from services.gateway.errors import ProviderError
from services.gateway.providers._http import (
    ProgressTracker,
    ProviderHTTP,
    RetryPolicy,
    Sleep,
    require_number,
)
from services.gateway.providers.base import GenerationRequest, GenerationResult, ProgressCallback

LABEL = "Replicate"
DATA_URL_LIMIT = 256 * 1024
EXPECTED_SECONDS = 20.0  # typical SDXL run; shapes the progress bar only
RUNNING = ("starting", "processing")

STEP_FILE = ("subir el render", "upload the render")
STEP_CREATE = ("crear la predicción", "create the prediction")
STEP_POLL = ("consultar la predicción", "check the prediction")
STEP_DOWNLOAD = ("descargar la imagen generada", "download the generated image")

_FINAL_FAILURE = re.compile(
    r"nsfw|safety|unsafe|inappropriate|content policy|flagged|sensitive|moderat"
    r"|invalid|validation|must be|not a valid|unsupported", re.IGNORECASE)


def failure_is_final(error: str) -> bool:
    """Content-policy and invalid-input failures will fail again; others may not."""
    return bool(_FINAL_FAILURE.search(error))


def _generating_fraction(elapsed: float) -> float:
    return 0.25 + 0.6 * (1 - math.exp(-elapsed / EXPECTED_SECONDS))


class ReplicateProvider:
    """A Replicate model (SDXL img2img + ControlNet). Stateless between calls."""

    name = "stablediffusion"
    label_es = "Stable Diffusion (Replicate)"
    label_en = "Stable Diffusion (Replicate)"

    def __init__(self, api_token: str, *, base_url: str = "https://api.replicate.com/v1",
                 model: str, version: str = "", cost_per_image_usd: float,
                 timeout_seconds: float = 180.0, poll_interval_seconds: float = 2.0,
                 wait_seconds: int = 30, request_timeout_seconds: float = 30.0,
                 policy: RetryPolicy | None = None, sleep: Sleep = asyncio.sleep,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        if "/" not in model and not version:
            raise ValueError("replicate model must be 'owner/name' (or pin a version)")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.version = version
        self.cost_per_image_usd = cost_per_image_usd
        self.timeout_seconds = timeout_seconds
        self.poll_interval_seconds = poll_interval_seconds
        self.wait_seconds = max(0, min(60, int(wait_seconds)))  # the API accepts 1–60
        self.request_timeout_seconds = request_timeout_seconds
        self.policy = policy or RetryPolicy()
        self._api_token = api_token
        self._sleep = sleep
        self._transport = transport

    def __repr__(self) -> str:  # never show the token
        return f"ReplicateProvider(base_url={self.base_url!r}, model={self.model!r})"

    async def generate(self, request: GenerationRequest, progress: ProgressCallback
                       ) -> GenerationResult:
        params = request.parameters
        inputs: dict[str, Any] = {
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt,
            "strength": require_number(params, "strength", 0.0, 1.0, LABEL),
            "guidance_scale": require_number(params, "guidance_scale", 1.0, 50.0, LABEL),
            "controlnet_conditioning_scale": require_number(
                params, "controlnet_conditioning_scale", 0.0, 2.0, LABEL),
        }
        if request.seed:
            inputs["seed"] = request.seed

        tracker = ProgressTracker(progress)
        started = time.monotonic()
        # A sync wait holds the create call open up to wait_seconds.
        timeout = httpx.Timeout(self.request_timeout_seconds + self.wait_seconds,
                                connect=min(10.0, self.request_timeout_seconds))
        async with httpx.AsyncClient(timeout=timeout, transport=self._transport,
                                     headers={"User-Agent": "afinador-gateway"}) as client:
            http = ProviderHTTP(client, provider=LABEL, api_base=self.base_url,
                                token=self._api_token, key_env="REPLICATE_API_TOKEN",
                                policy=self.policy, progress=tracker, sleep=self._sleep)
            await tracker.report("upload", 0.02)
            inputs["image"] = await self._image_input(http, request.image)

            if self.version:
                url = f"{self.base_url}/predictions"
                body: dict[str, Any] = {"version": self.version, "input": inputs}
            else:
                url = f"{self.base_url}/models/{self.model}/predictions"
                body = {"input": inputs}
            headers = {"Prefer": f"wait={self.wait_seconds}"} if self.wait_seconds else {}
            await tracker.report("queued", 0.1)
            prediction = _prediction(await http.json("POST", url, STEP_CREATE, json=body,
                                                     headers=headers))
            prediction, polls = await self._wait(http, prediction, tracker, started)
            output_url = _first_output(prediction.get("output"))
            if output_url is None:
                raise ProviderError("Replicate terminó sin devolver ninguna imagen.",
                                    "Replicate finished without an image.", retryable=True)
            await tracker.report("download", 0.9)
            data, content_type = await http.download_image(output_url, STEP_DOWNLOAD)
        version = prediction.get("version") or self.version
        metrics = prediction.get("metrics") or {}
        return GenerationResult(
            image=data, content_type=content_type,
            model=f"replicate:{self.model}" + (f":{self.version[:12]}" if self.version else ""),
            estimated_cost_usd=self.cost_per_image_usd,
            details={"provider": self.name, "prediction_id": prediction.get("id"),
                     "version": version, "status": prediction.get("status"),
                     "predict_time": metrics.get("predict_time") if isinstance(metrics, dict)
                     else None,
                     "image_input": "data-url" if inputs["image"].startswith("data:")
                     else "file", "polls": polls, "http_requests": http.requests,
                     "retries": http.retries,
                     "seconds": round(time.monotonic() - started, 3)})

    async def _image_input(self, http: ProviderHTTP, image: bytes) -> str:
        if len(image) <= DATA_URL_LIMIT:
            return "data:image/jpeg;base64," + base64.b64encode(image).decode()
        uploaded = await http.json("POST", f"{self.base_url}/files", STEP_FILE,
                                   files={"content": ("render.jpg", image, "image/jpeg")})
        url = (uploaded.get("urls") or {}).get("get") if isinstance(uploaded, dict) else None
        if not isinstance(url, str) or not url:
            raise ProviderError("Replicate no devolvió la URL del render subido.",
                                "Replicate returned no URL for the uploaded render.",
                                retryable=True)
        return url

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
                    error = http.redact(str(prediction.get("error") or "sin detalle"))[:300]
                    final = failure_is_final(error)
                    then_es = "" if final else " Se reintentará."
                    then_en = "" if final else " It will be retried."
                    raise ProviderError(
                        f"Replicate no pudo generar la imagen: {error}.{then_es}",
                        f"Replicate could not generate the image: {error}.{then_en}",
                        retryable=not final)
                if status == "canceled":
                    raise ProviderError(
                        "La predicción se canceló en Replicate; pulsa Reintentar para repetirla.",
                        "The prediction was cancelled on Replicate; press Retry to run it again.",
                        retryable=False)
                if status not in RUNNING:
                    raise ProviderError(f"Replicate devolvió un estado desconocido: {status!r}.",
                                        f"Replicate returned an unknown status: {status!r}.",
                                        retryable=True)
                elapsed = time.monotonic() - started
                if elapsed > self.timeout_seconds:
                    await self._cancel(http, prediction)
                    raise ProviderError(
                        f"Replicate no terminó en {self.timeout_seconds:g} s; se canceló la "
                        "predicción y se reintentará más tarde.",
                        f"Replicate did not finish within {self.timeout_seconds:g} s; the "
                        "prediction was cancelled and will be retried later.", retryable=True)
                if status == "starting":
                    await tracker.report("queued", 0.1 + 0.1 * min(1.0, elapsed / 60))
                else:
                    await tracker.report("generating", _generating_fraction(elapsed))
                await self._sleep(self.poll_interval_seconds)
                polls += 1
                prediction = _prediction(await http.json("GET", self._get_url(prediction),
                                                         STEP_POLL))
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
        raise ProviderError("Replicate devolvió una predicción sin id ni estado.",
                            "Replicate returned a prediction without id or status.",
                            retryable=True)
    return answer


def _first_output(output: Any) -> str | None:
    if isinstance(output, list):
        output = output[0] if output else None
    return output if isinstance(output, str) and output else None
