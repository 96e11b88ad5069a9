"""An httpx transport that loses requests or answers on purpose, to test create calls.

A timeout is ambiguous only if the request reached the service; these modes make both
cases deterministic (no wall-clock timeouts in tests):

* ``answer-lost``: forward the request (the fake acts on it), then raise
  :class:`httpx.ReadTimeout` as if the answer never came;
* ``timeout-unsent``: raise :class:`httpx.ReadTimeout` without forwarding (the client
  cannot tell this from ``answer-lost``);
* ``refused``: raise :class:`httpx.ConnectError` without forwarding (provably unsent).
"""

from __future__ import annotations

from typing import Literal

import httpx

Mode = Literal["answer-lost", "timeout-unsent", "refused"]


class LosingTransport(httpx.AsyncBaseTransport):
    """Misbehaves on the first ``count`` requests whose method is ``method`` and whose
    path ends with ``path_suffix``; every other request goes through untouched.
    ``matched`` counts the matching requests the client sent."""

    def __init__(self, method: str, path_suffix: str, mode: Mode, count: int = 1) -> None:
        self.method = method
        self.path_suffix = path_suffix
        self.mode = mode
        self.remaining = count
        self.matched = 0
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == self.method and request.url.path.endswith(self.path_suffix):
            self.matched += 1
            if self.remaining > 0:
                self.remaining -= 1
                if self.mode == "refused":
                    raise httpx.ConnectError("connection refused (scripted)", request=request)
                if self.mode == "answer-lost":
                    response = await self._inner.handle_async_request(request)
                    await response.aread()
                    await response.aclose()
                raise httpx.ReadTimeout("answer lost (scripted)", request=request)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()
