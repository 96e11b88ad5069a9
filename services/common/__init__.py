"""Plumbing every Afinador service shares: settings, database, migrations, logging,
errors, service-token auth and the internal HTTP client. No business logic lives here.
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
