"""Browser-facing protections of the gateway, as ASGI middleware.

- **Security headers** on every answer: a Content-Security-Policy with no inline
  script (``script-src 'self'``) and ``frame-ancestors 'none'``, ``nosniff``,
  ``Referrer-Policy: same-origin`` (images included).
- **Same-origin check**: a state-changing request that carries the session cookie
  must come from our own origin (``Origin``, else ``Referer``).
- **CSRF token** (``starlette-csrf``, double submit): such a request must also send
  the token from the ``afinador_csrf`` cookie in the ``X-CSRF-Token`` header, which
  ``web/static/csrf.js`` adds to every htmx request. Requests authenticated by a
  bearer token (API clients) are not checked: a browser never adds one by itself.

A refusal is 403 with a sentence in both languages.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import urlsplit

from fastapi import FastAPI, Request, Response
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send
from starlette_csrf import CSRFMiddleware

from services.common.errors import error_body
from services.gateway.errors import GatewayError
from services.gateway.settings import GatewaySettings

SESSION_COOKIE = "afinador_session"
CSRF_COOKIE = "afinador_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",  # style attributes only; no script can run from them
    "img-src 'self' data: blob:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
# FastAPI's interactive docs load their own inline script: they keep their page, framed by no one.
DOCS_PATHS = ("/docs", "/redoc")


class CrossSiteRefused(GatewayError):
    status_code = 403
    code = "cross_site_refused"

    def __init__(self) -> None:
        super().__init__()


def _refusal() -> JSONResponse:
    return JSONResponse(error_body(CrossSiteRefused()), status_code=403)


def bearer_authenticated(headers: Mapping[str, str]) -> bool:
    """A bearer token is never sent by a browser on its own: no CSRF risk."""
    return headers.get("authorization", "").lower().startswith("bearer ")


class _CSRF(CSRFMiddleware):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and bearer_authenticated(Headers(scope=scope)):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    def _get_error_response(self, request: Request) -> Response:  # noqa: ARG002
        return _refusal()


def same_origin(request: Request) -> bool:
    """``Origin`` (or, without it, ``Referer``) names this host."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source:
        return False
    return urlsplit(source).netloc == request.headers.get("host", request.url.netloc)


def install_security(app: FastAPI, settings: GatewaySettings) -> None:
    secure_cookie = settings.environment != "development"
    app.add_middleware(
        _CSRF, secret=settings.session_secret, sensitive_cookies={SESSION_COOKIE},
        exempt_urls=[re.compile(r"^/login$")], cookie_name=CSRF_COOKIE,
        header_name=CSRF_HEADER, cookie_secure=secure_cookie, cookie_samesite="lax")

    @app.middleware("http")
    async def _origin_and_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if (request.method not in SAFE_METHODS and SESSION_COOKIE in request.cookies
                and not bearer_authenticated(request.headers) and not same_origin(request)):
            response: Response = _refusal()
        else:
            response = await call_next(request)
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("X-Frame-Options", "DENY")
        if not request.url.path.startswith(DOCS_PATHS):
            headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response
