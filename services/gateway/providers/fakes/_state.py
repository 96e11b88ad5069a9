"""What a fake provider remembers and how it misbehaves; the asset host (S3 + CDN)."""

from __future__ import annotations

import asyncio
import io
import threading
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from PIL import Image, ImageOps

FAULTS = ("429", "500", "502", "503", "slow", "malformed", "404", "422", "error-200",
          "expired", "500-created")
"""Fault kinds a scenario can script per route (one consumed per request).

``500-created`` does the work (creates the generation) and *then* answers 500, as a
proxy failing after the service acted would; ``expired`` is S3's 403 for a presigned
upload whose signature has expired."""


@dataclass
class Scenario:
    """What the fake does wrong.

    ``faults`` maps a route name to the faults its next requests get, in order, e.g.
    ``{"create": ["429", "500"]}``: the first create answers 429, the second 500, the
    third works. Routes: Leonardo ``init-image``, ``upload``, ``create``, ``poll``,
    ``me``, ``list``, ``download``; Replicate ``files``, ``create``, ``poll``, ``list``,
    ``cancel``, ``download``.
    Fault kinds are :data:`FAULTS` ("slow" answers normally after ``slow_seconds``).
    """

    api_key: str = "test-key"
    faults: dict[str, list[str]] = field(default_factory=dict)
    retry_after: str | None = "0"  # the Retry-After header of a 429 (None: no header)
    slow_seconds: float = 1.0
    pending_polls: int = 2  # non-final status answers before the job ends
    fail_generation: bool | str = False  # True, or the error text (Replicate)
    cancel_remotely: bool = False  # Replicate: the prediction ends "canceled"
    image_404: bool = False  # every result download answers 404
    prefer_wait: str = "ignore"  # Replicate "Prefer: wait": ignore | complete | output-early
    echo_auth_in_errors: bool = False  # 401 bodies quote the Authorization header
    # Replicate: official models (callable by name) → the version whose schema applies
    official_models: dict[str, str] = field(default_factory=dict)


@dataclass
class Asset:
    """A result on the CDN, rendered on first download (off the server's event loop)."""

    source: bytes
    content_type: str
    size: tuple[int, int] | None = None
    body: bytes | None = None

    async def render(self) -> bytes:
        if self.body is None:
            fmt = "PNG" if self.content_type == "image/png" else "JPEG"
            self.body = await asyncio.to_thread(inverted, self.source, self.size, fmt)
        return self.body


@dataclass
class FakeState:
    """Everything a fake received and holds. Written by the server thread, read by tests."""

    scenario: Scenario = field(default_factory=Scenario)
    requests: list[dict[str, Any]] = field(default_factory=list)
    uploads: dict[str, bytes] = field(default_factory=dict)  # init images / files by id
    presigned: dict[str, dict[str, str]] = field(default_factory=dict)  # S3 key → fields
    files: dict[str, Asset] = field(default_factory=dict)  # what the CDN serves, by name
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    after: dict[str, str] = field(default_factory=dict)  # faults applied after the work
    api_url: str = ""
    asset_url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self, scenario: Scenario | None = None) -> None:
        with self.lock:
            self.scenario = scenario or Scenario()
            for store in (self.requests, self.uploads, self.presigned, self.files, self.jobs,
                          self.after):
                store.clear()

    async def record(self, route: str, request: Request, **extra: Any) -> dict[str, Any]:
        entry = {"route": route, "method": request.method, "path": request.url.path,
                 "auth": request.headers.get("authorization"),
                 "prefer": request.headers.get("prefer"),
                 "cancel_after": request.headers.get("cancel-after"),
                 "content_type": request.headers.get("content-type"), **extra}
        with self.lock:
            self.requests.append(entry)
        return entry

    def calls(self, route: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["route"] == route]

    def authorised(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.scenario.api_key}"

    def next_fault(self, route: str) -> str | None:
        with self.lock:
            queue = self.scenario.faults.get(route)
            return queue.pop(0) if queue else None

    async def misbehave(self, route: str) -> Response | None:
        """Apply the route's next scripted fault; None means answer normally."""
        fault = self.next_fault(route)
        if fault is None:
            return None
        if fault == "slow":
            await asyncio.sleep(self.scenario.slow_seconds)
            return None
        if fault == "500-created":
            with self.lock:
                self.after[route] = fault
            return None
        if fault == "expired":  # S3's answer to a presigned POST past its expiry
            return Response("<Error><Code>AccessDenied</Code><Message>Request has expired"
                            "</Message></Error>", status_code=403, media_type="application/xml")
        if fault == "429":
            headers = {} if self.scenario.retry_after is None else {
                "Retry-After": self.scenario.retry_after}
            return JSONResponse({"detail": "Request was throttled. Expected available in 1 "
                                           "second."}, status_code=429, headers=headers)
        if fault in ("500", "502", "503"):
            return JSONResponse({"detail": "Internal server error"}, status_code=int(fault))
        if fault == "malformed":
            return Response('{"status": "processing", "id": ', media_type="application/json")
        if fault == "404":
            return Response("<Error><Code>NoSuchKey</Code></Error>", status_code=404,
                            media_type="application/xml")
        if fault == "422":  # Replicate's answer to an input its model schema refuses
            return JSONResponse({"title": "Input validation failed", "status": 422,
                                 "detail": "- input.image: image is too large for this model"},
                                status_code=422)
        if fault == "error-200":  # Leonardo's GraphQL layer answers errors with 200
            return JSONResponse({"error": "Expected a number for type Float but found a string",
                                 "path": "$", "code": "validation-failed"})
        raise ValueError(f"unknown fault {fault!r}; known: {FAULTS}")

    def after_work(self, route: str) -> Response | None:
        """The fault to answer with once the work is done (``500-created``), if any."""
        with self.lock:
            fault = self.after.pop(route, None)
        if fault is None:
            return None
        return JSONResponse({"detail": "Internal server error"}, status_code=500)

    def unauthorised(self, request: Request, body: dict[str, Any]) -> Response:
        if self.scenario.echo_auth_in_errors:
            body = {**body, "received": request.headers.get("authorization")}
        return JSONResponse(body, status_code=401)


def inverted(data: bytes, size: tuple[int, int] | None = None, fmt: str = "JPEG") -> bytes:
    """The fake 'generation': the source image, inverted (and resized), re-encoded."""
    image = ImageOps.invert(Image.open(io.BytesIO(data)).convert("RGB"))
    if size is not None and image.size != size:
        image = image.resize(size)
    out = io.BytesIO()
    image.save(out, format=fmt, **({"compress_level": 1} if fmt == "PNG" else {"quality": 90}))
    return out.getvalue()


def assets_app(state: FakeState) -> FastAPI:
    """The asset host: an S3 bucket taking presigned POST uploads, and the CDN.

    It runs on its own port (another origin than the API), and like S3 it refuses a
    request that also carries an ``Authorization`` header.
    """
    app = FastAPI()
    two_auths = Response("<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism "
                         "allowed</Message></Error>", status_code=400, media_type="application/xml")

    @app.post("/s3/upload")
    async def s3_upload(request: Request) -> Response:
        form = await request.form()
        names = list(form.keys())
        await state.record("upload", request, form={k: v for k, v in form.items()
                                                    if isinstance(v, str)}, order=names)
        if request.headers.get("authorization"):
            return two_auths
        if (trouble := await state.misbehave("upload")) is not None:
            return trouble
        expected = state.presigned.get(str(form.get("key")))
        upload = form.get("file")
        if (expected is None or any(form.get(k) != v for k, v in expected.items())
                or upload is None or isinstance(upload, str) or names[-1] != "file"):
            return Response("<Error><Code>AccessDenied</Code><Message>Invalid according to "
                            "Policy</Message></Error>", status_code=403,
                            media_type="application/xml")
        state.uploads[expected["key"]] = await upload.read()
        return Response(status_code=204)

    @app.get("/cdn/{name}")
    async def cdn(name: str, request: Request) -> Response:
        await state.record("download", request)
        if request.headers.get("authorization"):
            return two_auths
        if (trouble := await state.misbehave("download")) is not None:
            return trouble
        if state.scenario.image_404 or name not in state.files:
            return Response("<Error><Code>NoSuchKey</Code></Error>", status_code=404,
                            media_type="application/xml")
        asset = state.files[name]
        return Response(await asset.render(), media_type=asset.content_type)

    return app


class RecordingProgress:
    """A progress callback that remembers ``(stage, fraction)`` reports."""

    def __init__(self) -> None:
        self.reports: list[tuple[str, float]] = []

    async def __call__(self, stage: str, fraction: float) -> None:
        self.reports.append((stage, fraction))

    @property
    def stages(self) -> list[str]:
        """Distinct consecutive stages, in order."""
        out: list[str] = []
        for stage, _ in self.reports:
            if not out or out[-1] != stage:
                out.append(stage)
        return out


class RecordingSleep:
    """An ``asyncio.sleep`` stand-in that records delays and yields without waiting.

    It is also a clock: :meth:`monotonic` is the sum of the delays slept so far, so a
    provider given both sees time pass only when it sleeps (deadlines without waiting).
    """

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)

    def monotonic(self) -> float:
        return float(sum(self.delays))
