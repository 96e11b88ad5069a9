"""The gateway's one error handler: the same error, shown where the caller looks.

- JSON API (``/api/…``, ``/images/…``) and non-browser callers: the common JSON body
  (``detail`` in Spanish, ``error`` with code and both sentences).
- htmx requests and form posts: the error partial, retargeted to the page's alert area (``#flash``),
  so nothing the trainer typed elsewhere on the page is lost.
- full page loads in a browser: an error page in the page's language.

Every domain module raises :class:`AfinadorError` subclasses; no router catches them.
"""

from __future__ import annotations

import logging
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response

from services.common.errors import AfinadorError, ValidationFailed, error_body, unexpected_error
from services.gateway.accounts import LoginRequired
from services.gateway.api.deps import language
from services.gateway.api.rendering import is_htmx, render

log = logging.getLogger(__name__)


def login_url(next_path: str) -> str:
    return "/login?next=" + quote(next_path, safe="")


def wants_json(request: Request) -> bool:
    """The JSON API and stored images answer JSON; pages and their forms answer HTML."""
    return request.url.path.startswith(("/api/", "/images/", "/healthz"))


def wants_partial(request: Request) -> bool:
    """htmx requests and form posts get the alert-area partial; page loads a full page."""
    return is_htmx(request) or request.method != "GET"


def error_response(request: Request, error: AfinadorError) -> Response:
    headers = dict(getattr(error, "headers", None) or {})
    if isinstance(error, LoginRequired) and not wants_json(request):
        # A signed-out page visit goes to the sign-in page and comes back afterwards.
        back = request.headers.get("HX-Current-URL") if is_htmx(request) else None
        target = urlsplit(back) if back else request.url
        next_path = target.path + (f"?{target.query}" if target.query else "")
        if is_htmx(request):
            return Response(status_code=401, headers={"HX-Redirect": login_url(next_path)})
        return RedirectResponse(login_url(next_path), status_code=303)
    if wants_json(request):
        return JSONResponse(error_body(error), status_code=error.status_code, headers=headers)
    lang = language(request)
    message = error.message_en if lang == "en" else error.message_es
    if wants_partial(request):
        headers.update({"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"})
        return render(request, lang, "partials/error.html", status_code=error.status_code,
                      headers=headers, message=message)
    return render(request, lang, "error_page.html", status_code=error.status_code,
                  headers=headers, message=message, page=None)


def install_error_handlers(app: FastAPI) -> None:
    """Replace the common JSON-only handlers with ones that also speak HTML."""

    @app.exception_handler(AfinadorError)
    async def _afinador_error(request: Request, exc: AfinadorError) -> Response:
        level = logging.ERROR if exc.status_code >= 500 else logging.INFO
        log.log(level, "%s %s -> %s %s", request.method, request.url.path, exc.status_code, exc)
        return error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(request: Request, exc: RequestValidationError) -> Response:
        return error_response(request, ValidationFailed.from_pydantic(exc.errors()))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("%s %s failed unexpectedly", request.method, request.url.path)
        return error_response(request, unexpected_error())
