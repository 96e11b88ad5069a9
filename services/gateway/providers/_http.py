"""HTTP plumbing shared by the remote providers (Leonardo AI, Replicate).

It decides, for every answer a provider's API gives, whether trying again can help:

==========================================  =============================  ==========
what happened                               in-client behaviour            retryable
==========================================  =============================  ==========
timeout, connection error                   backoff, retry (bounded)       yes
5xx, 408                                    backoff, retry (bounded)       yes
2xx with malformed JSON                     backoff, retry (bounded)       yes
429 with Retry-After <= the cap             wait Retry-After, retry        yes
429 with Retry-After > the cap              stop at once                   yes (later)
401 / 403                                   stop: the key is wrong         no
402                                         stop: no credit                no
400 / 404 / 422 (API)                       stop: the request is invalid   no
404 / 403 on a result download              backoff, retry (CDN lag)       yes
a download that is not an image             stop                           yes
==========================================  =============================  ==========

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

from services.gateway.errors import ProviderError
from services.gateway.providers.base import ProgressCallback

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
Step = tuple[str, str]
"""What the client was doing, as a Spanish and an English verb phrase."""

MAX_JSON_BYTES = 5 * 1024 * 1024
MAX_IMAGE_BYTES = 50 * 1024 * 1024
_RETRY_IN_TEXT = re.compile(r"(\d+(?:\.\d+)?)\s*(?:s\b|sec|second)", re.IGNORECASE)


class ProviderRateLimited(ProviderError):
    """The provider asked us to wait longer than we are willing to block a worker.

    ``retry_after_seconds`` is the provider's own estimate; the job runner may use it to
    schedule the next attempt.
    """

    def __init__(self, message_es: str, message_en: str, *, retry_after_seconds: float | None):
        super().__init__(message_es, message_en, retryable=True)
        self.retry_after_seconds = retry_after_seconds


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
    try:
        value = float(params[name])
    except (KeyError, TypeError, ValueError):
        raise ProviderError(
            f"{provider}: falta el parámetro numérico {name!r}; no se llamó al proveedor.",
            f"{provider}: numeric parameter {name!r} is missing; the provider was not called.",
            retryable=False) from None
    if not low <= value <= high:  # also rejects NaN
        raise ProviderError(
            f"{provider}: {name}={value} está fuera de lo que acepta la API ({low}–{high}).",
            f"{provider}: {name}={value} is outside what the API accepts ({low}–{high}).",
            retryable=False)
    return value


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
    def __init__(self, es: str, en: str, retry_after: float | None = None,
                 rate_limited: bool = False) -> None:
        super().__init__(en)
        self.es, self.en = es, en
        self.retry_after = retry_after
        self.rate_limited = rate_limited


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
                   headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        """Send with bounded retries; return the 2xx response (body read) or raise.

        Args:
            step: what this request does, for the error message.
            want_json: a 2xx whose body is not JSON counts as a transient failure.
            retry_not_found: treat 403/404 as transient (result URLs on a CDN).
            max_bytes: larger bodies are refused (a final error).
        """
        last: _Transient | None = None
        for attempt in range(self.policy.max_retries + 1):
            try:
                return await self._attempt(method, url, step, want_json, retry_not_found,
                                           max_bytes, headers, kwargs)
            except _Transient as exc:
                problem = last = exc
            if problem.retry_after is not None and (
                    problem.retry_after > self.policy.max_retry_after_seconds):
                raise ProviderRateLimited(
                    f"{self.provider} limita las peticiones y pide esperar "
                    f"{problem.retry_after:.0f} s al {step[0]}; se reintentará más tarde.",
                    f"{self.provider} is rate limiting and asks to wait "
                    f"{problem.retry_after:.0f} s to {step[1]}; it will be retried later.",
                    retry_after_seconds=problem.retry_after)
            if attempt == self.policy.max_retries:
                break
            if problem.retry_after is not None:  # honour it, plus a little jitter
                delay = problem.retry_after + self._rand() * self.policy.backoff_seconds / 2
            else:
                delay = self.policy.backoff(attempt, self._rand())
            self.retries += 1
            log.warning("%s %s %s: %s; retry %d/%d in %.2fs", self.provider, method,
                        loggable(url), problem.en, attempt + 1, self.policy.max_retries, delay)
            await self.progress.report("retrying")  # also renews the job's lease
            await self._sleep(delay)
        assert last is not None
        attempts = self.policy.max_retries + 1
        message_es = (f"{self.provider} no respondió bien al {step[0]} tras {attempts} "
                      f"intentos: {last.es}. Se reintentará más tarde.")
        message_en = (f"{self.provider} kept failing to {step[1]} after {attempts} attempts: "
                      f"{last.en}. It will be retried later.")
        if last.rate_limited:
            raise ProviderRateLimited(message_es, message_en, retry_after_seconds=last.retry_after)
        raise ProviderError(message_es, message_en, retryable=True)

    async def download_image(self, url: str, step: Step,
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
            raise ProviderError(
                f"{self.provider} devolvió un resultado que no es una imagen.",
                f"{self.provider} returned a result that is not an image.",
                retryable=True) from exc
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
                       kwargs: dict[str, Any]) -> httpx.Response:
        self.requests += 1
        try:
            request = self.client.build_request(method, url, headers=self._headers(url, headers),
                                                **kwargs)
            response = await self.client.send(request, stream=True)
            try:
                body = await _read_limited(response, max_bytes)
            finally:
                await response.aclose()
        except httpx.TimeoutException as exc:
            raise _Transient("tiempo de espera agotado", "timed out") from exc
        except httpx.TransportError as exc:
            name = type(exc).__name__
            raise _Transient(f"error de red ({name})", f"network error ({name})") from exc
        except _TooLarge:
            raise ProviderError(
                f"{self.provider}: la respuesta al {step[0]} supera {max_bytes // 2**20} MB.",
                f"{self.provider}: the answer to {step[1]} exceeds {max_bytes // 2**20} MB.",
                retryable=False) from None
        # Rebuild a fully-read response so callers can use .json()/.content freely.
        response = httpx.Response(response.status_code, headers=response.headers, content=body,
                                  request=response.request)
        status = response.status_code
        if 200 <= status < 300:
            if want_json:
                try:
                    json.loads(body)
                except ValueError:
                    raise _Transient("respuesta JSON mal formada",
                                     "malformed JSON in the answer") from None
            return response
        if status == 429:
            retry_after = parse_retry_after(response)
            raise _Transient("límite de peticiones (HTTP 429)", "rate limited (HTTP 429)",
                             retry_after=retry_after, rate_limited=True)
        if status >= 500 or status == 408:
            raise _Transient(f"error del servidor (HTTP {status})", f"server error (HTTP {status})")
        if retry_not_found and status in (403, 404):
            raise _Transient(f"el resultado no está disponible (HTTP {status})",
                             f"the result is not available (HTTP {status})")
        raise self._refused(status, response, step)

    def _refused(self, status: int, response: httpx.Response, step: Step) -> ProviderError:
        detail = self.redact(_detail(response))
        suffix = f": {detail}" if detail else "."
        who = self.provider
        if status in (401, 403):
            return ProviderError(
                f"{who} rechazó la clave de API (HTTP {status}) al {step[0]}. "
                f"Revisa {self.key_env}.",
                f"{who} refused the API key (HTTP {status}) to {step[1]}. Check {self.key_env}.",
                retryable=False)
        if status == 402:
            return ProviderError(
                f"{who} no tiene crédito para generar (HTTP 402). Recarga la cuenta.",
                f"{who} has no credit left (HTTP 402). Top the account up.", retryable=False)
        return ProviderError(
            f"{who} rechazó la petición al {step[0]} (HTTP {status}){suffix}",
            f"{who} refused the request to {step[1]} (HTTP {status}){suffix}", retryable=False)


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


def _decode_data_url(url: str, provider: str) -> bytes:
    import base64

    try:
        header, payload = url.split(",", 1)
        if not header.endswith(";base64"):
            raise ValueError("not base64")
        return base64.b64decode(payload, validate=True)
    except ValueError as exc:
        raise ProviderError(f"{provider} devolvió una imagen en línea ilegible.",
                            f"{provider} returned an unreadable inline image.",
                            retryable=True) from exc
