"""A fake Leonardo AI REST API v1 (the subset the client uses), on loopback.

``POST /api/rest/v1/init-image`` → ``{"uploadInitImage": {id, url, fields (a JSON
string), key}}``; the render is then POSTed as multipart to ``url`` on the asset host
(fields first, ``file`` last, no Authorization — like S3). ``POST
/api/rest/v1/generations`` validates the body the way the real API documents it and
answers ``{"sdGenerationJob": {"generationId", "apiCreditCost"}}``; ``GET
/api/rest/v1/generations/{id}`` answers ``{"generations_by_pk": {status, generated_images
...}}`` with ``PENDING`` for ``scenario.pending_polls`` polls, then ``COMPLETE`` (or
``FAILED``). The "generated" image is the uploaded init image inverted, at the requested
size, so a test can tell the right bytes made the whole trip.

Every generation body is checked against :mod:`.leonardo_contract` (the fields, types,
ranges and ControlNet combinations the public schema and guide document) and refused
like the real API refuses: HTTP 400 ``{"error", "path", "code": "validation-failed"}``.
``GET /me`` and ``GET /generations/user/{userId}`` let a client look up what it
created when an answer was lost.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from services.gateway.providers.fakes._state import Asset, FakeState
from services.gateway.providers.fakes.leonardo_contract import (
    PLATFORM_MODELS,
    generation_problem,
)

USER_ID = "6d3b2ad4-1f6e-4c51-9a0e-2f1a3c4b5d6e"

EXTENSIONS = {"png", "jpg", "jpeg", "webp"}


def _hasura_error(message: str, code: str = "validation-failed", status: int = 400,
                  path: str = "$") -> Response:
    return JSONResponse({"error": message, "path": path, "code": code}, status_code=status)


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")




def leonardo_app(state: FakeState) -> FastAPI:
    app = FastAPI()
    api = "/api/rest/v1"

    def refuse(request: Request) -> Response:
        return state.unauthorised(request, {"error": "Invalid response from authorization hook",
                                            "path": "$", "code": "access-denied"})

    @app.post(f"{api}/init-image")
    async def init_image(request: Request) -> Response:
        body = await request.json()
        await state.record("init-image", request, json=body)
        if not state.authorised(request):
            return refuse(request)
        if (trouble := await state.misbehave("init-image")) is not None:
            return trouble
        extension = str(body.get("extension", "")).lower()
        if extension not in EXTENSIONS:
            return _hasura_error("invalid file extension", "unexpected")
        image_id = str(uuid.uuid4())
        key = f"users/fake/initImages/{image_id}.{extension}"
        fields = {"Content-Type": f"image/{'jpeg' if extension == 'jpg' else extension}",
                  "bucket": "fake-leonardo-bucket", "key": key, "Policy": "ZmFrZS1wb2xpY3k=",
                  "X-Amz-Algorithm": "AWS4-HMAC-SHA256", "X-Amz-Signature": uuid.uuid4().hex}
        state.presigned[key] = fields
        state.jobs.setdefault("_init_images", {})[image_id] = key
        return JSONResponse({"uploadInitImage": {
            "id": image_id, "url": f"{state.asset_url}/s3/upload", "fields": json.dumps(fields),
            "key": key, "__typename": "InitImageUploadOutput"}})

    @app.post(f"{api}/generations")
    async def create(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        await state.record("create", request, json=body)
        if not state.authorised(request):
            return refuse(request)
        if (trouble := await state.misbehave("create")) is not None:
            return trouble
        if not isinstance(body, dict):
            return _hasura_error("body must be a JSON object")
        init_images = state.jobs.setdefault("_init_images", {})
        if (problem := generation_problem(body, set(init_images))) is not None:
            return _hasura_error(problem[1], path=problem[0])
        key = init_images.get(str(body.get("init_image_id")))
        if key is None or key not in state.uploads:
            return _hasura_error("init image was never uploaded", "unexpected")
        generation_id = str(uuid.uuid4())
        seed = body.get("seed") or int(uuid.uuid4().int % 1_000_000_000)
        state.jobs[generation_id] = {"polls": 0, "init_key": key, "body": body, "seed": seed,
                                     "created_at": _now()}
        if (trouble := state.after_work("create")) is not None:
            return trouble
        return JSONResponse({"sdGenerationJob": {"generationId": generation_id,
                                                 "apiCreditCost": 12}})

    @app.get(f"{api}/me")
    async def me(request: Request) -> Response:
        await state.record("me", request)
        if not state.authorised(request):
            return refuse(request)
        if (trouble := await state.misbehave("me")) is not None:
            return trouble
        return JSONResponse({"user_details": [{
            "user": {"id": USER_ID, "username": "fake"}, "subscriptionTokens": 150,
            "apiConcurrencySlots": 10, "apiSubscriptionTokens": 1000}]})

    @app.get(f"{api}/platformModels")
    async def platform_models(request: Request) -> Response:
        await state.record("models", request)
        if not state.authorised(request):
            return refuse(request)
        return JSONResponse({"custom_models": [
            {"id": model_id, "name": name, "description": f"{base} platform model",
             "featured": False, "nsfw": False, "generated_image": None}
            for model_id, (name, base) in PLATFORM_MODELS.items()]})

    @app.get(f"{api}/generations/user/{{user_id}}")
    async def by_user(user_id: str, request: Request) -> Response:
        await state.record("list", request, query=dict(request.query_params))
        if not state.authorised(request):
            return refuse(request)
        if (trouble := await state.misbehave("list")) is not None:
            return trouble
        offset = int(request.query_params.get("offset", 0))
        limit = int(request.query_params.get("limit", 10))
        mine = [gid for gid in state.jobs if not gid.startswith("_")] if (
            user_id == USER_ID) else []
        newest_first = list(reversed(mine))[offset:offset + limit]
        return JSONResponse({"generations": [generation(gid) for gid in newest_first]})

    @app.get(f"{api}/generations/{{generation_id}}")
    async def status(generation_id: str, request: Request) -> Response:
        await state.record("poll", request)
        if not state.authorised(request):
            return refuse(request)
        if (trouble := await state.misbehave("poll")) is not None:
            return trouble
        job = state.jobs.get(generation_id)
        if job is None or generation_id.startswith("_"):
            return JSONResponse({"generations_by_pk": None})
        job["polls"] += 1
        if job["polls"] > state.scenario.pending_polls:
            job["done"] = True
        return JSONResponse({"generations_by_pk": generation(generation_id)})

    def generation(generation_id: str) -> dict[str, Any]:
        job = state.jobs[generation_id]
        body = job["body"]
        generation: dict[str, Any] = {
            "id": generation_id, "status": "PENDING", "generated_images": [],
            "modelId": body.get("modelId"), "prompt": body["prompt"],
            "negativePrompt": body.get("negative_prompt"), "seed": job["seed"],
            "imageWidth": body.get("width", 1024), "imageHeight": body.get("height", 768),
            "initStrength": body.get("init_strength"),
            "guidanceScale": body.get("guidance_scale"), "createdAt": job["created_at"]}
        if job.get("done"):
            if state.scenario.fail_generation:
                generation["status"] = "FAILED"
            else:
                name = f"{generation_id}.jpg"
                if name not in state.files:
                    state.files[name] = Asset(state.uploads[job["init_key"]], "image/jpeg",
                                              (generation["imageWidth"],
                                               generation["imageHeight"]))
                generation["status"] = "COMPLETE"
                generation["generated_images"] = [{
                    "id": str(uuid.uuid4()), "url": f"{state.asset_url}/cdn/{name}",
                    "nsfw": False, "likeCount": 0}]
        return generation

    return app
