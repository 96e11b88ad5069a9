"""HTTP plumbing shared by the remote providers (Leonardo AI, Replicate).

It decides, for every answer a provider's API gives, whether trying again can help:

==========================================  =============================  ==========
what happened                               in-client behaviour            retryable
==========================================  =============================  ==========
connection refused / connect timeout        backoff, retry (bounded)       yes
timeout, broken connection after sending    backoff, retry (bounded) [*]   yes
5xx, 408                                    backoff, retry (bounded) [*]   yes
2xx with malformed JSON                     backoff, retry (bounded) [*]   yes
429 with Retry-After <= the cap             wait Retry-After, retry        yes
429 with Retry-After > the cap              stop at once                   yes (later)
401 / 403                                   stop: the key is wrong         no
402                                         stop: no credit                no
400 / 404 / 422 (API)                       stop: the request is invalid   no
404 / 403 on a result download              backoff, retry (CDN lag)       yes
403 on a presigned upload                   :class:`UploadRefused`         (caller)
a download that is not an image             stop                           yes
==========================================  =============================  ==========

[*] Only for idempotent requests. A *create* call (``idempotent=False``: Leonardo's
``POST /generations``, Replicate's ``POST /predictions``; neither API has idempotency
keys, and replicate-python never retries a POST) is retried only when it provably never
reached the service: the connection was refused or never opened, or the service
answered 429 (it refused the request). Otherwise the send raises
:class:`CreateOutcomeUnknown` and the provider looks the generation up before it
creates another one.

Once retries run out the error is a :class:`ProviderError` (``retryable=True``) so the
job runner can re-queue the variant later. Backoff is exponential with "equal jitter"
(half fixed, half random); the sleep function is injectable so tests do not wait.

Secrets: the bearer token is sent only to the API's own origin (never to presigned
S3 URLs or CDNs), headers are never logged, logged URLs lose their query string
(presigned signatures), and any provider text quoted in an error has the token
redacted.
"""

from __future__ import annotations

import asyncio
import email.utils
import io
import json
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from PIL import Image

from services.common.catalogue import Sentence
from services.gateway.errors import ProviderError
from services.gateway.providers.base import ProgressCallback
from services.gateway.providers.messages import provider_error, render

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
Step = str
"""What the client was doing: ``provider_step.<step>`` in the gateway's catalogue."""

MAX_JSON_BYTES = 5 * 1024 * 1024
MAX_IMAGE_BYTES = 50 * 1024 * 1024
_RETRY_IN_TEXT = re.compile(r"(\d+(?:\.\d+)?)\s*(?:s\b|sec|second)", re.IGNORECASE)
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""Transport errors raised before a byte of the request left this process."""


class ProviderRateLimited(ProviderError):
    """The provider asked us to wait longer than we are willing to block a worker.

    ``retry_after_seconds`` is the provider's own estimate; the job runner may use it to
    schedule the next attempt.
    """

    def __init__(self, message_es: str | Sentence, message_en: str | None = None, *,
                 retryable: bool = True, retry_after_seconds: float | None = None):
        super().__init__(message_es, message_en, retryable=retryable)
        self.retry_after_seconds = retry_after_seconds


class CreateOutcomeUnknown(Exception):
    """A non-idempotent request may have reached the service, but its answer was lost
    (timeout, broken connection) or was an error the service may have raised after
    acting (5xx, unreadable 2xx). ``answered`` is True when the service did answer (5xx,
    malformed body): it has finished handling the request; False after a timeout, when
    it may still be handling it."""

    def __init__(self, reason: str, params: dict[str, Any], *, answered: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.params = params
        self.answered = answered

    def final_error(self, provider: str, step: str, attempts: int) -> ProviderError:
        """The variant's error once no generation was found and no retry is left: the
        service answered an error each time (retryable later), or it may still have
        the request (not retried automatically: a second create could be billed twice)."""
        if self.answered:
            return provider_error("retries_exhausted", retryable=True, provider=provider,
                                  step=step, attempts=attempts, reason=self.reason,
                                  **self.params)
        return provider_error("create_outcome_unknown", retryable=False, provider=provider,
                              step=step, reason=self.reason, **self.params)


class UploadRefused(Exception):
    """A presigned storage URL refused the upload (403: expired or policy mismatch)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries of one HTTP request.

    Attributes:
        max_retries: retries after the first attempt (so ``max_retries + 1`` attempts).
        backoff_seconds: the first retry's base delay; it doubles each retry.
        max_backoff_seconds: cap on the base delay.
        max_retry_after_seconds: the longest ``Retry-After`` honoured in-client; a longer
            one ends the call with :class:`ProviderRateLimited` instead of blocking.
    """

    max_retries: int = 3
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 30.0
    max_retry_after_seconds: float = 60.0

    def backoff(self, retry: int, rand: float) -> float:
        """Delay before retry number ``retry`` (0-based) given ``rand`` in [0, 1)."""
        base = min(self.backoff_seconds * 2**retry, self.max_backoff_seconds)
        return base / 2 + base / 2 * rand


def parse_retry_after(response: httpx.Response, now: float | None = None) -> float | None:
    """Seconds to wait from ``Retry-After`` (delta or HTTP date), else from the body text
    (Replicate says "Expected available in 1 second" / "resets in ~30s")."""
    value = response.headers.get("retry-after", "").strip()
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                when = None
            if when is not None:
                return max(0.0, when.timestamp() - (time.time() if now is None else now))
    match = _RETRY_IN_TEXT.search(response.text[:500]) if response.content else None
    return float(match.group(1)) if match else None


def origin(url: str | httpx.URL) -> tuple[str, str, int | None]:
    parsed = httpx.URL(str(url))
    return parsed.scheme, parsed.host, parsed.port


def loggable(url: str | httpx.URL) -> str:
    """The URL without its query string (presigned URLs carry signatures there)."""
    parsed = httpx.URL(str(url))
    return str(parsed.copy_with(query=None, fragment=None))


def require_number(params: dict[str, Any], name: str, low: float, high: float,
                   provider: str) -> float:
    """A finite parameter inside the range the provider's API accepts, or a final error."""
    raw = params.get(name)
    if isinstance(raw, bool):
        raw = None
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise provider_error("param_missing", retryable=False, provider=provider,
                             name=name) from None
    if not low <= value <= high:  # also rejects NaN
        raise provider_error("param_out_of_range", retryable=False, provider=provider,
                             name=name, value=value, low=low, high=high)
    return value


def require_integer(params: dict[str, Any], name: str, low: int, high: int,
                    provider: str) -> int:
    """Like :func:`require_number`, for an API field typed ``Int``: a value with a
    fraction is refused (never rounded here, so the variant records what was sent)."""
    value = require_number(params, name, low, high, provider)
    if value != int(value):
        raise provider_error("param_not_integer", retryable=False, provider=provider,
                             name=name, value=value)
    return int(value)


@dataclass
class ProgressTracker:
    """Forwards stages to the job's progress callback with non-decreasing fractions."""

    callback: ProgressCallback
    fraction: float = 0.0
    stages: list[str] = field(default_factory=list)

    async def report(self, stage: str, fraction: float | None = None) -> None:
        if fraction is not None:
            self.fraction = max(self.fraction, min(1.0, fraction))
        if not self.stages or self.stages[-1] != stage:
            self.stages.append(stage)
        await self.callback(stage, self.fraction)


class _Transient(Exception):
    """A failure another attempt may cure. ``reached``: the service may have acted on
    the request; ``answered``: it did answer (so it has finished acting)."""

    def __init__(self, reason: str, params: dict[str, Any] | None = None, *,
                 retry_after: float | None = None, rate_limited: bool = False,
                 reached: bool = True, answered: bool = True) -> None:
        self.reason = reason
        self.params = params or {}
        super().__init__(render(reason, "en", self.params))
        self.retry_after = retry_after
        self.rate_limited = rate_limited
        self.reached = reached
        self.answered = answered


class ProviderHTTP:
    """One generation's HTTP session with a provider: retries, auth scoping, counters.

    Not shared between generations (each ``generate`` makes its own), so counters are
    that generation's: ``requests`` (HTTP requests sent) and ``retries``.
    """

    def __init__(self, client: httpx.AsyncClient, *, provider: str, api_base: str, token: str,
                 key_env: str, policy: RetryPolicy, progress: ProgressTracker,
                 sleep: Sleep = asyncio.sleep,
                 rand: Callable[[], float] = random.random) -> None:
        self.client = client
        self.provider = provider
        self.key_env = key_env
        self.policy = policy
        self.progress = progress
        self._api_origin = origin(api_base)
        self._token = token
        self._sleep = sleep
        self._rand = rand
        self.requests = 0
        self.retries = 0

    # ---------------------------------------------------------------- public API
    async def json(self, method: str, url: str, step: Step, **kwargs: Any) -> Any:
        """Send with retries and return the decoded JSON body of the 2xx answer."""
        response = await self.send(method, url, step, want_json=True, **kwargs)
        return response.json()

    async def send(self, method: str, url: str, step: Step, *, want_json: bool = False,
                   retry_not_found: bool = False, max_bytes: int = MAX_JSON_BYTES,
                   headers: dict[str, str] | None = None, idempotent: bool = True,
                   presigned_upload: bool = False, **kwargs: Any) -> httpx.Response:
        """Send with bounded retries; return the 2xx response (body read) or raise.

        Args:
            step: what this request does, for the error message.
            want_json: a 2xx whose body is not JSON counts as a transient failure.
            retry_not_found: treat 403/404 as transient (result URLs on a CDN).
            max_bytes: larger bodies are refused (a final error).
            idempotent: False for a create call: see the module docstring.
            presigned_upload: a 403/400 answer raises :class:`UploadRefused`.

        Raises:
            CreateOutcomeUnknown: a non-idempotent request may have reached the service.
            UploadRefused: the presigned storage refused the upload.
            ProviderError: a final or exhausted failure.
        """
        last: _Transient | None = None
        for attempt in range(self.policy.max_retries + 1):
            try:
                return await self._attempt(method, url, step, want_json, retry_not_found,
                                           max_bytes, headers, presigned_upload, kwargs)
            except _Transient as exc:
                problem = last = exc
            if not idempotent and problem.reached and not problem.rate_limited:
                log.warning("%s %s %s: %s; not repeated (it may have been acted on)",
                            self.provider, method, loggable(url), problem)
                raise CreateOutcomeUnknown(problem.reason, problem.params,
                                           answered=problem.answered)
            if problem.retry_after is not None and (
                    problem.retry_after > self.policy.max_retry_after_seconds):
                raise provider_error(
                    "rate_limited_long", retryable=True, cls=ProviderRateLimited,
                    extra={"retry_after_seconds": problem.retry_after},
                    provider=self.provider, seconds=f"{problem.retry_after:.0f}", step=step)
            if attempt == self.policy.max_retries:
                break
            if problem.retry_after is not None:  # honour it, plus a little jitter
                delay = problem.retry_after + self._rand() * self.policy.backoff_seconds / 2
            else:
                delay = self.policy.backoff(attempt, self._rand())
            self.retries += 1
            log.warning("%s %s %s: %s; retry %d/%d in %.2fs", self.provider, method,
                        loggable(url), problem, attempt + 1, self.policy.max_retries, delay)
            await self.progress.report("retrying")  # also renews the job's lease
            await self._sleep(delay)
        assert last is not None
        params = {**last.params, "provider": self.provider, "step": step,
                  "attempts": self.policy.max_retries + 1, "reason": last.reason}
        if last.rate_limited:
            raise provider_error("retries_exhausted", retryable=True, cls=ProviderRateLimited,
                                 extra={"retry_after_seconds": last.retry_after}, **params)
        raise provider_error("retries_exhausted", retryable=True, **params)

    async def download_image(self, url: str, step: Step = "download_result",
                             max_bytes: int = MAX_IMAGE_BYTES) -> tuple[bytes, str]:
        """Fetch a result image (CDN lag tolerated); returns ``(bytes, content type)``."""
        if url.startswith("data:"):
            data = _decode_data_url(url, self.provider)
        else:
            data = (await self.send("GET", url, step, retry_not_found=True,
                                    max_bytes=max_bytes)).content
        try:
            with Image.open(io.BytesIO(data)) as image:
                fmt = (image.format or "").lower()
                image.verify()
        except Exception as exc:
            raise provider_error("not_an_image", retryable=True,
                                 provider=self.provider) from exc
        return data, "image/jpeg" if fmt in ("jpeg", "jpg", "") else f"image/{fmt}"

    async def best_effort(self, method: str, url: str, **kwargs: Any) -> int | None:
        """One request, no retries, errors swallowed (cancelling a remote job)."""
        try:
            response = await self.client.request(method, url, headers=self._headers(url, None),
                                                 **kwargs)
        except httpx.HTTPError as exc:
            log.warning("%s %s %s failed: %s", self.provider, method, loggable(url),
                        type(exc).__name__)
            return None
        self.requests += 1
        return response.status_code

    async def pause(self, attempt: int) -> None:
        """Back off before a caller-driven retry (a create the service answered with an
        error after a lookup showed it created nothing)."""
        self.retries += 1
        await self.progress.report("retrying")
        await self._sleep(self.policy.backoff(attempt, self._rand()))

    def redact(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    # --------------------------------------------------------------- internals
    def _headers(self, url: str, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {"Accept": "application/json", **(extra or {})}
        if self._token and origin(url) == self._api_origin:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    async def _attempt(self, method: str, url: str, step: Step, want_json: bool,
                       retry_not_found: bool, max_bytes: int, headers: dict[str, str] | None,
                       presigned_upload: bool, kwargs: dict[str, Any]) -> httpx.Response:
        self.requests += 1
        try:
            request = self.client.build_request(method, url, headers=self._headers(url, headers),
                                                **kwargs)
            response = await self.client.send(request, stream=True)
            try:
                body = await _read_limited(response, max_bytes)
            finally:
                await response.aclose()
        except _NEVER_SENT as exc:
            name = type(exc).__name__
            raise _Transient("reason_network", {"name": name}, reached=False,
                             answered=False) from exc
        except httpx.TimeoutException as exc:
            raise _Transient("reason_timeout", answered=False) from exc
        except httpx.TransportError as exc:
            raise _Transient("reason_network", {"name": type(exc).__name__},
                             answered=False) from exc
        except _TooLarge:
            raise provider_error("answer_too_large", retryable=False, provider=self.provider,
                                 step=step, megabytes=max_bytes // 2**20) from None
        # Rebuild a fully-read response so callers can use .json()/.content freely.
        response = httpx.Response(response.status_code, headers=response.headers, content=body,
                                  request=response.request)
        status = response.status_code
        if 200 <= status < 300:
            if want_json:
                try:
                    json.loads(body)
                except ValueError:
                    raise _Transient("reason_malformed_json") from None
            return response
        if status == 429:
            raise _Transient("reason_rate_limited", retry_after=parse_retry_after(response),
                             rate_limited=True)
        if status >= 500 or status == 408:
            raise _Transient("reason_server_error", {"status": status})
        if retry_not_found and status in (403, 404):
            raise _Transient("reason_result_missing", {"status": status})
        if presigned_upload and status in (400, 403):
            raise UploadRefused(status, _s3_detail(response))
        raise self._refused(status, response, step)

    def _refused(self, status: int, response: httpx.Response, step: Step) -> ProviderError:
        detail = self.redact(_detail(response))
        if status in (401, 403):
            return provider_error("key_refused", retryable=False, provider=self.provider,
                                  status=status, step=step, key_env=self.key_env)
        if status == 402:
            return provider_error("no_credit", retryable=False, provider=self.provider)
        return provider_error("refused", retryable=False, provider=self.provider, step=step,
                              status=status, detail=f": {detail}" if detail else ".")


class _TooLarge(Exception):
    pass


async def _read_limited(response: httpx.Response, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _detail(response: httpx.Response) -> str:
    """The provider's own explanation, short: Replicate's ``detail``, Leonardo's ``error``."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("detail", "error", "message", "title"):
            if isinstance(body.get(key), str) and body[key]:
                return str(body[key])[:200]
    text = response.text.strip()
    return "" if text.startswith("<") else text[:200]


def _s3_detail(response: httpx.Response) -> str:
    """S3's XML error, as ``Code: Message`` (``AccessDenied: Request has expired``)."""
    text = response.text
    code = re.search(r"<Code>([^<]{1,80})</Code>", text)
    message = re.search(r"<Message>([^<]{1,200})</Message>", text)
    parts = [m.group(1) for m in (code, message) if m]
    return ": ".join(parts) if parts else text.strip()[:200]


def _decode_data_url(url: str, provider: str) -> bytes:
    import base64

    try:
        header, payload = url.split(",", 1)
        if not header.endswith(";base64"):
            raise ValueError("not base64")
        return base64.b64decode(payload, validate=True)
    except ValueError as exc:
        raise provider_error("inline_image_unreadable", retryable=True,
                             provider=provider) from exc
