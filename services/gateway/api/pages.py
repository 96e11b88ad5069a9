"""Server-rendered HTMX pages for trainers (Spanish by default, English switch).

Page handlers call the same domain functions as the JSON API. Errors a trainer can
cause are shown in the page's alert area (``#flash``) as a sentence in their
language; nothing the trainer typed elsewhere on the page is lost.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from services.common.db import utcnow
from services.common.errors import AfinadorError, ValidationFailed
from services.gateway import training
from services.gateway.api.deps import ContextDep, LangDep
from services.gateway.api.enhance import _change_variant, read_upload
from services.gateway.i18n import Translator
from services.gateway.models import Variant
from services.gateway.schemas import RateIn, RatingIn

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


@router.get("/train")
async def train_page(request: Request, ctx: ContextDep, lang: LangDep) -> HTMLResponse:
    labels = ", ".join(training.provider_label(ctx, p, lang) for p in sorted(ctx.providers))
    return render(request, lang, "train.html", page="train", status=None,
                  trainer=request.cookies.get("trainer", ""), provider_labels=labels,
                  max_mb=ctx.settings.max_upload_bytes // (1024 * 1024))


@router.get("/train/status-panel")
async def status_panel(request: Request, ctx: ContextDep, lang: LangDep) -> HTMLResponse:
    status = await training.training_status(ctx)
    return render(request, lang, "partials/status_panel.html", status=status)


async def _elapsed(ctx: training.Context, exp_options: list[Any]) -> dict[str, int]:
    now = utcnow()
    elapsed = {}
    async with ctx.sessions() as session:
        for option in exp_options:
            variant = await session.get(Variant, option.variant_id)
            if variant is not None:
                elapsed[option.variant_id] = int((now - variant.created_at).total_seconds())
    return elapsed


@router.post("/train/upload")
async def upload(request: Request, ctx: ContextDep, lang: LangDep,
                 image: UploadFile = File(...), mode: str = Form("structure"),
                 rated_by: str = Form("")) -> HTMLResponse:
    try:
        data = await read_upload(ctx, image)
        experiment = await training.create_experiment(ctx, data, image.filename, mode, None)
        exp = await training.describe_experiment(ctx, experiment.id, lang)
    except AfinadorError as error:
        return render_error(request, lang, error)
    response = _experiment_response(request, ctx, lang, exp, rated_by.strip(),
                                    await _elapsed(ctx, exp.options))
    if rated_by.strip():
        response.set_cookie("trainer", rated_by.strip()[:255], max_age=365 * 86400,
                            samesite="lax")
    return response


async def _card(request: Request, ctx: training.Context, lang: str, variant_id: str
                ) -> HTMLResponse:
    async with ctx.sessions() as session:
        variant = await session.get(Variant, variant_id)
        experiment_id = variant.experiment_id if variant else None
    if experiment_id is None:
        return render_error(request, lang, ValidationFailed(
            "Esa variante ya no existe.", "That variant no longer exists."))
    exp = await training.describe_experiment(ctx, experiment_id, lang)
    option = next(o for o in exp.options if o.variant_id == variant_id)
    return render(request, lang, "partials/variant_card.html", v=option,
                  elapsed=await _elapsed(ctx, [option]))


@router.get("/train/experiments/{experiment_id}")
async def experiment_panel(experiment_id: str, request: Request, ctx: ContextDep, lang: LangDep
                           ) -> HTMLResponse:
    try:
        exp = await training.describe_experiment(ctx, experiment_id, lang)
    except AfinadorError as error:
        return render_error(request, lang, error)
    return _experiment_response(request, ctx, lang, exp, request.cookies.get("trainer", ""),
                                await _elapsed(ctx, exp.options))


def _experiment_response(request: Request, ctx: training.Context, lang: str, exp: Any,
                         trainer: str, elapsed: dict[str, int]) -> HTMLResponse:
    t = Translator(ctx.settings.web_dir / "locales", lang)
    stage_labels = {key.removeprefix("stage."): t(key) for key in t.keys("stage.")}
    return render(request, lang, "partials/experiment.html", exp=exp, trainer=trainer,
                  elapsed=elapsed, stage_labels=stage_labels)


@router.get("/train/variants/{variant_id}/card")
async def variant_card(variant_id: str, request: Request, ctx: ContextDep, lang: LangDep
                       ) -> HTMLResponse:
    return await _card(request, ctx, lang, variant_id)


@router.post("/train/variants/{variant_id}/{action}")
async def variant_action(variant_id: str, action: str, request: Request, ctx: ContextDep,
                         lang: LangDep) -> Response:
    if action not in ("retry", "cancel"):
        return Response(status_code=404)
    try:
        await _change_variant(ctx, variant_id, action)
    except AfinadorError as error:
        return render_error(request, lang, error)
    return await _card(request, ctx, lang, variant_id)


@router.post("/train/rate")
async def rate(request: Request, ctx: ContextDep, lang: LangDep) -> HTMLResponse:
    form = await request.form()
    ratings = []
    try:
        for option in ("A", "B"):
            value = form.get(f"rating_{option}")
            if value:
                ratings.append(RatingIn(option=option, rating=str(value),  # type: ignore[arg-type]
                                        comments=str(form.get(f"comments_{option}") or "")))
        if not ratings:
            raise ValidationFailed("Puntúa al menos una opción antes de enviar.",
                                   "Rate at least one option before submitting.")
        body = RateIn(experiment_id=str(form.get("experiment_id") or ""), ratings=ratings,
                      rated_by=str(form.get("rated_by") or "").strip() or "trainer")
        result = await training.rate_experiment(ctx, body)
    except ValidationError as exc:
        return render_error(request, lang, ValidationFailed(
            "Puntuación no válida: " + "; ".join(e["msg"] for e in exc.errors()),
            "Invalid rating: " + "; ".join(e["msg"] for e in exc.errors())))
    except AfinadorError as error:
        return render_error(request, lang, error)
    status = await training.training_status(ctx)
    return render(request, lang, "partials/rated.html", result=result, status=status)
