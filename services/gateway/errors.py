"""Gateway errors (all subclasses of the common hierarchy, so one handler maps them).

    GatewayError (AfinadorError)
    ├── ExperimentNotFound (404)
    ├── RatingRejected (409/422)     the rating contradicts the experiment's state
    └── ProviderError                a generation provider failed (kept on the variant)

Uploads that are not an image we accept raise the shared ``InvalidImage`` (422),
``ImageTooLarge`` (413) or ``UnsupportedImageType`` (415) of :mod:`services.common.errors`,
and a missing or unreachable image store the shared ``BlobNotFound`` (404) or
``BlobStoreUnavailable`` (503): one decoder and one blob store serve every service.
"""

from __future__ import annotations

from services.common.errors import AfinadorError, Conflict, NotFound


class GatewayError(AfinadorError):
    pass


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
