"""Dependency aliases shared by the gateway's routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.gateway.training import Context


def get_context(request: Request) -> Context:
    context: Context = request.app.state.context
    return context


ContextDep = Annotated[Context, Depends(get_context)]


def language(request: Request) -> str:
    """``?lang=`` wins, then the ``lang`` cookie, then the configured default (Spanish)."""
    lang = request.query_params.get("lang") or request.cookies.get("lang")
    default: str = request.app.state.settings.default_language
    return lang if lang in ("es", "en") else default


LangDep = Annotated[str, Depends(language)]
