"""Server-rendered HTMX pages for trainers (Spanish by default, English switch).

Page handlers parse, call the same domain functions as the JSON API and render.
Errors are raised, never caught here: the gateway's one handler
(:mod:`services.gateway.api.errors`) shows them in the page's alert area
(``#flash``) as a sentence in the trainer's language, and nothing the trainer
typed elsewhere on the page is lost.
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel

from services.common.errors import ValidationFailed
from services.gateway import experiments, ratings, repeats, reports
from services.gateway.api.deps import ContextDep, LangDep, TrainerDep, require_user
from services.gateway.api.rendering import render, translator
from services.gateway.context import Context
from services.gateway.schemas import ExperimentOut, Option, RateIn, RatingIn, parse_stars
from services.gateway.uploads import read_limited

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False, dependencies=[Depends(require_user)])


class RateForm(BaseModel):
    """The rating form as the page posts it; an empty star field means "not rated"."""

    experiment_id: str
    rating_A: str = ""
    rating_B: str = ""
    comments_A: str = ""
    comments_B: str = ""

    def to_rate_in(self) -> RateIn:
        given: list[tuple[Option, str, str]] = [
            ("A", self.rating_A, self.comments_A), ("B", self.rating_B, self.comments_B)]
        items = [RatingIn(option=option, rating=parse_stars(stars), comments=comments)
                 for option, stars, comments in given if stars.strip()]
        if not items:
            raise ValidationFailed("Puntúa al menos una opción antes de enviar.",
                                   "Rate at least one option before submitting.")
        return RateIn(experiment_id=self.experiment_id, ratings=items, rated_by=None)


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/train")


@router.get("/train")
async def train_page(request: Request, ctx: ContextDep, lang: LangDep, user: TrainerDep
                     ) -> HTMLResponse:
    labels = ", ".join(ctx.provider_label(p, lang) for p in sorted(ctx.providers))
    return render(request, lang, "train.html", page="train", status=None,
                  provider_labels=labels,
                  max_mb=ctx.settings.max_upload_bytes // (1024 * 1024))


@router.get("/train/status-panel")
async def status_panel(request: Request, ctx: ContextDep, lang: LangDep) -> HTMLResponse:
    status = await reports.training_status(ctx)
    return render(request, lang, "partials/status_panel.html", status=status)


@router.post("/train/upload")
async def upload(request: Request, ctx: ContextDep, lang: LangDep, user: TrainerDep,
                 image: UploadFile = File(...), mode: str = Form("structure")) -> HTMLResponse:
    data = await read_limited(image, ctx.settings.max_upload_bytes)
    experiment = await experiments.create_experiment(ctx, data, image.filename, mode, None)
    exp = await experiments.describe_experiment(ctx, experiment.id, lang)
    return await _experiment_response(request, ctx, lang, exp)


@router.get("/train/experiments/{experiment_id}")
async def experiment_panel(experiment_id: str, request: Request, ctx: ContextDep, lang: LangDep,
                           user: TrainerDep) -> HTMLResponse:
    exp = await experiments.describe_experiment(ctx, experiment_id, lang)
    return await _experiment_response(request, ctx, lang, exp)


async def _experiment_response(request: Request, ctx: Context, lang: str, exp: ExperimentOut
                               ) -> HTMLResponse:
    t = translator(request, lang)
    stage_labels = {key.removeprefix("stage."): t(key) for key in t.keys("stage.")}
    elapsed = await experiments.seconds_since_queued(ctx, [o.variant_id for o in exp.options])
    return render(request, lang, "partials/experiment.html", exp=exp,
                  elapsed=elapsed, stage_labels=stage_labels)


async def _variant_card(request: Request, ctx: Context, lang: str, variant_id: str
                        ) -> HTMLResponse:
    experiment_id = await experiments.experiment_of_variant(ctx, variant_id)
    exp = await experiments.describe_experiment(ctx, experiment_id, lang)
    option = next(o for o in exp.options if o.variant_id == variant_id)
    elapsed = await experiments.seconds_since_queued(ctx, [variant_id])
    return render(request, lang, "partials/variant_card.html", v=option, elapsed=elapsed)


@router.get("/train/variants/{variant_id}/card")
async def variant_card(variant_id: str, request: Request, ctx: ContextDep, lang: LangDep
                       ) -> HTMLResponse:
    return await _variant_card(request, ctx, lang, variant_id)


@router.post("/train/variants/{variant_id}/{action}")
async def variant_action(variant_id: str, action: Literal["retry", "cancel"], request: Request,
                         ctx: ContextDep, lang: LangDep, user: TrainerDep) -> HTMLResponse:
    await experiments.change_variant(ctx, variant_id, action)
    return await _variant_card(request, ctx, lang, variant_id)


@router.post("/train/rate")
async def rate(form: Annotated[RateForm, Form()], request: Request, ctx: ContextDep,
               lang: LangDep, user: TrainerDep) -> HTMLResponse:
    result = await ratings.rate_experiment(ctx, form.to_rate_in(), rater=user.username)
    status = await reports.training_status(ctx)
    # Rater quality: now and then the next pair is an earlier one again, blind.
    repeat = await repeats.maybe_repeat(ctx, user.username)
    return render(request, lang, "partials/rated.html", result=result, status=status,
                  repeat_id=repeat.id if repeat else None)
