"""Serves stored images to the browser through the gateway (storage stays private)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from services.gateway.api.deps import ContextDep, require_user
from services.gateway.errors import GatewayNotFound
from services.gateway.models import Image

router = APIRouter(tags=["images"], dependencies=[Depends(require_user)])


@router.get("/images/{image_id}")
async def get_image(image_id: str, ctx: ContextDep) -> Response:
    async with ctx.sessions() as session:
        image = await session.get(Image, image_id)
    if image is None:
        raise GatewayNotFound.because("image", image=image_id)
    data = await ctx.blobs.get(image.blob_key)
    return Response(data, media_type=image.content_type,
                    headers={"Cache-Control": "private, max-age=86400, immutable"})
