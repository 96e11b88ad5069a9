"""Rendering pages and partials: templates, the page's language, the lang cookie."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from services.gateway.i18n import Translator


def translator(request: Request, lang: str) -> Translator:
    return Translator(request.app.state.settings.web_dir / "locales", lang)


def render(request: Request, lang: str, name: str, status_code: int = 200,
           headers: dict[str, str] | None = None, **context: Any) -> HTMLResponse:
    """Render template ``name`` in ``lang``; a ``?lang=`` choice is remembered in a cookie."""
    templates: Jinja2Templates = request.app.state.templates
    response = templates.TemplateResponse(
        request, name,
        {"t": translator(request, lang), "user": getattr(request.state, "user", None), **context},
        status_code=status_code, headers=headers)
    if request.query_params.get("lang") in ("es", "en"):
        response.set_cookie("lang", lang, max_age=365 * 86400, samesite="lax")
    return response


def is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"
