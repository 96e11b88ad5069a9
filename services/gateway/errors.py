"""Gateway errors (all subclasses of the common hierarchy, so one handler maps them).

    GatewayError (AfinadorError)     sentences from web/locales/errors.<lang>.json
    ├── ValidationFailed (422)       the gateway's flavours of the common kinds: same
    ├── NotFound (404)               code and status, the gateway's catalogue
    ├── Conflict (409)
    ├── Unauthorized (401)
    ├── ServiceUnavailable (503)
    ├── InvalidImage (415/413/422)   the upload is not an image we accept
    ├── ExperimentNotFound (404)
    ├── RatingRejected (409/422)     the rating contradicts the experiment's state
    └── ProviderError                a generation provider failed (kept on the variant)

The gateway's sentences live with the pages' texts, so a page and the JSON API say the
same thing: ``raise RatingRejected.because("already_rated", experiment=...)`` reads the
key ``rating_rejected.already_rated`` there, and keys it lacks in the common catalogue.
"""

from __future__ import annotations

from pathlib import Path

from services.common import errors as common
from services.common.catalogue import COMMON, Catalogue, Sentence

GATEWAY = Catalogue(
    "gateway", Path(__file__).resolve().parents[2] / "web" / "locales" / "errors", fallback=COMMON
)
"""The gateway's sentences (``web/locales/errors.<lang>.json``)."""


class GatewayError(common.AfinadorError):
    catalogue = GATEWAY


class ValidationFailed(common.ValidationFailed, GatewayError):
    pass


class NotFound(common.NotFound, GatewayError):
    pass


class Conflict(common.Conflict, GatewayError):
    pass


class Unauthorized(common.Unauthorized, GatewayError):
    pass


class ServiceUnavailable(common.ServiceUnavailable, GatewayError):
    pass


class InvalidImage(ValidationFailed):
    code = "invalid_image"


class ImageTooLarge(InvalidImage):
    status_code = 413
    code = "image_too_large"


class UnsupportedImageType(InvalidImage):
    status_code = 415
    code = "unsupported_image_type"


class ExperimentNotFound(NotFound):
    code = "experiment_not_found"


class RatingRejected(Conflict):
    code = "rating_rejected"


class ProviderError(GatewayError):
    """A provider could not produce an image; ``retryable`` says if trying again may help."""

    status_code = 502
    code = "provider_error"

    def __init__(
        self, message_es: str | Sentence, message_en: str | None = None, *, retryable: bool = True
    ):
        super().__init__(message_es, message_en)
        self.retryable = retryable
