"""Gateway errors (all subclasses of the common hierarchy, so one handler maps them).

    GatewayError (AfinadorError)     sentences from web/locales/errors.<lang>.json
    ├── InvalidRequest (422)         the gateway's own raising of the common kinds
    ├── GatewayNotFound (404)        (ValidationFailed, NotFound, Conflict, Unauthorized,
    ├── GatewayConflict (409)        ServiceUnavailable): same code and status, and
    ├── GatewayUnauthorized (401)    caught as the common kind, but said from the
    ├── GatewayUnavailable (503)     gateway's catalogue
    ├── ExperimentNotFound (404)
    ├── RatingRejected (409/422)     the rating contradicts the experiment's state
    └── ProviderError                a generation provider failed (kept on the variant)

Uploads that are not an image we accept raise the shared ``InvalidImage`` (422),
``ImageTooLarge`` (413) or ``UnsupportedImageType`` (415) of :mod:`services.common.errors`,
and a missing or unreachable image store the shared ``BlobNotFound`` (404) or
``BlobStoreUnavailable`` (503): one decoder and one blob store serve every service.

The gateway's sentences live with the pages' texts, so a page and the JSON API say the
same thing: ``raise RatingRejected.because("already_rated", option="A")`` reads the key
``rating_rejected.already_rated`` there, and keys it lacks in the common catalogue.
Catch the common kinds (``except ServiceUnavailable`` from :mod:`services.common.errors`):
they cover these and what the shared clients raise.
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


class InvalidRequest(common.ValidationFailed, GatewayError):
    """The request's values are wrong (422, ``validation_failed``)."""


class GatewayNotFound(common.NotFound, GatewayError):
    """The thing named does not exist (404, ``not_found``)."""


class GatewayConflict(common.Conflict, GatewayError):
    """The request contradicts the current state (409, ``conflict``)."""


class GatewayUnauthorized(common.Unauthorized, GatewayError):
    """Not signed in, or not allowed (401, ``unauthorized``; subclasses say 403/429)."""


class GatewayUnavailable(common.ServiceUnavailable, GatewayError):
    """A sibling service the page needs is down (503, ``service_unavailable``)."""


class ExperimentNotFound(GatewayNotFound):
    code = "experiment_not_found"


class RatingRejected(GatewayConflict):
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
