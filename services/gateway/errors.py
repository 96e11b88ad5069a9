"""Gateway errors (all subclasses of the common hierarchy, so one handler maps them).

    GatewayError (AfinadorError)
    ├── InvalidImage (415/413/422)   the upload is not an image we accept
    ├── ExperimentNotFound (404)
    ├── RatingRejected (409/422)     the rating contradicts the experiment's state
    └── ProviderError                a generation provider failed (kept on the variant)
"""

from __future__ import annotations

from services.common.errors import AfinadorError, Conflict, NotFound, ValidationFailed


class GatewayError(AfinadorError):
    pass


class InvalidImage(ValidationFailed, GatewayError):
    code = "invalid_image"


class ImageTooLarge(InvalidImage):
    status_code = 413
    code = "image_too_large"


class UnsupportedImageType(InvalidImage):
    status_code = 415
    code = "unsupported_image_type"


class ExperimentNotFound(NotFound, GatewayError):
    code = "experiment_not_found"


class RatingRejected(Conflict, GatewayError):
    code = "rating_rejected"


class ProviderError(GatewayError):
    """A provider could not produce an image; ``retryable`` says if trying again may help."""

    status_code = 502
    code = "provider_error"

    def __init__(self, message_es: str, message_en: str | None = None, *, retryable: bool = True):
        super().__init__(message_es, message_en)
        self.retryable = retryable
