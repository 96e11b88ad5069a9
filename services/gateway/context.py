"""What the gateway's domain functions need, bundled once at start-up.

``Context`` is built by :func:`services.gateway.main.create_app` and handed to every
domain module (experiments, ratings, reports, selection); none of them know about
HTTP. Routers get it through :data:`services.gateway.api.deps.ContextDep`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.blobs import BlobStore
from services.gateway.clients import ServiceClients
from services.gateway.jobs import JobRunner
from services.gateway.outbox import OutboxDeliverer
from services.gateway.providers import Provider
from services.gateway.settings import GatewaySettings


@dataclass
class Context:
    settings: GatewaySettings
    sessions: async_sessionmaker[AsyncSession]
    blobs: BlobStore
    clients: ServiceClients
    providers: dict[str, Provider]
    jobs: JobRunner
    outbox: OutboxDeliverer

    def provider_label(self, provider: str, lang: str = "es") -> str:
        """The provider's name as a trainer reads it, in ``lang``."""
        impl = self.providers.get(provider)
        if impl is None:
            return provider
        return impl.label_en if lang == "en" else impl.label_es


def image_url(image_id: str) -> str:
    """Where the browser fetches a stored image (served by ``api/images.py``)."""
    return f"/images/{image_id}"
