"""A fake Replicate HTTP API (predictions and files), on loopback.

``POST /v1/predictions`` (``{"version", "input"}``) and ``POST
/v1/models/{owner}/{name}/predictions`` (``{"input"}``) answer 201 with a prediction
object (``id, model, version, input, status, output, error, logs, metrics, urls{get,
cancel}``); ``Prefer: wait[=n]`` is honoured as ``scenario.prefer_wait`` says. ``GET
/v1/predictions/{id}`` moves it ``starting → processing → succeeded`` (or ``failed`` /
``canceled``); ``POST /v1/predictions/{id}/cancel`` cancels; ``POST /v1/files`` takes a
multipart ``content`` and answers ``{id, urls: {get}}``. Inputs are validated like a
model's schema would (422 with ``detail`` and ``invalid_fields``) against
:mod:`.replicate_contract`: an unknown version is refused, a community model called by
name answers 404 (only ``scenario.official_models`` have that endpoint), and a
``Cancel-After`` header must be a valid duration. ``GET /v1/predictions`` lists
predictions newest first, without their input. The output is the input image
inverted, as PNG on the asset host (another origin, like replicate.delivery).
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from services.gateway.providers.fakes._state import Asset, FakeState
from services.gateway.providers.fakes.replicate_contract import (
    MODEL,
    NOT_FOUND,
    SCHEMAS,
    UNKNOWN_VERSION,
    cancel_after_seconds,
    input_problem,
    input_schema,
)


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def replicate_app(state: FakeState) -> FastAPI:
    app = FastAPI()

    def refuse(request: Request) -> Response:
        return state.unauthorised(request, {
            "title": "Unauthenticated", "status": 401,
            "detail": "You did not pass a valid authentication token"})

    def invalid(field: str, message: str) -> Response:
        return JSONResponse({"title": "Input validation failed", "status": 422,
                             "detail": f"- input.{field}: {message}",
                             "invalid_fields": [{"type": "invalid", "field": f"input.{field}",
                                                 "description": message}]}, status_code=422)

    def prediction(prediction_id: str) -> dict[str, Any]:
        job = state.jobs[prediction_id]
        get = f"{state.api_url}/v1/predictions/{prediction_id}"
        return {"id": prediction_id, "model": job["model"], "version": job["version"],
                "input": job["input"], "logs": "", "status": job["status"],
                "output": job.get("output"), "error": job.get("error"),
                "metrics": job.get("metrics", {}), "created_at": job["created_at"],
                "data_removed": False, "urls": {"get": get, "cancel": f"{get}/cancel"}}

    def source_image(image: Any) -> bytes | None:
        if not isinstance(image, str):
            return None
        if image.startswith("data:"):
            try:
                return base64.b64decode(image.split(",", 1)[1], validate=True)
            except (IndexError, binascii.Error):
                return None
        prefix = f"{state.api_url}/v1/files/"
        return state.uploads.get(image[len(prefix):]) if image.startswith(prefix) else None

    def finish(prediction_id: str) -> None:
        job = state.jobs[prediction_id]
        scenario = state.scenario
        if scenario.cancel_remotely:
            job.update(status="canceled")
        elif scenario.fail_generation:
            error = (scenario.fail_generation if isinstance(scenario.fail_generation, str)
                     else "Prediction failed.")
            job.update(status="failed", error=error)
        else:
            job.update(status="succeeded", output=[publish(prediction_id)],
                       metrics={"predict_time": 4.2, "total_time": 5.0})

    def publish(prediction_id: str) -> str:
        name = f"{prediction_id}.png"
        if name not in state.files:
            state.files[name] = Asset(state.jobs[prediction_id]["source"], "image/png")
        return f"{state.asset_url}/cdn/{name}"

    async def create(request: Request, model: str | None) -> Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        await state.record("create", request, json=body)
        if not state.authorised(request):
            return refuse(request)
        if (trouble := await state.misbehave("create")) is not None:
            return trouble
        if model is not None and model not in state.scenario.official_models:
            return JSONResponse(NOT_FOUND, status_code=404)  # a community model, by name
        if not isinstance(body, dict) or not isinstance(body.get("input"), dict):
            return JSONResponse({"title": "Invalid request", "status": 422,
                                 "detail": "input is required"}, status_code=422)
        version = (state.scenario.official_models[model] if model is not None
                   else body.get("version"))
        if not isinstance(version, str) or not version:
            return JSONResponse({"title": "Invalid version", "status": 422,
                                 "detail": "version is required"}, status_code=422)
        if version not in SCHEMAS:
            return JSONResponse({"title": "Invalid version", "status": 422,
                                 "detail": UNKNOWN_VERSION}, status_code=422)
        cancel_after = request.headers.get("cancel-after")
        if cancel_after is not None and cancel_after_seconds(cancel_after) is None:
            return JSONResponse({"title": "Invalid header", "status": 422,
                                 "detail": f"Invalid Cancel-After duration {cancel_after!r} "
                                           "(e.g. 90s, 5m; at least 5s)"}, status_code=422)
        inputs = body["input"]
        if (problem := input_problem(inputs, SCHEMAS[version])) is not None:
            return invalid(*problem)
        source = source_image(inputs.get("image"))
        if source is None:
            return invalid("image", "Does not match format 'uri' or is not a reachable file")
        prediction_id = uuid.uuid4().hex[:26]
        state.jobs[prediction_id] = {
            "status": "starting", "polls": 0, "source": source, "input": inputs,
            "model": model or "fofr/sdxl-multi-controlnet-lora", "version": version,
            "created_at": _now(), "cancel_after": cancel_after}
        prefer = (request.headers.get("prefer") or "").strip()
        if prefer.startswith("wait") and state.scenario.prefer_wait == "complete":
            finish(prediction_id)
        elif prefer.startswith("wait") and state.scenario.prefer_wait == "output-early":
            state.jobs[prediction_id].update(status="processing",
                                             output=[publish(prediction_id)])
        if (trouble := state.after_work("create")) is not None:
            return trouble
        answer = prediction(prediction_id)
        return JSONResponse(answer, status_code=201, headers={"Location": answer["urls"]["get"]})

    @app.post("/v1/predictions")
    async def create_for_version(request: Request) -> Response:
        return await create(request, None)

    @app.post("/v1/models/{owner}/{name}/predictions")
    async def create_for_model(owner: str, name: str, request: Request) -> Response:
        return await create(request, f"{owner}/{name}")

    @app.get("/v1/models/{owner}/{name}/versions/{version_id}")
    async def version(owner: str, name: str, version_id: str, request: Request) -> Response:
        await state.record("version", request)
        if not state.authorised(request):
            return refuse(request)
        if version_id not in SCHEMAS or f"{owner}/{name}" != MODEL:
            return JSONResponse(NOT_FOUND, status_code=404)
        return JSONResponse({"id": version_id, "created_at": "2024-01-09T10:00:00Z",
                             "cog_version": "0.8.6", "openapi_schema": {"components": {
                                 "schemas": {"Input": input_schema(SCHEMAS[version_id])}}}})

    @app.get("/v1/predictions")
    async def listing(request: Request) -> Response:
        await state.record("list", request)
        if not state.authorised(request):
            return refuse(request)
        if (trouble := await state.misbehave("list")) is not None:
            return trouble
        newest_first = [pid for pid in reversed(list(state.jobs))]
        results = []
        for pid in newest_first:
            listed = prediction(pid)
            listed.pop("input")  # [API] input is optional on a listed prediction
            listed["source"] = "api"
            results.append(listed)
        return JSONResponse({"next": None, "previous": None, "results": results})

    @app.get("/v1/predictions/{prediction_id}")
    async def get(prediction_id: str, request: Request) -> Response:
        await state.record("poll", request)
        if not state.authorised(request):
            return refuse(request)
        if (trouble := await state.misbehave("poll")) is not None:
            return trouble
        job = state.jobs.get(prediction_id)
        if job is None:
            return JSONResponse({"title": "Not found", "status": 404, "detail": "Not found."},
                                status_code=404)
        job["polls"] += 1
        if job["status"] in ("starting", "processing"):
            if job["polls"] > state.scenario.pending_polls:
                finish(prediction_id)
            elif job["polls"] > state.scenario.pending_polls // 2:
                job["status"] = "processing"  # the first half of the wait is a cold start
        return JSONResponse(prediction(prediction_id))

    @app.post("/v1/predictions/{prediction_id}/cancel")
    async def cancel(prediction_id: str, request: Request) -> Response:
        await state.record("cancel", request)
        if not state.authorised(request):
            return refuse(request)
        if (trouble := await state.misbehave("cancel")) is not None:
            return trouble
        job = state.jobs.get(prediction_id)
        if job is None:
            return JSONResponse({"detail": "Not found."}, status_code=404)
        if job["status"] in ("starting", "processing"):
            job["status"] = "canceled"
        return JSONResponse(prediction(prediction_id))

    @app.post("/v1/files")
    async def upload(request: Request) -> Response:
        form = await request.form()
        await state.record("files", request, fields=sorted(form.keys()))
        if not state.authorised(request):
            return refuse(request)
        if (trouble := await state.misbehave("files")) is not None:
            return trouble
        content = form.get("content")
        if content is None or isinstance(content, str):
            return JSONResponse({"title": "Invalid file", "status": 422,
                                 "detail": "content is required"}, status_code=422)
        data = await content.read()
        file_id = uuid.uuid4().hex[:26]
        state.uploads[file_id] = data
        return JSONResponse({"id": file_id, "name": content.filename,
                             "content_type": content.content_type, "size": len(data),
                             "created_at": _now(),
                             "urls": {"get": f"{state.api_url}/v1/files/{file_id}"}},
                            status_code=201)

    return app
