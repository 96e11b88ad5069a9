"""Dependency aliases shared by the gateway's routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.common.app import SessionDep as SessionDep
from services.gateway.context import Context
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
