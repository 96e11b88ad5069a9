"""Small HTMX pages and fragments for trainers (Spanish by default, English switch).
The /train rating page lives in :mod:`services.gateway.api.rating_page`; status,
history, export and rater quality in :mod:`services.gateway.api.insight`.

Page handlers parse, call the same domain functions as the JSON API and render.
Errors are raised, never caught here: the gateway's one handler
(:mod:`services.gateway.api.errors`) shows them in the page's alert area
(``#flash``) as a sentence in the trainer's language, and nothing the trainer
typed elsewhere on the page is lost.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from services.gateway import reports
from services.gateway.api.deps import ContextDep, LangDep, require_user
from services.gateway.api.rendering import render

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False, dependencies=[Depends(require_user)])


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/train")


@router.get("/train/status-panel")
async def status_panel(request: Request, ctx: ContextDep, lang: LangDep) -> HTMLResponse:
    status = await reports.training_status(ctx)
    return render(request, lang, "partials/status_panel.html", status=status)
