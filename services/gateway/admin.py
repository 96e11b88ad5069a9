"""Who may change prompts: HTTP Basic authentication against ``GATEWAY_ADMIN_PASSWORD``.

Promoting or rolling back a prompt version and starting an evolution change what
every trainer sees, so with a password configured these actions need it. The
browser asks for a name and the password once (its own Basic-auth dialog) and
sends them with every later request; the name is what the audit log records, so
a form cannot claim to be somebody else. Reading the prompts pages stays open.

With no password (development, ``make run``) the actions are open and the actor
is the name typed in the form; outside development the gateway refuses to start
without one (:class:`services.gateway.settings.GatewaySettings`).
"""

from __future__ import annotations

import base64
import binascii
import secrets

from fastapi import Request

from services.common.errors import Unauthorized

REALM = 'Basic realm="Afinador prompts", charset="UTF-8"'
"""The ``WWW-Authenticate`` challenge: it makes the browser show its login dialog."""


class AdminRequired(Unauthorized):
    """The request lacks the admin password (or carries a wrong one)."""

    code = "admin_required"
    headers = {"WWW-Authenticate": REALM}  # makes the browser ask for name and password

    def __init__(self) -> None:
        super().__init__(
            "Esta acción cambia el prompt de todo el equipo: entra con tu nombre y la "
            "contraseña de administración.",
            "This action changes the prompt for the whole team: sign in with your name and "
            "the admin password.",
        )


def admin_actor(request: Request, password: str) -> str | None:
    """The signed-in admin's name, or ``None`` when no admin password is configured.

    Raises:
        AdminRequired: a password is configured and the request does not carry it.
    """
    if not password:
        return None
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        raise AdminRequired()
    try:
        name, _, given = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise AdminRequired() from exc
    if not secrets.compare_digest(given.encode(), password.encode()):
        raise AdminRequired()
    return name.strip()[:255] or "admin"
