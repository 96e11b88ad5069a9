"""Error types shared by the services and the one handler that maps them to HTTP.

    AfinadorError                 root; carries a Spanish and an English sentence
    ├── ValidationFailed (422)    the request is well-formed JSON but its values are wrong
    ├── NotFound (404)            the thing named does not exist
    ├── Conflict (409)            the request contradicts the current state
    ├── Unauthorized (401)        missing or wrong service token
    └── ServiceUnavailable (503)  a sibling service or provider could not be reached

Services subclass these for their own meanings. Every error a trainer can see is a
sentence that says what happened and what to do, in Spanish first.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

log = logging.getLogger(__name__)


class AfinadorError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(self, message_es: str, message_en: str | None = None, **details: Any) -> None:
        super().__init__(message_en or message_es)
        self.message_es = message_es
        self.message_en = message_en or message_es
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message_es,
            "message_en": self.message_en,
            **({"details": self.details} if self.details else {}),
        }


class ValidationFailed(AfinadorError):
    status_code = 422
    code = "validation_failed"

    @classmethod
    def from_pydantic(cls, errors: Sequence[Any]) -> ValidationFailed:
        """One sentence listing each field that failed pydantic's validation."""
        problems = []
        for err in errors:
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            problems.append(f"{where}: {str(err.get('msg', '')).removeprefix('Value error, ')}")
        return cls("La petición no es válida: " + "; ".join(problems),
                   "The request is not valid: " + "; ".join(problems))


class NotFound(AfinadorError):
    status_code = 404
    code = "not_found"


class Conflict(AfinadorError):
    status_code = 409
    code = "conflict"


class Unauthorized(AfinadorError):
    status_code = 401
    code = "unauthorized"


class ServiceUnavailable(AfinadorError):
    status_code = 503
    code = "service_unavailable"


def error_body(error: AfinadorError) -> dict[str, Any]:
    """JSON body for an error: ``detail`` is the Spanish sentence (FastAPI's usual key)."""
    return {"detail": error.message_es, "error": error.to_dict()}


def unexpected_error() -> AfinadorError:
    """What a caller is told when a bug, not their request, made the call fail."""
    return AfinadorError(
        "Error interno inesperado; no se guardó nada. Inténtalo de nuevo y, si se repite, "
        "avisa al equipo técnico.",
        "Unexpected internal error; nothing was saved. Try again and, if it happens again, "
        "tell the technical team.",
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AfinadorError)
    async def _afinador_error(request: Request, exc: AfinadorError) -> JSONResponse:
        level = logging.ERROR if exc.status_code >= 500 else logging.INFO
        log.log(level, "%s %s -> %s %s", request.method, request.url.path, exc.status_code, exc)
        return JSONResponse(error_body(exc), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed unexpectedly", request.method, request.url.path)
        return JSONResponse(error_body(unexpected_error()), status_code=500)

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        error = ValidationFailed.from_pydantic(exc.errors())
        return JSONResponse(error_body(error), status_code=422)
