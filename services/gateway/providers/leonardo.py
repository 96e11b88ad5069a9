"""Leonardo AI provider (option "leonardo"): the init-image flow of its REST API v1.

Model and request (evidence in docs/providers.md): image-to-image from the render with
one ControlNet on the same render, on an SD1.5 platform model. Leonardo's guide says
"Image to Image with multiple ControlNets is incompatible with most SDXL models, except
for Style Reference (67) and Character Reference (133)", neither of which carries the
render's structure, so the default is Absolute Reality v1.6 (SD1.5) with Edge to Image
(preprocessor 1, the SD1.5 id).

1. ``POST /init-image`` ``{"extension": "jpg"}`` → ``uploadInitImage``: a presigned S3
   POST (``url`` + ``fields``, a JSON string) and the init image ``id``;
2. the render, resized to the generation size, is POSTed to that URL as multipart:
   every field first, the file last, and no API key. The URL expires after a couple of
   minutes: a 403 there restarts from step 1 once (:class:`~._http.UploadRefused`);
3. ``POST /generations`` with the parameters mapped as::

       init_strength      ← parameters["init_strength"]   (Float 0.1–0.9; the variant
                             already stores 1 − strength, see parameter_space)
       guidance_scale     ← parameters["guidance_scale"]  (Int 1–20: a fraction is refused
                             here, never rounded, so the variant is what was sent)
       controlnets[0].weight ← parameters["controlnet_weight"] (0–2)
       prompt, negative_prompt ← the request's prompt version
       init_image_id, controlnets[0].initImageId ← the uploaded render
       controlnets[0].initImageType = "UPLOADED", .preprocessorId ← settings
       modelId ← settings; width/height ← the render's aspect, long side max_side, ×8
       alchemy ← settings (sent explicitly: the API defaults it to true, which costs
                 more and upscales); presetStyle ← settings ("NONE" without Alchemy)
       num_images = 1; seed ← request.seed, or a fresh random one

   → ``sdGenerationJob.generationId``. The seed is always sent: it is how a lost
   answer is recognised. This call is never repeated blindly (no idempotency keys):
   after a timeout or 5xx the client lists the user's recent generations (``GET /me``,
   ``GET /generations/user/{id}``) and adopts the one with this seed, prompt and
   model; only a 5xx with nothing found is created again, and a timeout with nothing
   found fails the variant with a clear message instead of paying twice;
4. poll ``GET /generations/{id}`` until ``generations_by_pk.status`` is ``COMPLETE`` or
   ``FAILED``. If the time budget runs out the variant fails without automatic retry:
   the API has no cancel, so a re-queued job would pay for a second generation;
5. download ``generated_images[0].url`` (no API key: it is a CDN).

Progress stages: ``upload`` → ``queued`` → ``generating`` → ``download`` (and
``retrying`` while backing off). Errors follow :mod:`._http` and are built from
:mod:`.messages`; a ``FAILED`` generation carries no reason in the API, so it is
reported as retryable (bounded by the job runner's attempts).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import math
import random
import time
from collections.abc import Callable
from typing import Any

import httpx
from PIL import Image

from services.gateway.errors import ProviderError
from services.gateway.providers._http import (
    CreateOutcomeUnknown,
    ProgressTracker,
    ProviderHTTP,
    RetryPolicy,
    Sleep,
    UploadRefused,
    require_integer,
    require_number,
)
from services.gateway.providers.base import GenerationRequest, GenerationResult, ProgressCallback
from services.gateway.providers.messages import provider_error

log = logging.getLogger(__name__)

LABEL = "Leonardo AI"
EXPECTED_SECONDS = 25.0  # typical generation time; shapes the progress bar only
DEFAULT_MODEL_ID = "e316348f-7773-490e-adcd-46757c738eb7"  # Absolute Reality v1.6 (SD1.5)
DEFAULT_PREPROCESSOR_ID = 1  # Edge to Image, SD1.5 id (the guide's preprocessor table)
LOOKUP_LIMIT = 20  # recent generations scanned for a lost answer
MAX_SEED = 2**31 - 1


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
        raise provider_error("render_unreadable", retryable=False, provider=LABEL) from exc
    width, height = generation_size(rgb.width, rgb.height, max_side)
    if rgb.size != (width, height):
        rgb = rgb.resize((width, height), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    rgb.save(out, format="JPEG", quality=92)
    return out.getvalue(), width, height


def _generating_fraction(elapsed: float) -> float:
    """0.2 → 0.85, approaching asymptotically: honest when a job runs long."""
    return 0.2 + 0.65 * (1 - math.exp(-elapsed / EXPECTED_SECONDS))


def _random_seed() -> int:
    return random.SystemRandom().randint(1, MAX_SEED)


class LeonardoProvider:
    """Leonardo AI through its REST API. Stateless between calls; safe to share."""

    name = "leonardo"
    label_es = "Leonardo AI"
    label_en = "Leonardo AI"

    def __init__(self, api_key: str, *, base_url: str = "https://cloud.leonardo.ai/api/rest/v1",
                 model_id: str = DEFAULT_MODEL_ID,
                 controlnet_preprocessor_id: int = DEFAULT_PREPROCESSOR_ID,
                 cost_per_image_usd: float, alchemy: bool = False,
                 preset_style: str | None = "NONE",
                 timeout_seconds: float = 180.0, poll_interval_seconds: float = 2.0,
                 request_timeout_seconds: float = 30.0, policy: RetryPolicy | None = None,
                 max_side: int = 1024, lookup_attempts: int = 3, sleep: Sleep = asyncio.sleep,
                 seeds: Callable[[], int] = _random_seed,
                 monotonic: Callable[[], float] = time.monotonic,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.model_id = model_id
        self.controlnet_preprocessor_id = controlnet_preprocessor_id
        self.cost_per_image_usd = cost_per_image_usd
        self.alchemy = alchemy
        self.preset_style = preset_style
        self.timeout_seconds = timeout_seconds
        self.poll_interval_seconds = poll_interval_seconds
        self.request_timeout_seconds = request_timeout_seconds
        self.policy = policy or RetryPolicy()
        self.max_side = max_side
        self.lookup_attempts = max(1, lookup_attempts)
        self._api_key = api_key
        self._sleep = sleep
        self._seeds = seeds
        self._monotonic = monotonic  # the generation deadline's clock (tests inject one)
        self._transport = transport

    def __repr__(self) -> str:  # never show the key
        return f"LeonardoProvider(base_url={self.base_url!r}, model_id={self.model_id!r})"

    def build_body(self, request: GenerationRequest, image_id: str, width: int, height: int,
                   seed: int) -> dict[str, Any]:
        """The ``POST /generations`` body for ``request`` (parameters checked first)."""
        params = request.parameters
        body: dict[str, Any] = {
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt,
            "modelId": self.model_id,
            "width": width,
            "height": height,
            "num_images": 1,
            "alchemy": self.alchemy,
            "init_image_id": image_id,
            "init_strength": require_number(params, "init_strength", 0.1, 0.9, LABEL),
            "guidance_scale": require_integer(params, "guidance_scale", 1, 20, LABEL),
            "seed": seed,
            "controlnets": [{
                "initImageId": image_id,
                "initImageType": "UPLOADED",
                "preprocessorId": self.controlnet_preprocessor_id,
                "weight": require_number(params, "controlnet_weight", 0.0, 2.0, LABEL),
            }],
        }
        if self.preset_style:
            body["presetStyle"] = self.preset_style
        return body

    async def generate(self, request: GenerationRequest, progress: ProgressCallback
                       ) -> GenerationResult:
        seed = request.seed or self._seeds()
        self.build_body(request, "", 64, 64, seed)  # refuse bad parameters before any call
        init_jpeg, width, height = prepare_init_image(request.image, self.max_side)

        tracker = ProgressTracker(progress)
        started = self._monotonic()
        timeout = httpx.Timeout(self.request_timeout_seconds,
                                connect=min(10.0, self.request_timeout_seconds))
        async with httpx.AsyncClient(timeout=timeout, transport=self._transport,
                                     headers={"User-Agent": "afinador-gateway"}) as client:
            http = ProviderHTTP(client, provider=LABEL, api_base=self.base_url,
                                token=self._api_key, key_env="LEONARDO_API_KEY",
                                policy=self.policy, progress=tracker, sleep=self._sleep)
            await tracker.report("upload", 0.02)
            image_id, uploads = await self._upload(http, init_jpeg)
            body = self.build_body(request, image_id, width, height, seed)
            await tracker.report("queued", 0.15)
            generation_id, credit_cost, creates, lookups = await self._create(http, body)
            generation, polls = await self._wait(http, generation_id, tracker, started)
            image_info = generation["generated_images"][0]
            await tracker.report("download", 0.9)
            data, content_type = await http.download_image(str(image_info["url"]))
        return GenerationResult(
            image=data, content_type=content_type, model=f"leonardo:{self.model_id}",
            estimated_cost_usd=self.cost_per_image_usd,
            details={"provider": self.name, "generation_id": generation_id,
                     "init_image_id": image_id, "api_credit_cost": credit_cost,
                     "request": body, "seed": seed, "width": width, "height": height,
                     "nsfw": bool(image_info.get("nsfw", False)), "polls": polls,
                     "uploads": uploads, "creates": creates, "lookups": lookups,
                     "http_requests": http.requests, "retries": http.retries,
                     "seconds": round(self._monotonic() - started, 3)})

    async def _upload(self, http: ProviderHTTP, jpeg: bytes) -> tuple[str, int]:
        """Upload the render; a refused presigned upload restarts from ``/init-image``
        once. Returns the init image id and the number of uploads made."""
        for attempt in (1, 2):
            answer = _checked(await http.json("POST", f"{self.base_url}/init-image",
                                              "request_upload", json={"extension": "jpg"}), http)
            try:
                upload = answer["uploadInitImage"]
                fields = upload["fields"]
                fields = json.loads(fields) if isinstance(fields, str) else dict(fields)
                url, image_id = str(upload["url"]), str(upload["id"])
                form = {str(k): str(v) for k, v in fields.items()}
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise provider_error("leonardo_upload_incomplete", retryable=True) from exc
            try:
                # httpx writes data fields before files, which is the order S3 requires.
                await http.send("POST", url, "upload_render", data=form,
                                files={"file": ("render.jpg", jpeg, "image/jpeg")},
                                presigned_upload=True)
                return image_id, attempt
            except UploadRefused as refused:
                if attempt == 2:
                    raise provider_error("leonardo_upload_refused", retryable=True,
                                         status=refused.status, detail=refused.detail
                                         ) from refused
                log.warning("Leonardo AI storage refused the render upload (%s); asking for "
                            "a new upload link", refused)
        raise AssertionError("unreachable")

    async def _create(self, http: ProviderHTTP, body: dict[str, Any]
                      ) -> tuple[str, int | None, int, int]:
        """Create the generation without ever paying twice.

        Returns ``(generation id, apiCreditCost or None, creates sent, lookups made)``.
        """
        creates = lookups = 0
        while True:
            creates += 1
            try:
                created = _checked(await http.json(
                    "POST", f"{self.base_url}/generations", "create_generation", json=body,
                    idempotent=False), http)
            except CreateOutcomeUnknown as unknown:
                found, used = await self._find(http, body, unknown)
                lookups += used
                if found is not None:
                    log.info("Leonardo AI: lost answer to the create call; adopted generation "
                             "%s found in the account", found)
                    return found, None, creates, lookups
                if unknown.answered and creates <= self.policy.max_retries:
                    await http.pause(creates - 1)
                    continue  # the service answered an error and created nothing
                raise unknown.final_error(LABEL, "create_generation", creates) from None
            job = created.get("sdGenerationJob") if isinstance(created, dict) else None
            job = job if isinstance(job, dict) else {}
            generation_id = job.get("generationId")
            if not isinstance(generation_id, str) or not generation_id:
                raise provider_error("leonardo_no_generation_id", retryable=True)
            cost = job.get("apiCreditCost")
            return generation_id, cost if isinstance(cost, int) else None, creates, lookups

    async def _find(self, http: ProviderHTTP, body: dict[str, Any],
                    unknown: CreateOutcomeUnknown) -> tuple[str | None, int]:
        """The id of the generation ``body`` created, from the user's recent generations
        (seed, prompt and model match), looked up ``lookup_attempts`` times when the
        service may still be handling the request; ``(None, n)`` if not there."""
        attempts = 1 if unknown.answered else self.lookup_attempts
        try:
            account = _checked(await http.json("GET", f"{self.base_url}/me", "read_account"), http)
            user_id = account["user_details"][0]["user"]["id"]
        except ProviderError as exc:
            raise self._lookup_failed(unknown, exc) from exc
        except (KeyError, IndexError, TypeError) as exc:
            raise provider_error("leonardo_no_user", retryable=False) from exc
        for attempt in range(attempts):
            if attempt:
                await self._sleep(self.poll_interval_seconds)
            try:
                listed = _checked(await http.json(
                    "GET", f"{self.base_url}/generations/user/{user_id}", "find_generation",
                    params={"offset": 0, "limit": LOOKUP_LIMIT}), http)
            except ProviderError as exc:
                raise self._lookup_failed(unknown, exc) from exc
            for generation in (listed.get("generations") or []) if isinstance(
                    listed, dict) else []:
                if (isinstance(generation, dict) and generation.get("seed") == body["seed"]
                        and generation.get("prompt") == body["prompt"]
                        and generation.get("modelId") == body["modelId"]
                        and isinstance(generation.get("id"), str)):
                    return str(generation["id"]), attempt + 1
        return None, attempts

    @staticmethod
    def _lookup_failed(unknown: CreateOutcomeUnknown, exc: ProviderError) -> ProviderError:
        return provider_error("lookup_failed", retryable=False, provider=LABEL,
                              step="create_generation", reason=unknown.reason, **unknown.params)

    async def _wait(self, http: ProviderHTTP, generation_id: str, tracker: ProgressTracker,
                    started: float) -> tuple[dict[str, Any], int]:
        polls = 0
        url = f"{self.base_url}/generations/{generation_id}"
        while True:
            elapsed = self._monotonic() - started
            if elapsed > self.timeout_seconds:
                # No cancel endpoint: re-queueing would start a second, paid generation.
                raise provider_error("leonardo_deadline", retryable=False,
                                     generation_id=generation_id,
                                     seconds=f"{self.timeout_seconds:g}")
            await tracker.report("generating", _generating_fraction(elapsed))
            await self._sleep(self.poll_interval_seconds)
            polls += 1
            answer = _checked(await http.json("GET", url, "check_generation"), http)
            generation = answer.get("generations_by_pk") if isinstance(answer, dict) else None
            if not isinstance(generation, dict):
                continue  # not visible yet right after creation; the deadline bounds this
            status = generation.get("status")
            if status == "COMPLETE":
                images = generation.get("generated_images") or []
                if not images or not isinstance(images[0], dict) or not images[0].get("url"):
                    raise provider_error("leonardo_no_image", retryable=True)
                return generation, polls
            if status == "FAILED":
                raise provider_error("leonardo_failed", retryable=True)
            if status != "PENDING":
                raise provider_error("unknown_status", retryable=True, provider=LABEL,
                                     status=status)


def _checked(answer: Any, http: ProviderHTTP) -> Any:
    """Leonardo's GraphQL layer may answer an error with HTTP 200 and ``{"error": ...}``."""
    if isinstance(answer, dict) and isinstance(answer.get("error"), str):
        message = http.redact(answer["error"])[:200]
        code = str(answer.get("code", ""))
        if code == "access-denied" or "authoriz" in message.lower():
            raise provider_error("leonardo_key_error_200", retryable=False, detail=message)
        raise provider_error("leonardo_error_200", retryable=False, detail=message)
    return answer
