"""The /train rating page: upload, blind comparison, ratings, undo and corrections.

Thin handlers over the domain modules (``training``, ``revisions``, ``pending``).
Errors go where the trainer is looking: upload errors next to the file field,
rating errors next to the submit button (``role=status``), in the page's language.
Progress reaches the page as server-sent events (htmx's SSE extension swaps the
HTML fragments sent here); the page polls the card endpoint only if the stream drops.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from pydantic import ValidationError
from sqlalchemy import select

from services.common.errors import AfinadorError, ValidationFailed
from services.gateway import pending, revisions, training
from services.gateway.api.deps import ContextDep, LangDep
from services.gateway.api.enhance import _change_variant, read_upload
from services.gateway.api.pages import render, templates
from services.gateway.i18n import Translator
from services.gateway.models import GenerationJob, Rating, Variant
from services.gateway.schemas import ExperimentOut, OptionOut, RateIn, RatingEditIn, RatingIn

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

OPTIONS = ("A", "B")
# Texts the page's script shows (validation, busy state, upload progress).
SCRIPT_TEXTS = {"need_one": "train.need_one", "need_reason": "train.need_reason",
                "saving": "train.saving", "ready": "train.ready", "waiting": "train.waiting",
                "uploading": "train.uploading", "draft_restored": "train.draft_restored",
                "save_failed": "error.title", "offline": "error.generic"}


def _t(ctx: training.Context, lang: str) -> Translator:
    return Translator(ctx.settings.web_dir / "locales", lang)


def _error(request: Request, lang: str, error: AfinadorError, target: str) -> HTMLResponse:
    """The error as a sentence in the trainer's language, swapped into ``target``."""
    message = error.message_en if lang == "en" else error.message_es
    return render(request, lang, "partials/error.html", status_code=error.status_code,
                  headers={"HX-Retarget": target, "HX-Reswap": "innerHTML"}, message=message)


def _trainer(request: Request) -> str:
    return request.cookies.get("trainer", "")


def error_kind(message: str | None) -> str:
    """A provider's error, classified so the page can say it in the trainer's language."""
    text = (message or "").lower()
    if re.search(r"timeout|timed out|tiempo|no respondi", text):
        return "timeout"
    if re.search(r"connect|conectar|conexi", text):
        return "connect"
    if re.search(r"429|rate limit|límite|demasiadas", text):
        return "rate_limited"
    if re.search(r"rechaz|reject|40[0-9]|422", text):
        return "rejected"
    return "unknown"


async def _failures(ctx: training.Context, options: list[OptionOut]) -> dict[str, dict[str, Any]]:
    failed = [o.variant_id for o in options if o.status == "failed"]
    if not failed:
        return {}
    async with ctx.sessions() as session:
        jobs = (await session.execute(select(GenerationJob).where(
            GenerationJob.variant_id.in_(failed)))).scalars()
        attempts = {j.variant_id: j.attempts for j in jobs}
    return {o.variant_id: {"attempts": max(1, attempts.get(o.variant_id, 1)),
                           "kind": error_kind(o.error)}
            for o in options if o.variant_id in attempts}


def _blind(exp: ExperimentOut) -> ExperimentOut:
    """The experiment without what would unblind the trainer (kept server-side)."""
    return exp.model_copy(update={"options": [o.model_copy(update={
        "provider": "", "provider_label": "", "parameters": {}, "prompt_version": "",
        "prompt_arm": "", "suggestion_source": "", "model": None, "selection_reason": None,
        "predicted_rating": None, "predicted_std": None, "estimated_cost_usd": None,
        "reward_model_version": None}) for o in exp.options]})


async def _experiment_context(ctx: training.Context, exp: ExperimentOut) -> dict[str, Any]:
    return {"exp": _blind(exp), "failures": await _failures(ctx, exp.options)}


def _texts(t: Translator) -> dict[str, str]:
    return {name: t(key) for name, key in SCRIPT_TEXTS.items()}


@router.get("/train")
async def train_page(request: Request, ctx: ContextDep, lang: LangDep,
                     exp: str | None = None) -> HTMLResponse:
    """The rating page; ``?exp=`` reopens an experiment (after a reload, a language
    switch or from the pending list)."""
    labels = ", ".join(training.provider_label(ctx, p, lang) for p in sorted(ctx.providers))
    context: dict[str, Any] = {}
    if exp:
        try:
            described = await training.describe_experiment(ctx, exp, lang)
            if described.status != "rated":
                context = await _experiment_context(ctx, described)
        except AfinadorError:
            context = {}
    async with ctx.sessions() as session:
        waiting = await pending.pending_experiments(session)
    return render(request, lang, "train.html", page="train", status=None,
                  trainer=_trainer(request), provider_labels=labels, pending=waiting,
                  texts=_texts(_t(ctx, lang)),
                  max_mb=ctx.settings.max_upload_bytes // (1024 * 1024), **context)


@router.get("/train/pending")
async def pending_list(request: Request, ctx: ContextDep, lang: LangDep) -> HTMLResponse:
    async with ctx.sessions() as session:
        waiting = await pending.pending_experiments(session)
    return render(request, lang, "partials/pending.html", pending=waiting)


@router.post("/train/upload")
async def upload(request: Request, ctx: ContextDep, lang: LangDep,
                 image: UploadFile = File(...), mode: str = Form("structure"),
                 rated_by: str = Form("")) -> HTMLResponse:
    try:
        data = await read_upload(ctx, image)
        experiment = await training.create_experiment(ctx, data, image.filename, mode, None)
        exp = await training.describe_experiment(ctx, experiment.id, lang)
    except AfinadorError as error:
        return _error(request, lang, error, "#upload-error")
    response = render(request, lang, "partials/experiment.html", trainer=rated_by.strip(),
                      headers={"HX-Push-Url": f"/train?exp={exp.experiment_id}"},
                      **await _experiment_context(ctx, exp))
    if rated_by.strip():
        response.set_cookie("trainer", rated_by.strip()[:255], max_age=365 * 86400,
                            samesite="lax")
    return response


@router.get("/train/experiments/{experiment_id}")
async def experiment_panel(experiment_id: str, request: Request, ctx: ContextDep,
                           lang: LangDep) -> HTMLResponse:
    try:
        exp = await training.describe_experiment(ctx, experiment_id, lang)
    except AfinadorError as error:
        return _error(request, lang, error, "#flash")
    return render(request, lang, "partials/experiment.html", trainer=_trainer(request),
                  **await _experiment_context(ctx, exp))


async def _card(request: Request, ctx: training.Context, lang: str, variant_id: str
                ) -> HTMLResponse:
    async with ctx.sessions() as session:
        variant = await session.get(Variant, variant_id)
        experiment_id = variant.experiment_id if variant else None
    if experiment_id is None:
        return _error(request, lang, ValidationFailed(
            "Esa variante ya no existe.", "That variant no longer exists."), "#flash")
    exp = await training.describe_experiment(ctx, experiment_id, lang)
    context = await _experiment_context(ctx, exp)
    option = next(o for o in context["exp"].options if o.variant_id == variant_id)
    return render(request, lang, "partials/variant_card.html", v=option, **context)


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
        return _error(request, lang, error, "#rate-status")
    return await _card(request, ctx, lang, variant_id)


@router.get("/train/experiments/{experiment_id}/stream")
async def experiment_stream(experiment_id: str, request: Request, ctx: ContextDep,
                            lang: LangDep) -> StreamingResponse:
    """Server-sent events for htmx's SSE extension: ``progress-A``/``progress-B`` carry
    the progress fragment while a variant generates, ``card-A``/``card-B`` the whole
    card when its status changes, then ``done`` once nothing is generating."""
    await training.describe_experiment(ctx, experiment_id, lang)  # 404 before streaming
    t = _t(ctx, lang)
    env = templates(request).env
    card, progress = env.get_template("partials/variant_card.html"), env.get_template(
        "partials/variant_progress.html")

    def event(name: str, html: str) -> str:
        data = "\n".join(f"data: {line}" for line in html.strip().splitlines() or [""])
        return f"event: {name}\n{data}\n\n"

    async def stream() -> AsyncIterator[str]:
        seen: dict[str, tuple[str, str, float]] = {}
        yield "retry: 2000\n\n"
        while not await request.is_disconnected():
            exp = await training.describe_experiment(ctx, experiment_id, lang)
            context = await _experiment_context(ctx, exp)
            for option in context["exp"].options:
                state = (option.status, option.stage, round(option.progress, 2))
                before = seen.get(option.option)
                seen[option.option] = state
                # The first pass sends every card (the page may have been rendered just
                # before a change); the page skips a card whose final state it already shows.
                if before is not None and before == state:
                    continue
                if before is not None and before[0] == option.status and option.status in (
                        "queued", "running"):
                    yield event(f"progress-{option.option}",
                                progress.render(t=t, v=option))
                else:
                    yield event(f"card-{option.option}",
                                card.render(t=t, v=option, **context))
            if exp.status != "generating":
                yield "event: done\ndata: done\n\n"
                return
            await asyncio.sleep(ctx.settings.events_poll_seconds)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _rate_body(form: Any) -> RateIn:
    ratings = []
    for option in OPTIONS:
        value = form.get(f"rating_{option}")
        reason = str(form.get(f"cannot_judge_reason_{option}") or "") or None
        cannot = bool(form.get(f"cannot_judge_{option}"))
        if cannot and reason is None:
            raise ValidationFailed(
                f"Elige por qué no puedes juzgar la opción {option}.",
                f"Choose why you can't judge option {option}.")
        if value or cannot:
            ratings.append(RatingIn(option=option,  # type: ignore[arg-type]
                                    rating=None if cannot else str(value),  # type: ignore[arg-type]
                                    cannot_judge_reason=reason if cannot else None,  # type: ignore[arg-type]
                                    comments=str(form.get(f"comments_{option}") or "")))
    if not ratings:
        raise ValidationFailed(
            "Puntúa al menos una opción (o marca «No puedo juzgar») antes de guardar.",
            "Rate at least one option (or tick \"I can't judge\") before saving.")
    seconds = str(form.get("seconds_to_rate") or "")
    return RateIn(experiment_id=str(form.get("experiment_id") or ""), ratings=ratings,
                  rated_by=str(form.get("rated_by") or "").strip() or "trainer",
                  seconds_to_rate=float(seconds) if seconds else None)


@router.post("/train/rate")
async def rate(request: Request, ctx: ContextDep, lang: LangDep) -> HTMLResponse:
    form = await request.form()
    try:
        body = _rate_body(form)
        if form.get("editing"):
            await revisions.revise_experiment(ctx, body)
            undo = 0
        else:
            await training.rate_experiment(ctx, body)
            undo = revisions.UNDO_SECONDS
    except ValidationError as exc:
        return _error(request, lang, ValidationFailed(
            "Puntuación no válida: " + "; ".join(e["msg"] for e in exc.errors()),
            "Invalid rating: " + "; ".join(e["msg"] for e in exc.errors())), "#rate-status")
    except AfinadorError as error:
        return _error(request, lang, error, "#rate-status")
    return await _rated(request, ctx, lang, body.experiment_id, undo, body.seconds_to_rate)


async def _rated(request: Request, ctx: training.Context, lang: str, experiment_id: str,
                 undo: int, seconds: float | None) -> HTMLResponse:
    exp = await training.describe_experiment(ctx, experiment_id, lang)
    async with ctx.sessions() as session:
        ids = list((await session.execute(select(Rating.id).where(
            Rating.experiment_id == experiment_id))).scalars())
        delivered = await _delivered_to_optimizer(session, ids)
    result = {"rating_ids": ids, "ml_updated": delivered}
    status = await training.training_status(ctx)
    response = render(request, lang, "partials/rated.html", result=result, status=status,
                      exp=exp, undo_seconds=undo, seconds_to_rate=seconds)
    response.headers["HX-Push-Url"] = "/train"
    return response


async def _delivered_to_optimizer(session: Any, rating_ids: list[str]) -> bool:
    """True when every starred rating's latest revision reached the optimizer."""
    from services.gateway.models import OutboxMessage

    rows = (await session.execute(select(OutboxMessage.delivered_at).where(
        OutboxMessage.rating_id.in_(rating_ids), OutboxMessage.target == "optimizer"))).all()
    return all(r.delivered_at is not None for r in rows)


@router.post("/train/experiments/{experiment_id}/undo")
async def undo(experiment_id: str, request: Request, ctx: ContextDep, lang: LangDep
               ) -> HTMLResponse:
    """Reopen a just-saved experiment with its saved values; saving again revises them."""
    try:
        saved = await revisions.saved_values(ctx.sessions, experiment_id, _trainer(request)
                                             or "trainer")
        exp = await training.describe_experiment(ctx, experiment_id, lang)
    except AfinadorError as error:
        return _error(request, lang, error, "#flash")
    prefill = {option: {"rating": s.rating, "comments": s.comments,
                        "cannot_judge_reason": s.cannot_judge_reason}
               for option, s in saved.items()}
    return render(request, lang, "partials/experiment.html", trainer=_trainer(request),
                  editing=True, prefill=prefill,
                  headers={"HX-Push-Url": f"/train?exp={experiment_id}"},
                  **await _experiment_context(ctx, exp))


@router.get("/train/ratings/{rating_id}/edit")
async def edit_form(rating_id: str, request: Request, ctx: ContextDep, lang: LangDep
                    ) -> HTMLResponse:
    """The small inline form the history page shows to correct one of my ratings."""
    async with ctx.sessions() as session:
        rating = await session.get(Rating, rating_id)
    if rating is None or rating.rated_by != (_trainer(request) or "trainer"):
        return _error(request, lang, revisions._not_yours(), "#flash")
    return render(request, lang, "partials/rating_edit.html", rating=rating)


@router.post("/train/ratings/{rating_id}/edit")
async def edit_save(rating_id: str, request: Request, ctx: ContextDep, lang: LangDep,
                    rating: int = Form(...), comments: str = Form("")) -> HTMLResponse:
    try:
        edit = RatingEditIn(rating=rating, comments=comments)
        saved = await revisions.revise_rating(ctx, rating_id, edit,
                                              _trainer(request) or "trainer")
    except ValidationError:
        return _error(request, lang, ValidationFailed(
            "La puntuación debe ser de 1 a 5 estrellas.", "The rating must be 1 to 5 stars."),
            f"#edit-error-{rating_id}")
    except AfinadorError as error:
        return _error(request, lang, error, f"#edit-error-{rating_id}")
    return render(request, lang, "partials/rating_edit.html", rating=saved, saved=True)
