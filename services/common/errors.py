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
sentence that says what happened and what to do, in Spanish first. The sentences live in
catalogues (:mod:`services.common.catalogue`), keyed by the error's code and a reason:

    raise RatingRejected.because("already_rated", experiment=experiment_id)

takes ``rating_rejected.already_rated`` from the raising class's ``catalogue`` (each
service's root error class names its own); ``raise DatabaseUnavailable()`` takes the
sentence keyed by the code alone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar, Self

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError

from services.common.catalogue import COMMON, Catalogue, Sentence

log = logging.getLogger(__name__)


class AfinadorError(Exception):
    """Root of every error a caller may be shown.

    Built from a catalogue :class:`Sentence` (see :meth:`because`), from nothing (the
    sentence keyed by the class's code, formatted with ``details``), or from two
    sentences written at the raise site, for text that does not come from this code
    (a sibling service's answer).
    """

    status_code = 500
    code = "internal_error"
    catalogue: ClassVar[Catalogue] = COMMON

    def __init__(self, message_es: str | Sentence | None = None, message_en: str | None = None,
                 **details: Any) -> None:
        if message_es is None:
            message_es = self.catalogue.sentence(self.code, **details)
        sentence = message_es if isinstance(message_es, Sentence) else None
        if sentence is not None:
            message_es, message_en = sentence.es, sentence.en
        assert isinstance(message_es, str)
        super().__init__(message_en or message_es)
        self.message_es = message_es
        self.message_en = message_en or message_es
        self.key: str | None = sentence.key if sentence else None
        self.params: dict[str, Any] = dict(sentence.params) if sentence else {}
        self.details = details

    @classmethod
    def because(cls, reason: str | None = None, /, *, details: dict[str, Any] | None = None,
                **params: Any) -> Self:
        """The error with the sentence ``<code>.<reason>`` (or ``<code>``) of the class's
        catalogue, formatted with ``params``; ``details`` go into the JSON answer."""
        key = cls.code if reason is None else f"{cls.code}.{reason}"
        return cls(cls.catalogue.sentence(key, **params), **(details or {}))

    def say(self, lang: str) -> str:
        """The sentence in ``lang`` (Spanish unless ``"en"``)."""
        return self.message_en if lang == "en" else self.message_es

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            **({"key": self.key} if self.key else {}),
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
        return cls(cls.catalogue.sentence("validation_failed.request",
                                          problems="; ".join(problems)))


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
    return AfinadorError()


class DatabaseUnavailable(ServiceUnavailable):
    code = "database_unavailable"


class BlobNotFound(NotFound):
    """No blob is stored under ``key`` (it was never written, or was deleted)."""

    code = "blob_not_found"

    def __init__(self, key: str) -> None:
        super().__init__(COMMON.sentence("blob_not_found", key=key), key=key)
        self.blob_key = key


class BlobStoreUnavailable(ServiceUnavailable):
    """The blob store (local disk or S3) refused the operation or did not answer."""

    code = "blob_store_unavailable"

    def __init__(self, reason: str) -> None:
        super().__init__(COMMON.sentence("blob_store_unavailable", reason=reason))
        self.reason = reason


class InvalidImage(ValidationFailed):
    """The upload is not an image that can be used: empty, damaged or truncated."""

    code = "invalid_image"

    @classmethod
    def empty(cls) -> InvalidImage:
        return cls.because("empty")

    @classmethod
    def damaged(cls) -> InvalidImage:
        return cls.because("damaged")

    @classmethod
    def no_pixels(cls, width: int, height: int) -> InvalidImage:
        return cls.because("no_pixels", width=width, height=height)


class ImageTooLarge(InvalidImage):
    """Over the byte or the pixel limit (checked before any pixel is decoded)."""

    status_code = 413
    code = "image_too_large"

    @classmethod
    def too_many_bytes(cls, size: int, max_bytes: int) -> ImageTooLarge:
        return cls.because("bytes", details={"max_bytes": max_bytes},
                           have=_megabytes(size), most=_megabytes(max_bytes))

    @classmethod
    def too_many_pixels(cls, max_pixels: int, width: int | None = None,
                        height: int | None = None) -> ImageTooLarge:
        most = f"{max_pixels / 1e6:g}"
        if width is None or height is None:  # Pillow refused before telling us the size
            return cls.because("pixels", details={"max_pixels": max_pixels}, most=most)
        return cls.because("dimensions", details={"max_pixels": max_pixels},
                           width=width, height=height, most=most)


class UnsupportedImageType(InvalidImage):
    """Readable bytes that are not a JPEG, PNG or WebP image (identified by content)."""

    status_code = 415
    code = "unsupported_image_type"

    @classmethod
    def unrecognised(cls) -> UnsupportedImageType:
        return cls.because("unrecognised")

    @classmethod
    def not_accepted(cls, name: str) -> UnsupportedImageType:
        return cls.because("format", details={"format": name}, format=name or "?")


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
