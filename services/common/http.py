"""Internal HTTP client used for service-to-service calls.

Adds the service token, a request id, timeouts and bounded retries (tenacity, with
the shared jittered backoff) for connection errors and 5xx answers. Failures are
translated at this boundary, so no domain module needs to know about httpx:

- still unreachable or failing after the retries → :class:`ServiceUnavailable`;
- a 4xx answer → :class:`SiblingRefused`, carrying the sibling's own status, code
  and sentences (it refused this request; sending it again will not help).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from services.common.backoff import backoff_delay
from services.common.catalogue import COMMON
from services.common.errors import AfinadorError, ServiceUnavailable
from services.common.logging import request_id_var

log = logging.getLogger(__name__)


class SiblingRefused(AfinadorError):
    """A sibling service answered 4xx; its status code, code and sentences are kept."""

    def __init__(self, service: str, status_code: int, body: Any) -> None:
        error = body.get("error") if isinstance(body, dict) else None
        error = error if isinstance(error, dict) else {}
        detail = body.get("detail") if isinstance(body, dict) else None
        fallback = COMMON.sentence("sibling_refused", service=service, status=status_code)
        message_es = (error.get("message") or (detail if isinstance(detail, str) else None)
                      or fallback.es)
        message_en = error.get("message_en") or fallback.en
        super().__init__(message_es, message_en)
        self.service = service
        self.status_code = status_code
        self.code = str(error.get("code") or f"{service}_refused")
        self.body = body


class _RetryableFailure(Exception):
    """A transport error or 5xx answer: worth another attempt."""


def path_segment(value: str) -> str:
    """``value`` quoted for use as one URL path segment (``/``, ``?`` and ``#`` included)."""
    return quote(value, safe="")


class InternalClient:
    def __init__(
        self,
        name: str,
        base_url: str,
        token: str,
        *,
        timeout: float = 10.0,
        retries: int = 2,
        backoff: float = 0.2,
        max_backoff: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    def _wait(self, state: RetryCallState) -> float:
        return backoff_delay(state.attempt_number - 1, base=self.backoff, cap=self.max_backoff)

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning("%s call failed (%s); retry %d in %.2fs", self.name, error,
                    state.attempt_number, state.upcoming_sleep)

    async def _attempt(self, method: str, path: str, headers: dict[str, str],
                       kwargs: dict[str, Any]) -> httpx.Response:
        try:
            response = await self._client.request(method, path, headers=headers, **kwargs)
        except httpx.TransportError as exc:
            raise _RetryableFailure(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 500:
            raise _RetryableFailure(
                f"{method} {path}: HTTP {response.status_code}: {response.text[:200]}")
        return response

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request and return its decoded JSON body.

        Raises:
            ServiceUnavailable: the service could not be reached or kept failing.
            SiblingRefused: the service answered with a 4xx.
        """
        headers = {"X-Request-ID": request_id_var.get()}
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retries + 1), wait=self._wait,
            retry=retry_if_exception_type(_RetryableFailure), before_sleep=self._log_retry,
            reraise=True)
        try:
            response: httpx.Response = await retrying(
                self._attempt, method, path, headers, kwargs)
        except _RetryableFailure as exc:
            raise ServiceUnavailable.because("sibling", service=self.name,
                                             problem=str(exc)) from exc
        if response.status_code >= 400:
            try:
                body: Any = response.json()
            except ValueError:
                body = {"detail": response.text[:500]}
            raise SiblingRefused(self.name, response.status_code, body)
        return response.json()

    async def get(self, path: str, **kwargs: Any) -> Any:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> Any:
        return await self.request("POST", path, **kwargs)
