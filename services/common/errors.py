"""Error types shared by the services and the one handler that maps them to HTTP.

    AfinadorError                       root; carries a Spanish and an English sentence
    ├── ValidationFailed (422)          the request is well-formed JSON but its values are wrong
    │   └── InvalidImage (422)          empty, damaged or truncated image (services.common.images)
    │       ├── ImageTooLarge (413)     over the byte or pixel limit (decompression bombs too)
    │       └── UnsupportedImageType (415)  not JPEG, PNG or WebP (HTML named .jpg, GIF…)
    ├── NotFound (404)                  the thing named does not exist
    │   └── BlobNotFound (404)          no blob under that key (services.common.blobs)
    ├── Conflict (409)                  the request contradicts the current state
    ├── Unauthorized (401)              missing or wrong service token
    └── ServiceUnavailable (503)        a sibling service or provider could not be reached
        ├── DatabaseUnavailable (503)   the database is not answering
        └── BlobStoreUnavailable (503)  the blob store (disk or S3) refused or did not answer

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
from sqlalchemy.exc import InterfaceError, OperationalError

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


class DatabaseUnavailable(ServiceUnavailable):
    code = "database_unavailable"

    def __init__(self) -> None:
        super().__init__(
            "La base de datos no responde; no se ha guardado nada. Vuelve a intentarlo en "
            "unos segundos.",
            "The database is not answering; nothing was saved. Try again in a few seconds.")


class BlobNotFound(NotFound):
    """No blob is stored under ``key`` (it was never written, or was deleted)."""

    code = "blob_not_found"

    def __init__(self, key: str) -> None:
        super().__init__(
            f"No se encuentra el archivo {key} en el almacenamiento; puede que se haya "
            "borrado. Si lo necesitas, vuelve a subirlo.",
            f"File {key} is not in the storage; it may have been deleted. If you need it, "
            "upload it again.",
            key=key)
        self.key = key


class BlobStoreUnavailable(ServiceUnavailable):
    """The blob store (local disk or S3) refused the operation or did not answer."""

    code = "blob_store_unavailable"

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"El almacenamiento de archivos no responde ({reason}). Vuelve a intentarlo en "
            "unos minutos y, si se repite, avisa al equipo técnico.",
            f"The file storage is not answering ({reason}). Try again in a few minutes and, "
            "if it happens again, tell the technical team.")
        self.reason = reason


class InvalidImage(ValidationFailed):
    """The upload is not an image that can be used: empty, damaged or truncated."""

    code = "invalid_image"

    @classmethod
    def empty(cls) -> InvalidImage:
        return cls("La imagen está vacía (0 bytes). Sube un archivo JPEG, PNG o WebP.",
                   "The image is empty (0 bytes). Upload a JPEG, PNG or WebP file.")

    @classmethod
    def damaged(cls) -> InvalidImage:
        return cls(
            "La imagen está dañada o incompleta. Vuelve a exportarla y súbela de nuevo.",
            "The image is damaged or incomplete. Export it again and re-upload it.")

    @classmethod
    def no_pixels(cls, width: int, height: int) -> InvalidImage:
        return cls(f"La imagen no tiene píxeles ({width}×{height}). Sube otra imagen.",
                   f"The image has no pixels ({width}×{height}). Upload another image.")


class ImageTooLarge(InvalidImage):
    """Over the byte or the pixel limit (checked before any pixel is decoded)."""

    status_code = 413
    code = "image_too_large"

    @classmethod
    def too_many_bytes(cls, size: int, max_bytes: int) -> ImageTooLarge:
        have, most = _megabytes(size), _megabytes(max_bytes)
        return cls(
            f"La imagen pesa {have} MB; el máximo es {most} MB. Redúcela o comprímela y "
            "vuelve a subirla.",
            f"The image is {have} MB; the maximum is {most} MB. Shrink or compress it and "
            "upload it again.",
            max_bytes=max_bytes)

    @classmethod
    def too_many_pixels(cls, max_pixels: int, width: int | None = None,
               height: int | None = None) -> ImageTooLarge:
        most = f"{max_pixels / 1e6:g}"
        if width is None or height is None:  # Pillow refused before telling us the size
            return cls(
                f"La imagen tiene demasiados píxeles; el máximo son {most} megapíxeles. "
                "Redúcela y vuelve a subirla.",
                f"The image has too many pixels; the maximum is {most} megapixels. Resize "
                "it and upload it again.",
                max_pixels=max_pixels)
        return cls(
            f"La imagen mide {width}×{height} píxeles; el máximo son {most} megapíxeles. "
            "Redúcela y vuelve a subirla.",
            f"The image is {width}×{height} pixels; the maximum is {most} megapixels. "
            "Resize it and upload it again.",
            max_pixels=max_pixels)


class UnsupportedImageType(InvalidImage):
    """Readable bytes that are not a JPEG, PNG or WebP image (identified by content)."""

    status_code = 415
    code = "unsupported_image_type"

    @classmethod
    def unrecognised(cls) -> UnsupportedImageType:
        return cls("El archivo no es una imagen válida. Sube una imagen JPEG, PNG o WebP.",
                   "The file is not a valid image. Upload a JPEG, PNG or WebP image.")

    @classmethod
    def not_accepted(cls, name: str) -> UnsupportedImageType:
        return cls(f"Formato {name or 'desconocido'} no admitido. Usa JPEG, PNG o WebP.",
                   f"Format {name or 'unknown'} is not accepted. Use JPEG, PNG or WebP.",
                   format=name)


def _megabytes(size: int) -> str:
    """``size`` in MB for a sentence: one decimal, without a trailing ``.0``."""
    return f"{size / (1024 * 1024):.1f}".removesuffix(".0")


DATABASE_DOWN = (OperationalError, InterfaceError, ConnectionError, TimeoutError)
"""Exceptions that mean the database could not be reached (not a bug in the request)."""


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AfinadorError)
    async def _afinador_error(request: Request, exc: AfinadorError) -> JSONResponse:
        level = logging.ERROR if exc.status_code >= 500 else logging.INFO
        log.log(level, "%s %s -> %s %s", request.method, request.url.path, exc.status_code, exc)
        return JSONResponse(error_body(exc), status_code=exc.status_code)

    async def _database_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("%s %s: the database is not answering (%s)", request.method,
                    request.url.path, type(exc).__name__)
        error = DatabaseUnavailable()
        return JSONResponse(error_body(error), status_code=error.status_code)

    for kind in DATABASE_DOWN:
        app.add_exception_handler(kind, _database_down)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed unexpectedly", request.method, request.url.path)
        return JSONResponse(error_body(unexpected_error()), status_code=500)

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        error = ValidationFailed.from_pydantic(exc.errors())
        return JSONResponse(error_body(error), status_code=422)
