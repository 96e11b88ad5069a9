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
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from services.gateway.providers.fakes._state import Asset, FakeState

EXTENSIONS = {"png", "jpg", "jpeg", "webp"}


def _hasura_error(message: str, code: str = "validation-failed", status: int = 400) -> Response:
    return JSONResponse({"error": message, "path": "$", "code": code}, status_code=status)


def _invalid_generation(body: dict[str, Any], state: FakeState) -> str | None:
    """The first reason the real API would refuse this body, or None."""

    def number(name: str, low: float, high: float, source: dict[str, Any] = body) -> str | None:
        value = source.get(name)
        if not isinstance(value, int | float) or isinstance(value, bool):
            return f"Expected a number for {name}"
        if not low <= value <= high:
            return f"{name} must be between {low} and {high}"
        return None

    if not isinstance(body.get("prompt"), str) or not body["prompt"].strip():
        return "prompt is required"
    for name in ("width", "height"):
        value = body.get(name)
        if not isinstance(value, int) or value % 8 or not 32 <= value <= 1536:
            return f"{name} must be a multiple of 8 between 32 and 1536"
    if not isinstance(body.get("num_images"), int) or not 1 <= body["num_images"] <= 8:
        return "num_images must be between 1 and 8"
    if not isinstance(body.get("modelId"), str):
        return "modelId must be a string"
    if (problem := number("init_strength", 0.1, 0.9)) or (
            problem := number("guidance_scale", 1, 20)):
        return problem
    init_id = body.get("init_image_id")
    if init_id not in state.jobs.get("_init_images", {}):
        return "init_image_id does not refer to an uploaded init image"
    controlnets = body.get("controlnets", [])
    if not isinstance(controlnets, list):
        return "controlnets must be a list"
    for controlnet in controlnets:
        if controlnet.get("initImageType") not in ("UPLOADED", "GENERATED"):
            return "initImageType must be UPLOADED or GENERATED"
        if controlnet.get("initImageId") not in state.jobs["_init_images"]:
            return "controlnet initImageId is unknown"
        if not isinstance(controlnet.get("preprocessorId"), int):
            return "preprocessorId must be an integer"
        if (problem := number("weight", 0, 2, controlnet)) is not None:
            return problem
    return None


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
        if (problem := _invalid_generation(body, state)) is not None:
            return _hasura_error(problem)
        key = state.jobs["_init_images"][body["init_image_id"]]
        if key not in state.uploads:
            return _hasura_error("init image was never uploaded", "unexpected")
        generation_id = str(uuid.uuid4())
        state.jobs[generation_id] = {"polls": 0, "init_key": key, "body": body}
        return JSONResponse({"sdGenerationJob": {"generationId": generation_id,
                                                 "apiCreditCost": 12}})

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
        body = job["body"]
        generation: dict[str, Any] = {
            "id": generation_id, "status": "PENDING", "generated_images": [],
            "modelId": body["modelId"], "prompt": body["prompt"],
            "imageWidth": body["width"], "imageHeight": body["height"],
            "initStrength": body["init_strength"], "guidanceScale": body["guidance_scale"]}
        if job["polls"] > state.scenario.pending_polls:
            if state.scenario.fail_generation:
                generation["status"] = "FAILED"
            else:
                name = f"{generation_id}.jpg"
                if name not in state.files:
                    state.files[name] = Asset(state.uploads[job["init_key"]], "image/jpeg",
                                              (body["width"], body["height"]))
                generation["status"] = "COMPLETE"
                generation["generated_images"] = [{
                    "id": str(uuid.uuid4()), "url": f"{state.asset_url}/cdn/{name}",
                    "nsfw": False, "likeCount": 0}]
        return JSONResponse({"generations_by_pk": generation})

    return app
