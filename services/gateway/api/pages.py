"""Server-rendered HTMX pages for trainers (Spanish by default, English switch).

Page handlers call the same domain functions as the JSON API. Errors a trainer can
cause are shown in the page's alert area (``#flash``) as a sentence in their
language; nothing the trainer typed elsewhere on the page is lost.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from services.common.errors import AfinadorError
from services.gateway import training
from services.gateway.api.deps import ContextDep, LangDep
from services.gateway.i18n import Translator

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)


def templates(request: Request) -> Jinja2Templates:
    templates: Jinja2Templates = request.app.state.templates
    return templates


def render(request: Request, lang: str, name: str, status_code: int = 200,
           headers: dict[str, str] | None = None, **context: Any) -> HTMLResponse:
    settings = request.app.state.settings
    t = Translator(settings.web_dir / "locales", lang)
    response = templates(request).TemplateResponse(
        request, name, {"t": t, **context}, status_code=status_code, headers=headers)
    if request.query_params.get("lang") in ("es", "en"):
        response.set_cookie("lang", lang, max_age=365 * 86400, samesite="lax")
    return response


def render_error(request: Request, lang: str, error: AfinadorError) -> HTMLResponse:
    message = error.message_en if lang == "en" else error.message_es
    return render(request, lang, "partials/error.html", status_code=error.status_code,
                  headers={"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"}, message=message)


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/train")


@router.get("/train/history")
async def history_page(request: Request, ctx: ContextDep, lang: LangDep) -> HTMLResponse:
    history = await training.training_history(ctx, limit=100)
    return render(request, lang, "history.html", page="history", history=history,
                  trainer=request.cookies.get("trainer", "") or "trainer")


@router.get("/train/status-panel")
async def status_panel(request: Request, ctx: ContextDep, lang: LangDep) -> HTMLResponse:
    status = await training.training_status(ctx)
    return render(request, lang, "partials/status_panel.html", status=status)
