"""Plumbing every Afinador service shares: settings, database, migrations, logging,
errors, service-token auth, the internal HTTP client, blob stores (:mod:`.blobs`) and
the image decoder (:mod:`.images`). No business logic lives here.
"""

from services.common.errors import AfinadorError, NotFound, ServiceUnavailable, ValidationFailed
from services.common.settings import ServiceSettings

__all__ = [
    "AfinadorError",
    "NotFound",
    "ServiceSettings",
    "ServiceUnavailable",
    "ValidationFailed",
]
