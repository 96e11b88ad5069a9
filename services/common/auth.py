"""Service-token check for internal endpoints (``Authorization: Bearer <token>``)."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request

from services.common.errors import Unauthorized


def service_token_dependency(token: str) -> Callable[[Request], Coroutine[Any, Any, None]]:
    """A FastAPI dependency that rejects requests without the right bearer token."""
    expected = f"Bearer {token}".encode()

    async def require_service_token(request: Request) -> None:
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            raise Unauthorized.because("service_token")

    return require_service_token
