"""Prompt-version pages (lineage, diff, ratings, A/B tests, audit) and the manual
evolution trigger, both as HTMX pages and as the public ``POST /api/train/evolve``.

Everything comes from the evolution service through ``ctx.clients.evolution``;
the gateway stores nothing here. When evolution is down, pages answer 503 with a
sentence saying so (training keeps working with the last known prompt); when it
refuses a request (an A/B test under way, a missing reason…), its own sentence
is shown in the page's alert area.

Promotion and rollback by hand need a name and a reason: evolution keeps both in
its audit log with the time. With ``GATEWAY_ADMIN_PASSWORD`` set, promotion,
rollback and evolution need the admin password and the audited name is the
signed-in one (:mod:`services.gateway.admin`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from services.common.errors import AfinadorError, ServiceUnavailable, ValidationFailed, error_body
from services.gateway.admin import REALM, AdminRequired, admin_actor
from services.gateway.api.deps import ContextDep, LangDep
from services.gateway.api.pages import render, render_error
from services.gateway.training import Context

log = logging.getLogger(__name__)
router = APIRouter()

DOWN_ES = ("El servicio de evolución de prompts no responde ahora mismo. El entrenamiento sigue "
           "con la última versión de prompt conocida y no se pierde ninguna puntuación; vuelve a "
           "intentarlo en unos minutos.")
DOWN_EN = ("The prompt evolution service is not answering right now. Training continues with the "
           "last known prompt version and no rating is lost; try again in a few minutes.")


class EvolutionRefused(AfinadorError):
    """Evolution answered 4xx; carries its status code and its own sentences."""

    def __init__(self, status_code: int, message_es: str, message_en: str, code: str) -> None:
        super().__init__(message_es, message_en)
        self.status_code = status_code
        self.code = code


def _unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(DOWN_ES, DOWN_EN)


async def _call(ctx: Context, method: str, path: str, **kwargs: Any) -> Any:
    """Call evolution; translate its failures into errors a page can show."""
    try:
        return await ctx.clients.evolution.request(method, path, **kwargs)
    except ServiceUnavailable as exc:
        log.warning("prompts page: evolution unavailable: %s", exc)
        raise _unavailable() from exc
    except httpx.HTTPStatusError as exc:
        try:
            body = exc.response.json()
        except ValueError:
            body = {}
        error = body.get("error") or {}
        raise EvolutionRefused(
            exc.response.status_code,
            body.get("detail") or error.get("message")
            or "El servicio de evolución rechazó la petición.",
            error.get("message_en") or "The evolution service refused the request.",
            error.get("code") or "evolution_refused",
        ) from exc


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


def _is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def _page_error(request: Request, lang: str, error: AfinadorError) -> HTMLResponse:
    message = error.message_en if lang == "en" else error.message_es
    return render(request, lang, "prompts_unavailable.html", status_code=error.status_code,
                  page="prompts", message=message)


@router.get("/prompts", include_in_schema=False)
async def prompts_page(request: Request, ctx: ContextDep, lang: LangDep) -> HTMLResponse:
    try:
        lineage, status, tests, audit, runs, issues = await asyncio.gather(
            _call(ctx, "GET", "/prompts/lineage"),
            _call(ctx, "GET", "/prompts/status"),
            _call(ctx, "GET", "/prompts/abtests", params={"limit": 10}),
            _call(ctx, "GET", "/prompts/audit", params={"limit": 30}),
            _call(ctx, "GET", "/prompts/runs", params={"limit": 5}),
            _call(ctx, "GET", "/prompts/issues"),
        )
    except AfinadorError as error:
        return _page_error(request, lang, error)
    versions = _ordered_lineage(lineage["versions"])
    newest = lineage["versions"][-1]["version"] if lineage["versions"] else None
    return render(request, lang, "prompts.html", page="prompts", versions=versions,
                  status=status, tests=tests["tests"], rule=tests["rule"],
                  audit=audit["entries"], runs=runs["runs"], issues=issues,
                  diff_from=status["current_version"], diff_to=newest,
                  actor=request.cookies.get("trainer", ""),
                  admin_locked=bool(ctx.settings.admin_password))


@router.get("/prompts/versions/{version}", include_in_schema=False)
async def version_page(version: str, request: Request, ctx: ContextDep, lang: LangDep
                       ) -> HTMLResponse:
    try:
        detail, ratings, lineage = await asyncio.gather(
            _call(ctx, "GET", f"/prompts/versions/{version}"),
            _call(ctx, "GET", f"/prompts/versions/{version}/ratings"),
            _call(ctx, "GET", "/prompts/lineage"),
        )
        diff = None
        if detail["parent_version"]:
            diff = await _call(ctx, "GET", "/prompts/diff",
                               params={"from": detail["parent_version"], "to": version})
    except AfinadorError as error:
        return _page_error(request, lang, error)
    return render(request, lang, "prompts_version.html", page="prompts", v=detail,
                  ratings=ratings, diff=diff, versions=lineage["versions"],
                  actor=request.cookies.get("trainer", ""),
                  admin_locked=bool(ctx.settings.admin_password))


@router.get("/prompts/diff", include_in_schema=False)
async def diff_view(request: Request, ctx: ContextDep, lang: LangDep) -> HTMLResponse:
    old, new = request.query_params.get("from", ""), request.query_params.get("to", "")
    try:
        if not old or not new:
            raise ValidationFailed("Elige las dos versiones que quieres comparar.",
                                   "Choose the two versions to compare.")
        diff = await _call(ctx, "GET", "/prompts/diff", params={"from": old, "to": new})
    except AfinadorError as error:
        return render_error(request, lang, error)
    return render(request, lang, "partials/prompts_diff.html", diff=diff)


def _form_actor(form: Any, request: Request) -> str:
    return str(form.get("actor") or request.cookies.get("trainer") or "").strip()


def _challenge(response: HTMLResponse, error: AfinadorError) -> HTMLResponse:
    """Ask the browser for the admin name and password when that is what failed."""
    if isinstance(error, AdminRequired):
        response.headers["WWW-Authenticate"] = REALM
    return response


@router.post("/prompts/evolve", include_in_schema=False)
async def evolve_form(request: Request, ctx: ContextDep, lang: LangDep) -> HTMLResponse:
    form = await request.form()
    try:
        admin = admin_actor(request, ctx.settings.admin_password)
        body = {"actor": admin or _form_actor(form, request) or "admin",
                "reason": str(form.get("reason") or "").strip()}
        run = await _call(ctx, "POST", "/prompts/evolve", json=body)
    except AfinadorError as error:
        return _challenge(render_error(request, lang, error), error)
    return render(request, lang, "partials/prompts_run.html", run=run)


@router.get("/prompts/runs/{run_id}", include_in_schema=False)
async def run_view(run_id: int, request: Request, ctx: ContextDep, lang: LangDep
                   ) -> HTMLResponse:
    try:
        run = await _call(ctx, "GET", f"/prompts/runs/{run_id}")
    except AfinadorError as error:
        return render_error(request, lang, error)
    return render(request, lang, "partials/prompts_run.html", run=run)


@router.post("/prompts/versions/{version}/{action}", include_in_schema=False)
async def transition_form(version: str, action: str, request: Request, ctx: ContextDep,
                          lang: LangDep) -> Response:
    if action not in ("promote", "rollback"):
        return Response(status_code=404)
    form = await request.form()
    try:
        admin = admin_actor(request, ctx.settings.admin_password)
        body: dict[str, Any] = {"actor": admin or _form_actor(form, request),
                                "reason": str(form.get("reason") or "").strip()}
        if action == "rollback" and form.get("to"):
            body["to"] = str(form.get("to"))
        if not body["actor"] or len(body["reason"]) < 3:
            raise ValidationFailed(
                "Indica quién eres y por qué (al menos 3 caracteres): queda en el registro.",
                "Say who you are and why (at least 3 characters): it goes into the audit log.")
        await _call(ctx, "POST", f"/prompts/{version}/{action}", json=body)
    except AfinadorError as error:
        return _challenge(render_error(request, lang, error), error)
    if _is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": "/prompts"})
    return RedirectResponse("/prompts", status_code=303)


@router.post("/api/train/evolve", tags=["training"], status_code=202)
async def api_evolve(request: Request, ctx: ContextDep) -> JSONResponse:
    """Start a prompt evolution now (seeds' contract); proxies evolution ``POST /prompts/evolve``.

    Body (optional JSON): ``{"actor": "...", "reason": "..."}``. Answers 202 with the
    evolution run (``id``, ``status`` "running", ``trigger`` "manual"…); 401 without the
    admin password when one is configured (HTTP Basic; the user name is the actor);
    409 while an A/B test or a monitored promotion is undecided; 503 when evolution
    is down.
    """
    try:
        admin = admin_actor(request, ctx.settings.admin_password)
    except AdminRequired as refused:
        return JSONResponse(error_body(refused), status_code=refused.status_code,
                            headers={"WWW-Authenticate": REALM})
    try:
        body = await request.json() if await request.body() else {}
    except ValueError:
        body = None
    if not isinstance(body, dict):
        error = ValidationFailed("El cuerpo debe ser un objeto JSON.",
                                 "The body must be a JSON object.")
        return JSONResponse(error_body(error), status_code=422)
    payload = {"actor": admin or str(body.get("actor") or "api"),
               "reason": str(body.get("reason") or "")}
    try:
        run = await _call(ctx, "POST", "/prompts/evolve", json=payload)
    except AfinadorError as error:
        return JSONResponse(error_body(error), status_code=error.status_code)
    return JSONResponse(run, status_code=202)
