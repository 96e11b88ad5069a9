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
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, ValidationError
from sqlalchemy import select

from services.gateway import experiments, pending, ratings, repeats, reports, revisions
from services.gateway.api.deps import ContextDep, LangDep, TrainerDep, UserDep, require_user
from services.gateway.api.enhance import existing_experiment
from services.gateway.api.rendering import render, translator
from services.gateway.context import Context
from services.gateway.errors import InvalidRequest
from services.gateway.models import GenerationJob, OutboxMessage, Rating
from services.gateway.providers import messages
from services.gateway.schemas import (
    ExperimentOut,
    Option,
    OptionOut,
    RateIn,
    RatingEditIn,
    RatingIn,
    parse_stars,
)
from services.gateway.uploads import read_limited

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False, dependencies=[Depends(require_user)])

OPTIONS: tuple[Option, Option] = ("A", "B")
# Texts the page's script shows (validation, busy state, upload progress).
SCRIPT_TEXTS = {"need_one": "train.need_one", "need_reason": "train.need_reason",
                "saving": "train.saving", "ready": "train.ready", "waiting": "train.waiting",
                "uploading": "train.uploading", "draft_restored": "train.draft_restored",
                "save_failed": "error.title", "offline": "error.generic"}


def error_kind(option: OptionOut) -> str:
    """A provider's error, classified so the page can sum it up in the trainer's language:
    by its catalogue key, or by its words for rows stored before the key was kept."""
    if option.error_code:
        return messages.failure_kind(option.error_code, option.error_params or {})
    text = (option.error or "").lower()
    if re.search(r"timeout|timed out|tiempo|no respondi", text):
        return "timeout"
    if re.search(r"connect|conectar|conexi", text):
        return "connect"
    if re.search(r"429|rate limit|límite|demasiadas", text):
        return "rate_limited"
    if re.search(r"rechaz|reject|40[0-9]|422", text):
        return "rejected"
    return "unknown"


async def _failures(ctx: Context, options: list[OptionOut]) -> dict[str, dict[str, Any]]:
    """Attempts and error kind of each failed option (the card states its final state)."""
    failed = [o.variant_id for o in options if o.status == "failed"]
    if not failed:
        return {}
    async with ctx.sessions() as session:
        jobs = (await session.execute(select(GenerationJob).where(
            GenerationJob.variant_id.in_(failed)))).scalars()
        attempts = {j.variant_id: j.attempts for j in jobs}
    return {o.variant_id: {"attempts": max(1, attempts.get(o.variant_id, 1)),
                           "kind": error_kind(o)}
            for o in options if o.variant_id in attempts}


def blind(exp: ExperimentOut) -> ExperimentOut:
    """The experiment without what would unblind the trainer before she rates:
    provider, parameters, prompt version, parameter source, selection and predictions."""
    return exp.model_copy(update={"options": [o.model_copy(update={
        "provider": "", "provider_label": "", "parameters": {}, "prompt_version": "",
        "prompt_arm": "", "suggestion_source": "", "model": None, "selection_reason": None,
        "predicted_rating": None, "predicted_std": None, "estimated_cost_usd": None,
        "reward_model_version": None}) for o in exp.options]})


async def _experiment_context(ctx: Context, exp: ExperimentOut) -> dict[str, Any]:
    return {"exp": blind(exp), "failures": await _failures(ctx, exp.options)}


@router.get("/train")
async def train_page(request: Request, ctx: ContextDep, lang: LangDep, user: TrainerDep,
                     exp: str | None = None) -> HTMLResponse:
    """The rating page; ``?exp=`` reopens an unrated experiment (after a reload, a
    language switch or from the pending list)."""
    labels = ", ".join(ctx.provider_label(p, lang) for p in sorted(ctx.providers))
    context: dict[str, Any] = {}
    if exp:
        async with ctx.sessions() as session:
            known = await experiments.load_experiment(session, exp)
        if known.rated_at is None:
            context = await _experiment_context(
                ctx, await experiments.describe_experiment(ctx, exp, lang))
    async with ctx.sessions() as session:
        waiting = await pending.pending_experiments(session, user.username)
    t = translator(request, lang)
    return render(request, lang, "train.html", page="train", status=None,
                  provider_labels=labels, pending=waiting,
                  texts={name: t(key) for name, key in SCRIPT_TEXTS.items()},
                  max_mb=ctx.settings.max_upload_bytes // (1024 * 1024), **context)


@router.get("/train/pending")
async def pending_list(request: Request, ctx: ContextDep, lang: LangDep, user: TrainerDep
                       ) -> HTMLResponse:
    async with ctx.sessions() as session:
        waiting = await pending.pending_experiments(session, user.username)
    return render(request, lang, "partials/pending.html", pending=waiting)


@router.post("/train/upload")
async def upload(request: Request, ctx: ContextDep, lang: LangDep, user: TrainerDep,
                 image: UploadFile = File(...), mode: str = Form("structure")) -> HTMLResponse:
    data = await read_limited(image, ctx.settings.max_upload_bytes)
    experiment = await experiments.create_experiment(ctx, data, image.filename, mode, None,
                                                     created_by=user.username)
    exp = await experiments.describe_experiment(ctx, experiment.id, lang)
    return render(request, lang, "partials/experiment.html",
                  headers={"HX-Push-Url": f"/train?exp={exp.experiment_id}"},
                  **await _experiment_context(ctx, exp))


@router.get("/train/experiments/{experiment_id}")
async def experiment_panel(request: Request, ctx: ContextDep, lang: LangDep, user: TrainerDep,
                           exp: Annotated[ExperimentOut, Depends(existing_experiment)]
                           ) -> HTMLResponse:
    return render(request, lang, "partials/experiment.html",
                  **await _experiment_context(ctx, exp))


async def _card(request: Request, ctx: Context, lang: str, variant_id: str) -> HTMLResponse:
    experiment_id = await experiments.experiment_of_variant(ctx, variant_id)
    exp = await experiments.describe_experiment(ctx, experiment_id, lang)
    context = await _experiment_context(ctx, exp)
    option = next(o for o in context["exp"].options if o.variant_id == variant_id)
    return render(request, lang, "partials/variant_card.html", v=option, **context)


@router.get("/train/variants/{variant_id}/card")
async def variant_card(variant_id: str, request: Request, ctx: ContextDep, lang: LangDep
                       ) -> HTMLResponse:
    return await _card(request, ctx, lang, variant_id)


@router.post("/train/variants/{variant_id}/{action}")
async def variant_action(variant_id: str, action: str, request: Request, ctx: ContextDep,
                         lang: LangDep, user: TrainerDep) -> Response:
    if action not in ("retry", "cancel"):
        return Response(status_code=404)
    await experiments.change_variant(ctx, variant_id, action)
    return await _card(request, ctx, lang, variant_id)


@router.get("/train/experiments/{experiment_id}/stream", response_class=EventSourceResponse)
async def experiment_stream(request: Request, ctx: ContextDep, lang: LangDep,
                            first: Annotated[ExperimentOut, Depends(existing_experiment)]
                            ) -> AsyncIterator[ServerSentEvent]:
    """Server-sent events for htmx's SSE extension: ``progress-A``/``progress-B`` carry
    the progress fragment while a variant generates, ``card-A``/``card-B`` the whole
    card when its status changes, then ``done`` once nothing is generating. The first
    pass sends every card (the page may have been rendered just before a change); the
    page keeps a card that already shows its final state."""
    t = translator(request, lang)
    env = request.app.state.templates.env
    card = env.get_template("partials/variant_card.html")
    progress = env.get_template("partials/variant_progress.html")
    seen: dict[str, tuple[str, str, float]] = {}
    exp = first
    yield ServerSentEvent(comment="stream open", retry=2000)
    while True:
        context = await _experiment_context(ctx, exp)
        for option in context["exp"].options:
            state = (option.status, option.stage, round(option.progress, 2))
            before = seen.get(option.option)
            seen[option.option] = state
            if before == state:
                continue
            if before is not None and before[0] == option.status and option.status in (
                    "queued", "running"):
                yield ServerSentEvent(raw_data=progress.render(t=t, v=option),
                                      event=f"progress-{option.option}")
            else:
                yield ServerSentEvent(raw_data=card.render(t=t, v=option, **context),
                                      event=f"card-{option.option}")
        if exp.status != "generating" or await request.is_disconnected():
            break
        await asyncio.sleep(ctx.settings.events_poll_seconds)
        exp = await experiments.describe_experiment(ctx, first.experiment_id, lang)
    yield ServerSentEvent(raw_data="done", event="done")


class RateForm(BaseModel):
    """The rating form as the page posts it. An empty star field means "not rated";
    ``cannot_judge_X`` with a reason stores "I can't judge" instead of stars."""

    experiment_id: str
    rating_A: str = ""
    rating_B: str = ""
    comments_A: str = ""
    comments_B: str = ""
    cannot_judge_A: str = ""
    cannot_judge_B: str = ""
    cannot_judge_reason_A: str = ""
    cannot_judge_reason_B: str = ""
    seconds_to_rate: str = ""
    editing: str = ""

    def to_rate_in(self) -> RateIn:
        try:
            return self._to_rate_in()
        except ValidationError as exc:
            raise InvalidRequest.from_pydantic(exc.errors()) from exc

    def _to_rate_in(self) -> RateIn:
        items = []
        for option in OPTIONS:
            stars = getattr(self, f"rating_{option}").strip()
            cannot = bool(getattr(self, f"cannot_judge_{option}"))
            reason = getattr(self, f"cannot_judge_reason_{option}").strip()
            comments = getattr(self, f"comments_{option}")
            if cannot and not reason:
                raise InvalidRequest.because("cannot_judge_reason", option=option)
            if cannot:
                items.append(RatingIn(option=option, rating=None, comments=comments,
                                      cannot_judge_reason=reason))
            elif stars:
                items.append(RatingIn(option=option, rating=parse_stars(stars),
                                      comments=comments))
        if not items:
            raise InvalidRequest.because("nothing_rated")
        seconds = None
        try:
            seconds = max(0.0, min(float(self.seconds_to_rate), 86400.0))
        except ValueError:
            seconds = None
        return RateIn(experiment_id=self.experiment_id, ratings=items, rated_by=None,
                      seconds_to_rate=seconds)


@router.post("/train/rate")
async def rate(form: Annotated[RateForm, Form()], request: Request, ctx: ContextDep,
               lang: LangDep, user: TrainerDep) -> HTMLResponse:
    body = form.to_rate_in()
    if form.editing:
        await revisions.revise_experiment(ctx, body, rater=user.username)
        undo = 0
    else:
        await ratings.rate_experiment(ctx, body, rater=user.username)
        undo = revisions.UNDO_SECONDS
    # Rater quality: now and then the next pair is an earlier one again, blind.
    repeat = None if form.editing else await repeats.maybe_repeat(ctx, user.username)
    return await _rated(request, ctx, lang, body.experiment_id, undo, body.seconds_to_rate,
                        repeat_id=repeat.id if repeat else None)


async def _rated(request: Request, ctx: Context, lang: str, experiment_id: str,
                 undo: int, seconds: float | None, repeat_id: str | None = None
                 ) -> HTMLResponse:
    """The confirmation: what was saved, and now (not before) what produced each option."""
    exp = await experiments.describe_experiment(ctx, experiment_id, lang)
    async with ctx.sessions() as session:
        ids = list((await session.execute(select(Rating.id).where(
            Rating.experiment_id == experiment_id))).scalars())
        undelivered = (await session.execute(select(OutboxMessage.id).where(
            OutboxMessage.rating_id.in_(ids), OutboxMessage.target == "optimizer",
            OutboxMessage.delivered_at.is_(None)))).first()
    status = await reports.training_status(ctx)
    response = render(request, lang, "partials/rated.html",
                      result={"rating_ids": ids, "ml_updated": undelivered is None},
                      status=status, exp=exp, undo_seconds=undo, seconds_to_rate=seconds,
                      repeat_id=repeat_id)
    response.headers["HX-Push-Url"] = "/train"
    return response


@router.post("/train/experiments/{experiment_id}/undo")
async def undo(experiment_id: str, request: Request, ctx: ContextDep, lang: LangDep,
               user: TrainerDep) -> HTMLResponse:
    """Reopen a just-saved experiment with its saved values; saving again revises them."""
    saved = await revisions.saved_values(ctx.sessions, experiment_id, user.username)
    exp = await experiments.describe_experiment(ctx, experiment_id, lang)
    prefill = {option: {"rating": s.rating, "comments": s.comments,
                        "cannot_judge_reason": s.cannot_judge_reason}
               for option, s in saved.items()}
    return render(request, lang, "partials/experiment.html", editing=True, prefill=prefill,
                  headers={"HX-Push-Url": f"/train?exp={experiment_id}"},
                  **await _experiment_context(ctx, exp))


@router.get("/train/ratings/{rating_id}/edit")
async def edit_form(rating_id: str, request: Request, ctx: ContextDep, lang: LangDep,
                    user: UserDep) -> HTMLResponse:
    """The small inline form the history page shows to correct one of my ratings."""
    rating = await revisions.own_rating(ctx, rating_id, user.username)
    return render(request, lang, "partials/rating_edit.html", rating=rating)


@router.post("/train/ratings/{rating_id}/edit")
async def edit_save(rating_id: str, request: Request, ctx: ContextDep, lang: LangDep,
                    user: UserDep, rating: str = Form(...), comments: str = Form("")
                    ) -> HTMLResponse:
    edit = RatingEditIn(rating=parse_stars(rating), comments=comments)
    saved = await revisions.revise_rating(ctx, rating_id, edit, user.username)
    return render(request, lang, "partials/rating_edit.html", rating=saved, saved=True)
