"""Identifier helpers: short, prefixed, URL-safe ids (``exp_…``, ``var_…``, ``rat_…``)."""

from __future__ import annotations

import secrets


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"
