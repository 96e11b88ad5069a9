"""Status, history, export and rater quality: HTML pages and their JSON API.

Thin handlers: parse, call :mod:`~services.gateway.dashboard`,
:mod:`~services.gateway.history`, :mod:`~services.gateway.quality` or
:mod:`~services.gateway.repeats`, render.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError

from services.gateway import dashboard, history, quality, repeats
from services.gateway.api.deps import AdminDep, ContextDep, LangDep, UserDep, require_user
from services.gateway.api.rendering import render, translator
from services.gateway.charts import format_number, format_percent
from services.gateway.errors import GatewayNotFound, InvalidRequest
from services.gateway.i18n import Translator

router = APIRouter(dependencies=[Depends(require_user)])
SORTS = ("newest", "oldest", "rating_desc", "rating_asc")


def _formatters(lang: str) -> dict[str, Any]:
    return {"num": lambda v, d=1: format_number(v, lang, d),
            "pct": lambda v, d=0: format_percent(v, lang, d)}


def _filters_from(request: Request) -> history.HistoryFilters:
    fields = history.HistoryFilters.model_fields
    raw = {k: v for k, v in request.query_params.items() if k in fields}
    try:
        return history.HistoryFilters.model_validate(raw)
    except ValidationError as exc:
        wrong = ", ".join(str(e["loc"][0]) for e in exc.errors() if e["loc"])
        raise InvalidRequest.because("history_filters", fields=wrong) from exc


# status ------------------------------------------------------------------------------
@router.get("/status", include_in_schema=False)
async def status_page(request: Request, ctx: ContextDep, lang: LangDep) -> HTMLResponse:
    t = translator(request, lang)
    view = await dashboard.build_status_view(ctx, t)
    return render(request, lang, "status.html", page="status", view=view,
                  status=view.status, **_formatters(lang))


# history -----------------------------------------------------------------------------
@router.get("/train/history", include_in_schema=False)
async def history_page(request: Request, ctx: ContextDep, lang: LangDep, user: UserDep
                       ) -> HTMLResponse:
    params = request.query_params
    sort = params.get("sort") or "newest"
    if sort not in SORTS:
        raise InvalidRequest.because("sort_order")
    try:
        page = int(params.get("page") or 1)
        per_page = min(max(int(params.get("per_page") or 20), 5), 100)
    except ValueError as exc:
        raise InvalidRequest.because("page_number") from exc
    filters = _filters_from(request)
    result = await history.history_page(ctx, filters, sort, page, per_page,  # type: ignore[arg-type]
                                        lang)
    choices = await history.filter_choices(ctx)
    rows = await history.export_rows(ctx, filters)
    chart = dashboard.history_chart([(r.rating, r.provider, r.prompt_version) for r in rows
                                     if r.rating is not None], translator(request, lang))
    # A trainer may correct her own ratings (rating_page's /train/ratings/{id}/edit).
    return render(request, lang, "history.html", page="history", result=result,
                  filters=filters, choices=choices, sort=sort, per_page=per_page, chart=chart,
                  can_edit=True, trainer=user.username,
                  query=filters.query_string(), **_formatters(lang))


@router.get("/api/train/experiments", tags=["training"])
async def experiments(
    ctx: ContextDep,
    filters: Annotated[history.HistoryFilters, Query()],
    sort: history.Sort = "newest",
    page: Annotated[int, Query(ge=1)] = 1,
    per_page: Annotated[int, Query(ge=1, le=200)] = 20,
    lang: Literal["es", "en"] = "es",
) -> history.HistoryPage:
    """Rated experiments that match the filters, one page at a time (all options of
    each, with trainer, ratings, comments, parameters and prompt version)."""
    return await history.history_page(ctx, filters, sort, page, per_page, lang)


@router.get("/api/train/export", tags=["training"],
            responses={200: {"model": history.ExportJSON, "content": {"text/csv": {
                "schema": {"type": "string", "description": "Header row, then one row per "
                           "rating with the ExportRow columns; parameters as a JSON object."}}},
                "description": "One row per rating: JSON (`ExportJSON`) or CSV."}})
async def export(
    ctx: ContextDep,
    filters: Annotated[history.HistoryFilters, Query()],
    format: Literal["csv", "json"] = "csv",
) -> Response:
    """Every rating that matches the history filters, with what is needed to retrain
    elsewhere (see ``ExportRow``)."""
    rows = await history.export_rows(ctx, filters)
    stamp = "afinador-ratings"
    if format == "json":
        body = history.ExportJSON(filters=filters, count=len(rows), rows=rows)
        return JSONResponse(body.model_dump(mode="json"), headers={
            "Content-Disposition": f'attachment; filename="{stamp}.json"'})
    return Response(history.to_csv(rows), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{stamp}.csv"'})


# rater quality -----------------------------------------------------------------------
@router.get("/api/train/quality", tags=["training"])
async def quality_api(ctx: ContextDep, admin: AdminDep) -> quality.QualityReport:
    """Agreement on repeated images: Krippendorff's alpha, per-trainer consistency,
    pairwise agreement, trend and each trainer's bias as the optimizer estimates it.
    Admins only (it compares named trainers)."""
    return await quality.quality_report(ctx)


@router.get("/quality", include_in_schema=False)
async def quality_page(request: Request, ctx: ContextDep, lang: LangDep, admin: AdminDep
                       ) -> HTMLResponse:
    t = translator(request, lang)
    report = await quality.quality_report(ctx)
    chart = _alpha_chart(report, t)
    return render(request, lang, "quality.html", page="quality", report=report,
                  chart=chart, **_formatters(lang))


def _alpha_chart(report: quality.QualityReport, t: Translator) -> dashboard.Chart:
    from services.gateway import charts

    title = t("quality.trend.title")
    points = [(p.units, p.alpha) for p in report.trend if p.alpha is not None]
    if not points:
        return dashboard.Chart("alpha", title, None, t("quality.trend.none"))
    xs = [float(u) for u, _ in points]
    ys = [float(a) for _, a in points]
    svg = charts.line_chart(
        chart_id="chart-alpha", title=title, x_label=t("quality.trend.x"), y_label="α",
        series=[charts.Series("alpha", "α", xs, ys, "line+points")],
        refs=[charts.RefLine(0.8, t("quality.band.reliable")),
              charts.RefLine(0.667, t("quality.band.acceptable"))],
        y_range=(min(0.0, min(ys)), 1.0), lang=t.lang, y_digits=1)
    return dashboard.Chart("alpha", title, svg, "", [t("quality.trend.x"), "α"],
                           [[str(int(x)), format_number(y, t.lang, 2)]
                            for x, y in zip(xs, ys, strict=True)], points=len(xs))


class RepeatIn(BaseModel):
    rated_by: str = Field(min_length=1, max_length=255)
    experiment_id: str | None = Field(
        default=None, description="Earlier experiment to re-show; default: one chosen "
        "as the automatic repeats choose (another trainer's half of the time).")


class RepeatOut(BaseModel):
    experiment_id: str
    repeat_of: str


@router.post("/api/train/repeats", tags=["training"], status_code=201)
async def create_repeat(body: RepeatIn, ctx: ContextDep, admin: AdminDep) -> RepeatOut:
    """Re-show an earlier experiment's two images, blind, as a new experiment (rater
    quality). Its ratings are ordinary ratings of the same images. Admins only;
    ``rated_by`` is the trainer it is meant for (repeats of their own experiments are
    avoided or preferred as the automatic repeats do)."""
    import random

    from services.gateway.experiments import load_experiment

    source_id = body.experiment_id
    if source_id is None:
        async with ctx.sessions() as session:
            chosen = repeats.choose(await repeats.candidates(session, body.rated_by.strip()),
                                    body.rated_by.strip(), random.Random())
        if chosen is None:
            raise GatewayNotFound.because("repeatable_pair")
        source_id = chosen.id
    else:
        async with ctx.sessions() as session:
            source = await load_experiment(session, source_id)
            if source.rated_at is None:
                raise InvalidRequest.because("repeat_unrated")
    repeat = await repeats.create_repeat(ctx, source_id)
    return RepeatOut(experiment_id=repeat.id, repeat_of=source_id)
