"""Prompt-version pages (lineage, diff, ratings, A/B tests, audit) and the manual
evolution trigger, both as HTMX pages and as the public ``POST /api/train/evolve``.

Everything comes from the evolution service through ``ctx.clients.evolution``;
the gateway stores nothing here. When evolution is down, pages answer 503 with a
sentence saying so (training keeps working with the last known prompt); when it
refuses a request (an A/B test under way, a missing reason…), its own sentence
is shown in the page's alert area.

Reading needs a signed-in user; promotion, rollback and evolution need an admin,
and a reason. The signed-in admin is the actor both in evolution's audit log and
in the gateway's (:mod:`services.gateway.audit`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from services.common.errors import ServiceUnavailable
from services.common.http import path_segment
from services.gateway import audit, prompt_words
from services.gateway.accounts import CurrentUser
from services.gateway.api.deps import AdminDep, ContextDep, LangDep, client_ip, require_user
from services.gateway.api.rendering import is_htmx, render, translator
from services.gateway.context import Context
from services.gateway.errors import GatewayUnavailable, InvalidRequest

log = logging.getLogger(__name__)
router = APIRouter(dependencies=[Depends(require_user)])

def _unavailable() -> GatewayUnavailable:
    return GatewayUnavailable.because("evolution_down")


async def _call(ctx: Context, method: str, path: str, **kwargs: Any) -> Any:
    """Call evolution; when it is down, say so in words a trainer understands.

    Its refusals (4xx) arrive as :class:`SiblingRefused` with its own sentences.
    """
    try:
        return await ctx.clients.evolution.request(method, path, **kwargs)
    except ServiceUnavailable as exc:  # the client could not reach evolution
        log.warning("prompts page: evolution unavailable: %s", exc)
        raise _unavailable() from exc


def _ordered_lineage(versions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Versions in tree order (children under their parent) with a ``depth``."""
    children: dict[str | None, list[dict[str, Any]]] = {}
    known = {v["version"] for v in versions}
    for v in versions:
        parent = v["parent_version"] if v["parent_version"] in known else None
        children.setdefault(parent, []).append(v)
    out: list[dict[str, Any]] = []

    def walk(parent: str | None, depth: int) -> None:
        for v in children.get(parent, []):
            out.append({**v, "depth": depth})
            walk(v["version"], depth + 1)

    walk(None, 0)
    return out


@router.get("/prompts", include_in_schema=False)
async def prompts_page(request: Request, ctx: ContextDep, lang: LangDep) -> HTMLResponse:
    lineage, status, tests, audit, runs, issues = await asyncio.gather(
        _call(ctx, "GET", "/prompts/lineage"),
        _call(ctx, "GET", "/prompts/status"),
        _call(ctx, "GET", "/prompts/abtests", params={"limit": 10}),
        _call(ctx, "GET", "/prompts/audit", params={"limit": 30}),
        _call(ctx, "GET", "/prompts/runs", params={"limit": 5}),
        _call(ctx, "GET", "/prompts/issues"),
    )
    t = translator(request, lang)
    labels = prompt_words.category_labels(issues)
    versions = [{**v, "changes_words": prompt_words.changes_in_words(v["changes"], t, labels)}
                for v in _ordered_lineage(lineage["versions"])]
    newest = lineage["versions"][-1]["version"] if lineage["versions"] else None
    entries = [{**e, "reason_words": prompt_words.reason_in_words(e["reason"], t)}
               for e in audit["entries"]]
    return render(request, lang, "prompts.html", page="prompts", versions=versions,
                  status=status, tests=tests["tests"], rule=tests["rule"],
                  ab_words=prompt_words.ab_in_words(status.get("ab_test"), tests["rule"], t),
                  audit=entries, runs=runs["runs"], issues=issues,
                  diff_from=status["current_version"], diff_to=newest,
                  can_decide=bool(getattr(request.state, "user", None)
                                  and request.state.user.is_admin))


@router.get("/prompts/versions/{version}", include_in_schema=False)
async def version_page(version: str, request: Request, ctx: ContextDep, lang: LangDep
                       ) -> HTMLResponse:
    segment = path_segment(version)
    detail, ratings, lineage, issues = await asyncio.gather(
        _call(ctx, "GET", f"/prompts/versions/{segment}"),
        _call(ctx, "GET", f"/prompts/versions/{segment}/ratings"),
        _call(ctx, "GET", "/prompts/lineage"),
        _call(ctx, "GET", "/prompts/issues"),
    )
    diff = None
    if detail["parent_version"]:
        diff = prompt_words.diff_for_providers(
            await _call(ctx, "GET", "/prompts/diff",
                        params={"from": detail["parent_version"], "to": version}),
            sorted(ctx.providers))
    t = translator(request, lang)
    changes = prompt_words.changes_in_words(detail["document"].get("changes", []), t,
                                            prompt_words.category_labels(issues))
    return render(request, lang, "prompts_version.html", page="prompts", v=detail,
                  changes=changes, ratings=ratings, diff=diff, versions=lineage["versions"],
                  provider_labels=_labels(ctx, lang), enabled=sorted(ctx.providers),
                  can_decide=bool(getattr(request.state, "user", None)
                                  and request.state.user.is_admin))


@router.get("/prompts/diff", include_in_schema=False)
async def diff_view(request: Request, ctx: ContextDep, lang: LangDep) -> HTMLResponse:
    old, new = request.query_params.get("from", ""), request.query_params.get("to", "")
    if not old or not new:
        raise InvalidRequest.because("diff_versions")
    diff = prompt_words.diff_for_providers(
        await _call(ctx, "GET", "/prompts/diff", params={"from": old, "to": new}),
        sorted(ctx.providers))
    return render(request, lang, "partials/prompts_diff.html", diff=diff,
                  provider_labels=_labels(ctx, lang))


def _labels(ctx: Context, lang: str) -> dict[str, str]:
    from services.common.parameter_space import PROVIDERS

    return {p: ctx.provider_label(p, lang) for p in PROVIDERS}


class ReasonForm(BaseModel):
    reason: str = Field(default="", max_length=2000)
    to: str | None = Field(default=None, max_length=64)


async def _audited(ctx: Context, admin: CurrentUser, request: Request, action: str,
                   target: str | None, **details: Any) -> None:
    async with ctx.sessions() as session, session.begin():
        await audit.record(session, admin.username, action, target, client_ip(request), **details)


@router.post("/prompts/evolve", include_in_schema=False)
async def evolve_form(form: Annotated[ReasonForm, Form()], request: Request, ctx: ContextDep,
                      lang: LangDep, admin: AdminDep) -> HTMLResponse:
    run = await _call(ctx, "POST", "/prompts/evolve",
                      json={"actor": admin.username, "reason": form.reason.strip()})
    await _audited(ctx, admin, request, "prompt_evolve", str(run.get("id")),
                   reason=form.reason.strip())
    return render(request, lang, "partials/prompts_run.html", run=run)


@router.get("/prompts/runs/{run_id}", include_in_schema=False)
async def run_view(run_id: int, request: Request, ctx: ContextDep, lang: LangDep
                   ) -> HTMLResponse:
    run = await _call(ctx, "GET", f"/prompts/runs/{run_id}")
    return render(request, lang, "partials/prompts_run.html", run=run)


@router.post("/prompts/versions/{version}/{action}", include_in_schema=False)
async def transition_form(version: str, action: Literal["promote", "rollback"],
                          form: Annotated[ReasonForm, Form()], request: Request,
                          ctx: ContextDep, admin: AdminDep) -> Response:
    reason = form.reason.strip()
    if len(reason) < 3:
        raise InvalidRequest.because("reason_too_short", min=3)
    body: dict[str, Any] = {"actor": admin.username, "reason": reason}
    if action == "rollback" and form.to:
        body["to"] = form.to
    await _call(ctx, "POST", f"/prompts/{path_segment(version)}/{action}", json=body)
    await _audited(ctx, admin, request, f"prompt_{action}", version, reason=reason,
                   **({"to": form.to} if form.to else {}))
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": "/prompts"})
    return RedirectResponse("/prompts", status_code=303)


class EvolveIn(BaseModel):
    actor: str | None = Field(default=None, max_length=255,
                              description="Ignored: the actor is the signed-in admin.")
    reason: str = Field(default="", max_length=2000)


@router.post("/api/train/evolve", tags=["training"], status_code=202)
async def api_evolve(request: Request, ctx: ContextDep, admin: AdminDep,
                     body: EvolveIn | None = None) -> dict[str, Any]:
    """Start a prompt evolution now (seeds' contract); proxies evolution ``POST /prompts/evolve``.

    Needs an admin (session or API token). Body (optional JSON): ``{"reason": "..."}``.
    Answers 202 with the evolution run (``id``, ``status`` "running", ``trigger``
    "manual"…); 409 while an A/B test or a monitored promotion is undecided; 503 when
    evolution is down.
    """
    reason = (body or EvolveIn()).reason
    run: dict[str, Any] = await _call(ctx, "POST", "/prompts/evolve",
                                      json={"actor": admin.username, "reason": reason})
    await _audited(ctx, admin, request, "prompt_evolve", str(run.get("id")), reason=reason)
    return run
