"""Dependency aliases shared by the gateway's routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from itsdangerous import BadSignature, URLSafeSerializer

from services.common.app import SessionDep as SessionDep
from services.gateway import accounts
from services.gateway.accounts import CurrentUser
from services.gateway.context import Context
from services.gateway.security import SESSION_COOKIE
from services.gateway.settings import GatewaySettings


def get_context(request: Request) -> Context:
    context: Context = request.app.state.context
    return context


def get_settings(request: Request) -> GatewaySettings:
    settings: GatewaySettings = request.app.state.settings
    return settings


def language(request: Request) -> str:
    """``?lang=`` wins, then the ``lang`` cookie, then the configured default (Spanish)."""
    lang = request.query_params.get("lang") or request.cookies.get("lang")
    default: str = request.app.state.settings.default_language
    return lang if lang in ("es", "en") else default


ContextDep = Annotated[Context, Depends(get_context)]
SettingsDep = Annotated[GatewaySettings, Depends(get_settings)]
LangDep = Annotated[str, Depends(language)]


# who is asking ------------------------------------------------------------------------
_signer_cache: dict[str, URLSafeSerializer] = {}


def cookie_signer(settings: GatewaySettings) -> URLSafeSerializer:
    """Signs the session cookie's token with ``GATEWAY_SESSION_SECRET``."""
    signer = _signer_cache.get(settings.session_secret)
    if signer is None:
        signer = _signer_cache.setdefault(
            settings.session_secret, URLSafeSerializer(settings.session_secret, "session"))
    return signer


def client_ip(request: Request) -> str | None:
    """The caller's address (uvicorn's proxy headers give the real one behind the ALB)."""
    return request.client.host if request.client else None


async def optional_user(request: Request, ctx: ContextDep) -> CurrentUser | None:
    """The signed-in user (session cookie) or the API token's owner, else ``None``.

    Also kept on ``request.state.user`` for the page templates (name, admin links).
    """
    user = await _identify(request, ctx)
    request.state.user = user
    return user


async def _identify(request: Request, ctx: Context) -> CurrentUser | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    async with ctx.sessions() as session, session.begin():
        if scheme.lower() == "bearer" and credentials.strip():
            return await accounts.user_for_token(session, ctx.settings, credentials.strip())
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            return None
        try:
            token = cookie_signer(ctx.settings).loads(cookie)
        except BadSignature:
            return None
        return await accounts.user_for_session(session, ctx.settings, str(token))


async def require_user(user: Annotated[CurrentUser | None, Depends(optional_user)]
                       ) -> CurrentUser:
    if user is None:
        raise accounts.LoginRequired()
    return user


async def require_admin(user: Annotated[CurrentUser, Depends(require_user)]) -> CurrentUser:
    if not user.is_admin:
        raise accounts.AdminOnly()
    return user


async def require_trainer(user: Annotated[CurrentUser, Depends(require_user)],
                          settings: SettingsDep) -> CurrentUser:
    """A signed-in user who may train now (``ENABLE_TRAINING_MODE=false``: admins only)."""
    if not settings.enable_training_mode and not user.is_admin:
        raise accounts.TrainingClosed()
    return user


UserDep = Annotated[CurrentUser, Depends(require_user)]
AdminDep = Annotated[CurrentUser, Depends(require_admin)]
TrainerDep = Annotated[CurrentUser, Depends(require_trainer)]
