"""Signing in and out, and the admin pages for trainers' accounts and the audit log."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from services.gateway import accounts, audit
from services.gateway.api.deps import (
    AdminDep,
    ContextDep,
    LangDep,
    UserDep,
    client_ip,
    cookie_signer,
    optional_user,
)
from services.gateway.api.rendering import is_htmx, render
from services.gateway.errors import GatewayConflict
from services.gateway.security import SESSION_COOKIE

router = APIRouter(include_in_schema=False)


def safe_next(target: str | None) -> str:
    """Only a path on this site (never ``//host`` or ``https://…``) is followed after login."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/train"


class LoginForm(BaseModel):
    username: str = Field(max_length=200)
    password: str = Field(max_length=1000)
    next: str = "/train"


@router.get("/login")
async def login_page(request: Request, lang: LangDep,
                     user: Annotated[accounts.CurrentUser | None, Depends(optional_user)],
                     next: str = Query("/train")) -> Response:
    if user is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, lang, "login.html", page="login", next=safe_next(next),
                  username="", message=None)


@router.post("/login")
async def login(form: Annotated[LoginForm, Form()], request: Request, ctx: ContextDep,
                lang: LangDep) -> Response:
    try:
        user = await accounts.authenticate(ctx.sessions, ctx.settings, form.username,
                                           form.password, client_ip(request))
    except (accounts.LoginFailed, accounts.LoginThrottled) as error:
        # Shown on the login form itself, with the name kept (the password is not).
        return render(request, lang, "login.html", status_code=error.status_code,
                      page="login", next=safe_next(form.next), username=form.username,
                      message=error.message_en if lang == "en" else error.message_es)
    async with ctx.sessions() as session, session.begin():
        token = await accounts.open_session(session, user, client_ip(request))
    response = RedirectResponse(safe_next(form.next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE, cookie_signer(ctx.settings).dumps(token), httponly=True,
        samesite="lax", secure=ctx.settings.environment != "development",
        max_age=ctx.settings.session_absolute_hours * 3600)
    return response


@router.post("/logout")
async def logout(request: Request, ctx: ContextDep, user: UserDep) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        async with ctx.sessions() as session, session.begin():
            await accounts.close_session(session, str(cookie_signer(ctx.settings).loads(cookie)),
                                         ip=client_ip(request))
    response: Response
    if is_htmx(request):
        response = Response(status_code=204, headers={"HX-Redirect": "/login"})
    else:
        response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


# admin: trainers' accounts --------------------------------------------------------------
class NewUserForm(BaseModel):
    username: str = Field(max_length=200)
    password: str = Field(max_length=1000)
    role: Literal["admin", "trainer"] = "trainer"


class PasswordForm(BaseModel):
    password: str = Field(max_length=1000)


async def _users_page(request: Request, ctx: ContextDep, lang: str, *, message: str | None = None,
                      created: str | None = None, status_code: int = 200) -> HTMLResponse:
    async with ctx.sessions() as session:
        users = await accounts.list_users(session)
    roles = {u.username: accounts.effective_role(u, ctx.settings) for u in users}
    return render(request, lang, "admin_users.html", status_code=status_code, page="users",
                  users=users, roles=roles, message=message, created=created)


@router.get("/admin/users")
async def users_page(request: Request, ctx: ContextDep, lang: LangDep, admin: AdminDep
                     ) -> HTMLResponse:
    return await _users_page(request, ctx, lang)


@router.post("/admin/users")
async def add_user(form: Annotated[NewUserForm, Form()], request: Request, ctx: ContextDep,
                   lang: LangDep, admin: AdminDep) -> HTMLResponse:
    async with ctx.sessions() as session, session.begin():
        user = await accounts.add_user(session, form.username, form.password, form.role,
                                       actor=admin.username, ip=client_ip(request))
    return await _users_page(request, ctx, lang, created=user.username)


@router.post("/admin/users/{username}/password")
async def reset_password(username: str, form: Annotated[PasswordForm, Form()], request: Request,
                         ctx: ContextDep, lang: LangDep, admin: AdminDep) -> HTMLResponse:
    async with ctx.sessions() as session, session.begin():
        await accounts.set_password(session, username, form.password, actor=admin.username,
                                    ip=client_ip(request))
    return await _users_page(request, ctx, lang)


@router.post("/admin/users/{username}/{action}")
async def change_user(username: str, action: Literal["activate", "deactivate"],
                      request: Request, ctx: ContextDep, lang: LangDep, admin: AdminDep
                      ) -> HTMLResponse:
    if action == "deactivate" and username.strip().lower() == admin.username:
        raise GatewayConflict.because("deactivate_self")
    async with ctx.sessions() as session, session.begin():
        await accounts.set_active(session, username, action == "activate",
                                  actor=admin.username, ip=client_ip(request))
    return await _users_page(request, ctx, lang)


@router.get("/admin/audit")
async def audit_page(request: Request, ctx: ContextDep, lang: LangDep, admin: AdminDep,
                     actor: str | None = None, action: str | None = None) -> HTMLResponse:
    async with ctx.sessions() as session:
        entries = await audit.recent(session, 300, actor=actor or None, action=action or None)
    return render(request, lang, "admin_audit.html", page="audit", entries=entries,
                  actor=actor or "", action=action or "")
