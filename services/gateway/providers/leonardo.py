"""Leonardo AI provider (option "leonardo"): the init-image flow of its REST API v1.

1. ``POST /init-image`` ``{"extension": "jpg"}`` → ``uploadInitImage``: a presigned S3
   POST (``url`` + ``fields``, a JSON string) and the init image ``id``;
2. the render, resized to the generation size (Leonardo asks for the init image to
   match the output's aspect ratio and bounds), is POSTed to that URL as multipart:
   every field first, the file last, and no API key (the URL carries its own
   authorisation);
3. ``POST /generations`` with the parameters mapped as::

       init_strength      ← parameters["init_strength"]     (API range 0.1–0.9)
       guidance_scale     ← parameters["guidance_scale"]    (API range 1–20)
       controlnets[0].weight ← parameters["controlnet_weight"] (API range 0–2)
       prompt, negative_prompt ← the request's prompt version
       init_image_id, controlnets[0].initImageId ← the uploaded render
       controlnets[0].initImageType = "UPLOADED", .preprocessorId ← settings
       modelId ← settings; width/height ← the render's aspect, long side max_side, ×8
       num_images = 1; seed ← request.seed when non-zero

   → ``sdGenerationJob.generationId``;
4. poll ``GET /generations/{id}`` until ``generations_by_pk.status`` is ``COMPLETE`` or
   ``FAILED`` (or the time budget runs out);
5. download ``generated_images[0].url`` (no API key: it is a CDN).

Progress stages: ``upload`` → ``queued`` → ``generating`` → ``download`` (and
``retrying`` while backing off). Errors follow :mod:`._http`; a ``FAILED`` generation
carries no reason in the API, so it is reported as retryable (bounded by the job
runner's attempts).
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import time
from collections.abc import Callable
from typing import Any

import httpx
from PIL import Image

from services.gateway.errors import ProviderError
from services.gateway.providers._http import (
    ProgressTracker,
    ProviderHTTP,
    RetryPolicy,
    Sleep,
    require_number,
)
from services.gateway.providers.base import GenerationRequest, GenerationResult, ProgressCallback

LABEL = "Leonardo AI"
EXPECTED_SECONDS = 25.0  # typical generation time; shapes the progress bar only

STEP_INIT = ("pedir la subida del render", "request the render upload")
STEP_UPLOAD = ("subir el render", "upload the render")
STEP_CREATE = ("crear la generación", "create the generation")
STEP_POLL = ("consultar la generación", "check the generation")
STEP_DOWNLOAD = ("descargar la imagen generada", "download the generated image")


def generation_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Output size: the render's aspect ratio, long side ``max_side``, multiples of 8."""
    scale = max_side / max(width, height)
    return (max(64, int(width * scale) // 8 * 8), max(64, int(height * scale) // 8 * 8))


def prepare_init_image(image: bytes, max_side: int) -> tuple[bytes, int, int]:
    """The render as a JPEG at the generation size, and that size."""
    try:
        with Image.open(io.BytesIO(image)) as source:
            rgb = source.convert("RGB")
    except Exception as exc:
        raise ProviderError("Leonardo AI: el render no se pudo leer como imagen.",
                            "Leonardo AI: the render could not be read as an image.",
                            retryable=False) from exc
    width, height = generation_size(rgb.width, rgb.height, max_side)
    if rgb.size != (width, height):
        rgb = rgb.resize((width, height), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    rgb.save(out, format="JPEG", quality=92)
    return out.getvalue(), width, height


def _generating_fraction(elapsed: float) -> float:
    """0.2 → 0.85, approaching asymptotically: honest when a job runs long."""
    return 0.2 + 0.65 * (1 - math.exp(-elapsed / EXPECTED_SECONDS))


class LeonardoProvider:
    """Leonardo AI through its REST API. Stateless between calls; safe to share."""

    name = "leonardo"
    label_es = "Leonardo AI"
    label_en = "Leonardo AI"

    def __init__(self, api_key: str, *, base_url: str = "https://cloud.leonardo.ai/api/rest/v1",
                 model_id: str, controlnet_preprocessor_id: int, cost_per_image_usd: float,
                 timeout_seconds: float = 180.0, poll_interval_seconds: float = 2.0,
                 request_timeout_seconds: float = 30.0, policy: RetryPolicy | None = None,
                 max_side: int = 1024, sleep: Sleep = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.model_id = model_id
        self.controlnet_preprocessor_id = controlnet_preprocessor_id
        self.cost_per_image_usd = cost_per_image_usd
        self.timeout_seconds = timeout_seconds
        self.poll_interval_seconds = poll_interval_seconds
        self.request_timeout_seconds = request_timeout_seconds
        self.policy = policy or RetryPolicy()
        self.max_side = max_side
        self._api_key = api_key
        self._sleep = sleep
        self._clock = clock
        self._transport = transport

    def __repr__(self) -> str:  # never show the key
        return f"LeonardoProvider(base_url={self.base_url!r}, model_id={self.model_id!r})"

    async def generate(self, request: GenerationRequest, progress: ProgressCallback
                       ) -> GenerationResult:
        params = request.parameters
        init_strength = require_number(params, "init_strength", 0.1, 0.9, LABEL)
        guidance_scale = require_number(params, "guidance_scale", 1.0, 20.0, LABEL)
        controlnet_weight = require_number(params, "controlnet_weight", 0.0, 2.0, LABEL)
        init_jpeg, width, height = prepare_init_image(request.image, self.max_side)

        tracker = ProgressTracker(progress)
        started = self._clock()
        timeout = httpx.Timeout(self.request_timeout_seconds,
                                connect=min(10.0, self.request_timeout_seconds))
        async with httpx.AsyncClient(timeout=timeout, transport=self._transport,
                                     headers={"User-Agent": "afinador-gateway"}) as client:
            http = ProviderHTTP(client, provider=LABEL, api_base=self.base_url,
                                token=self._api_key, key_env="LEONARDO_API_KEY",
                                policy=self.policy, progress=tracker, sleep=self._sleep)
            await tracker.report("upload", 0.02)
            image_id = await self._upload(http, init_jpeg)

            body: dict[str, Any] = {
                "prompt": request.prompt,
                "negative_prompt": request.negative_prompt,
                "modelId": self.model_id,
                "width": width,
                "height": height,
                "num_images": 1,
                "init_image_id": image_id,
                "init_strength": init_strength,
                "guidance_scale": guidance_scale,
                "controlnets": [{
                    "initImageId": image_id,
                    "initImageType": "UPLOADED",
                    "preprocessorId": self.controlnet_preprocessor_id,
                    "weight": controlnet_weight,
                }],
            }
            if request.seed:
                body["seed"] = request.seed
            await tracker.report("queued", 0.15)
            created = _checked(await http.json("POST", f"{self.base_url}/generations",
                                               STEP_CREATE, json=body), http)
            job = created.get("sdGenerationJob") if isinstance(created, dict) else None
            if not isinstance(job, dict):
                job = {}
            generation_id = job.get("generationId")
            if not isinstance(generation_id, str) or not generation_id:
                raise ProviderError("Leonardo AI no devolvió el id de la generación.",
                                    "Leonardo AI returned no generation id.", retryable=True)

            generation, polls = await self._wait(http, generation_id, tracker, started)
            image_info = generation["generated_images"][0]
            await tracker.report("download", 0.9)
            data, content_type = await http.download_image(str(image_info["url"]),
                                                           STEP_DOWNLOAD)
        return GenerationResult(
            image=data, content_type=content_type, model=f"leonardo:{self.model_id}",
            estimated_cost_usd=self.cost_per_image_usd,
            details={"provider": self.name, "generation_id": generation_id,
                     "init_image_id": image_id, "api_credit_cost": job.get("apiCreditCost"),
                     "width": width, "height": height,
                     "nsfw": bool(image_info.get("nsfw", False)), "polls": polls,
                     "http_requests": http.requests, "retries": http.retries,
                     "seconds": round(self._clock() - started, 3)})

    async def _upload(self, http: ProviderHTTP, jpeg: bytes) -> str:
        answer = _checked(await http.json("POST", f"{self.base_url}/init-image", STEP_INIT,
                                          json={"extension": "jpg"}), http)
        try:
            upload = answer["uploadInitImage"]
            fields = upload["fields"]
            fields = json.loads(fields) if isinstance(fields, str) else dict(fields)
            url, image_id = str(upload["url"]), str(upload["id"])
            form = {str(k): str(v) for k, v in fields.items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ProviderError("Leonardo AI devolvió una subida de imagen incompleta.",
                                "Leonardo AI returned an incomplete image upload.",
                                retryable=True) from exc
        # httpx writes data fields before files, which is the order S3 requires.
        await http.send("POST", url, STEP_UPLOAD, data=form,
                        files={"file": ("render.jpg", jpeg, "image/jpeg")})
        return image_id

    async def _wait(self, http: ProviderHTTP, generation_id: str, tracker: ProgressTracker,
                    started: float) -> tuple[dict[str, Any], int]:
        polls = 0
        url = f"{self.base_url}/generations/{generation_id}"
        while True:
            elapsed = self._clock() - started
            if elapsed > self.timeout_seconds:
                raise ProviderError(
                    f"Leonardo AI no terminó la generación en {self.timeout_seconds:g} s; "
                    "se reintentará más tarde.",
                    f"Leonardo AI did not finish within {self.timeout_seconds:g} s; it will "
                    "be retried later.", retryable=True)
            await tracker.report("generating", _generating_fraction(elapsed))
            await self._sleep(self.poll_interval_seconds)
            polls += 1
            answer = _checked(await http.json("GET", url, STEP_POLL), http)
            generation = answer.get("generations_by_pk") if isinstance(answer, dict) else None
            if not isinstance(generation, dict):
                continue  # not visible yet right after creation; the deadline bounds this
            status = generation.get("status")
            if status == "COMPLETE":
                images = generation.get("generated_images") or []
                if not images or not isinstance(images[0], dict) or not images[0].get("url"):
                    raise ProviderError("Leonardo AI terminó sin devolver ninguna imagen.",
                                        "Leonardo AI finished without an image.", retryable=True)
                return generation, polls
            if status == "FAILED":
                raise ProviderError(
                    "Leonardo AI no pudo generar la imagen (estado FAILED, sin motivo); "
                    "se reintentará.",
                    "Leonardo AI could not generate the image (status FAILED, no reason "
                    "given); it will be retried.", retryable=True)
            if status != "PENDING":
                raise ProviderError(
                    f"Leonardo AI devolvió un estado desconocido: {status!r}.",
                    f"Leonardo AI returned an unknown status: {status!r}.", retryable=True)


def _checked(answer: Any, http: ProviderHTTP) -> Any:
    """Leonardo's GraphQL layer may answer an error with HTTP 200 and ``{"error": ...}``."""
    if isinstance(answer, dict) and isinstance(answer.get("error"), str):
        message = http.redact(answer["error"])[:200]
        code = str(answer.get("code", ""))
        if code == "access-denied" or "authoriz" in message.lower():
            raise ProviderError(
                f"Leonardo AI rechazó la clave de API: {message}. Revisa LEONARDO_API_KEY.",
                f"Leonardo AI refused the API key: {message}. Check LEONARDO_API_KEY.",
                retryable=False)
        raise ProviderError(f"Leonardo AI rechazó la petición: {message}.",
                            f"Leonardo AI refused the request: {message}.", retryable=False)
    return answer
