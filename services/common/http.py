"""Internal HTTP client used for service-to-service calls.

Adds the service token, a request id, timeouts and bounded retries with jittered
backoff for connection errors and 5xx answers. Anything that still fails becomes
:class:`ServiceUnavailable`, so callers decide on their degraded mode in one place.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import httpx

from services.common.errors import ServiceUnavailable
from services.common.logging import request_id_var

log = logging.getLogger(__name__)


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
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self.retries = retries
        self.backoff = backoff
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request and return its decoded JSON body.

        Raises:
            ServiceUnavailable: the service could not be reached or kept failing.
            httpx.HTTPStatusError: the service answered with a 4xx (a caller bug).
        """
        headers = {"X-Request-ID": request_id_var.get()}
        last_error = ""
        for attempt in range(self.retries + 1):
            try:
                response = await self._client.request(method, path, headers=headers, **kwargs)
            except httpx.TransportError as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 500:
                    response.raise_for_status()
                    return response.json()
                last_error = f"HTTP {response.status_code}: {response.text[:200]}"
            if attempt < self.retries:
                delay = self.backoff * (2**attempt) * (0.5 + random.random())
                log.warning(
                    "%s %s %s failed (%s); retry %d in %.2fs",
                    self.name, method, path, last_error, attempt + 1, delay,
                )
                await asyncio.sleep(delay)
        raise ServiceUnavailable(
            f"El servicio {self.name} no responde ({last_error}).",
            f"The {self.name} service is not answering ({last_error}).",
        )

    async def get(self, path: str, **kwargs: Any) -> Any:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> Any:
        return await self.request("POST", path, **kwargs)
