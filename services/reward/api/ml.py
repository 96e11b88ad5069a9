"""``/ml/*`` routes: parse the request, call the domain function, shape the answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, File, Form, Query, Request, UploadFile
from pydantic import TypeAdapter, ValidationError

from services.common.app import SessionDep
from services.common.db import transaction
from services.reward import store
from services.reward.api.deps import ExtractorDep, RuntimeDep, SettingsDep
from services.reward.errors import InvalidRequest, RunNotFound
from services.reward.extraction import ImageLimits, features_for_image
from services.reward.features import FeatureVector
from services.reward.models import ModelVersion, TrainingRun
from services.reward.observations import BatchItem, Label, record_batch, record_observation
from services.reward.prediction import predict_ratings
from services.reward.registry import rollback as rollback_to
from services.reward.schemas import (
    AuditEntryPublic,
    AuditResponse,
    BestOfN,
    ClipStatus,
    ExtractFeaturesResponse,
    FeatureGroups,
    GateResult,
    HeldOutMetrics,
    ModelsResponse,
    ModelVersionPublic,
    ObservationForm,
    ObservationItem,
    ObserveBatchResponse,
    ObserveItemResult,
    ObserveResponse,
    Prediction,
    PredictResponse,
    RollbackRequest,
    RollbackResponse,
    StatusResponse,
    TrainAccepted,
    TrainResult,
    TrainRunStatus,
)
from services.reward.settings import RewardSettings

router = APIRouter(prefix="/ml", tags=["ml"])

ImageFile = Annotated[UploadFile, File(description="The image: PNG, JPEG, WebP…")]
OriginalFile = Annotated[
    UploadFile | None,
    File(description="Optional: the original render the image(s) were made from."),
]


async def _read_upload(upload: UploadFile, settings: RewardSettings) -> bytes:
    # One byte past the limit is enough to know it is too large.
    return await upload.read(settings.max_image_bytes + 1)


@router.post("/extract_features", response_model=ExtractFeaturesResponse)
async def extract_features(
    image: ImageFile, session: SessionDep, settings: SettingsDep, extractor: ExtractorDep
) -> ExtractFeaturesResponse:
    """Classical feature vector of an uploaded image (cached by content hash)."""
    data = await _read_upload(image, settings)
    result = await features_for_image(session, data, extractor, ImageLimits.from_settings(settings))
    vector: FeatureVector = result.vector
    return ExtractFeaturesResponse(
        feature_version=vector.version,
        feature_names=list(vector.names),
        features=list(vector.values),
        groups=FeatureGroups.model_validate(vector.groups()),
        dims=len(vector.values),
        image_sha256=result.image_sha256,
        width=result.width,
        height=result.height,
        cached=result.cached,
    )


@router.post("/observe", response_model=ObserveResponse)
async def observe(
    request: Request,
    form: Annotated[ObservationForm, Form()],
    image: ImageFile,
    settings: SettingsDep,
    extractor: ExtractorDep,
    runtime: RuntimeDep,
    original: OriginalFile = None,
) -> ObserveResponse:
    """Store a labelled image, once per ``rating_id`` (redeliveries answer stored=false).

    The optional ``original`` adds structure-preservation features. After the
    observation is committed, a background retraining may start.
    """
    data = await _read_upload(image, settings)
    original_data = await _read_upload(original, settings) if original is not None else None
    async with transaction(request.app.state.sessions) as session:
        result = await record_observation(
            session,
            Label(**form.model_dump()),
            data,
            extractor,
            ImageLimits.from_settings(settings),
            original=original_data,
            ctx=runtime.ctx,
            images=runtime.images,
        )
    if result.stored:
        runtime.trainer.notify()
    return ObserveResponse(stored=result.stored, observations=result.observations)


_ITEMS = TypeAdapter(list[ObservationItem])


@router.post("/observe_batch", response_model=ObserveBatchResponse)
async def observe_batch(
    request: Request,
    observations: Annotated[
        str,
        Form(
            description="JSON array of 1 to REWARD_MAX_OBSERVE_BATCH (32) items, each with "
            "the fields of /ml/observe and optionally ``original``: the index of its render "
            "in ``originals``."
        ),
    ],
    images: Annotated[list[UploadFile], File(description="One image per item, in the same order.")],
    settings: SettingsDep,
    extractor: ExtractorDep,
    runtime: RuntimeDep,
    originals: Annotated[
        list[UploadFile] | None,
        File(description="Original renders, referenced by index from the items."),
    ] = None,
) -> ObserveBatchResponse:
    """Store several labelled images at once (the gateway's outbox, when several are due).

    Each item is stored once per ``rating_id`` like ``/ml/observe``, in its own
    transaction: an item whose image or values are refused comes back ``rejected``
    with the error and the others are stored. 422 when the request itself is wrong
    (bad JSON, more items than allowed, image count or original index mismatch).
    """
    try:
        items = _ITEMS.validate_json(observations)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidRequest.because("observations", problems=problems) from exc
    limit = settings.max_observe_batch
    originals = originals or []
    if not 1 <= len(items) <= limit or len(images) != len(items):
        raise InvalidRequest.because("observation_count", limit=limit, items=len(items),
                                     images=len(images))
    bad = [
        i
        for i, item in enumerate(items)
        if item.original is not None and item.original >= len(originals)
    ]
    if bad:
        raise InvalidRequest.because("original_missing", observations=bad,
                                     originals=len(originals))
    original_bytes = [await _read_upload(o, settings) for o in originals]
    batch = [
        BatchItem(
            Label(**item.model_dump(exclude={"original"})),
            await _read_upload(image, settings),
            original_bytes[item.original] if item.original is not None else None,
        )
        for item, image in zip(items, images, strict=True)
    ]
    outcomes, total = await record_batch(
        request.app.state.sessions,
        batch,
        extractor,
        ImageLimits.from_settings(settings),
        ctx=runtime.ctx,
        images=runtime.images,
    )
    stored = sum(o.status == "stored" for o in outcomes)
    if stored:
        runtime.trainer.notify()
    return ObserveBatchResponse(
        results=[
            ObserveItemResult(index=i, rating_id=item.rating_id, status=o.status, error=o.error)  # type: ignore[arg-type]
            for i, (item, o) in enumerate(zip(items, outcomes, strict=True))
        ],
        stored=stored,
        observations=total,
    )


@router.post("/predict_rating", response_model=PredictResponse)
async def predict_rating(
    images: Annotated[list[UploadFile], File(description="One or more candidate images.")],
    session: SessionDep,
    settings: SettingsDep,
    runtime: RuntimeDep,
    original: OriginalFile = None,
    version: Annotated[
        str | None, Query(description="Score with this version instead of the active one.")
    ] = None,
) -> PredictResponse:
    """Predicted rating (mean and standard deviation, 1–5 stars) of each image.

    409 ``no_validated_model`` while no validated model is active.
    """
    datas = [await _read_upload(upload, settings) for upload in images]
    original_data = await _read_upload(original, settings) if original is not None else None
    scores = await predict_ratings(
        session,
        runtime.ctx,
        runtime.registry,
        datas,
        original_data,
        version=version,
        max_batch=settings.max_batch,
    )
    return PredictResponse(
        model_version=scores.model_version,
        validated=scores.validated,
        predictions=[
            Prediction(index=p.index, mean=p.mean, std=p.std, image_sha256=p.image_sha256)
            for p in scores.predictions
        ],
    )


@router.post("/train", response_model=TrainAccepted, status_code=202)
async def train(request: Request, runtime: RuntimeDep) -> TrainAccepted:
    """Start training a new version in the background (202 with the run to follow).

    If a training is already queued or running (on any replica), its run is returned
    with ``existing: true`` instead of starting another. Follow it with
    ``GET /ml/train/{run_id}``: a run with too few observations ends ``failed`` with
    code ``not_enough_data``.
    """
    run, existing = await runtime.trainer.request(trigger="manual")
    return TrainAccepted(
        run_id=run.id,
        status=run.status,
        existing=existing,
        status_url=str(request.url_for("training_run", run_id=run.id).path),
    )


@router.get("/train/{run_id}", response_model=TrainRunStatus, name="training_run")
async def training_run(run_id: str, session: SessionDep, runtime: RuntimeDep) -> TrainRunStatus:
    """Stage, progress and (when finished) the version, its figures and the gate's result."""
    run = await store.get_run(session, run_id)
    if run is None:
        raise RunNotFound.because(run=run_id)
    return _run_public(run, runtime.trainer.progress_of(run_id))


def _run_public(run: TrainingRun, live: tuple[str, float] | None) -> TrainRunStatus:
    stage, progress = (run.stage, run.progress)
    if live is not None and run.status in ("queued", "running") and live[1] >= progress:
        stage, progress = live
    return TrainRunStatus(
        run_id=run.id,
        trigger=run.trigger,
        status=run.status,  # type: ignore[arg-type]
        stage=stage,
        progress=round(min(max(progress, 0.0), 1.0), 4),
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        version=run.version,
        result=TrainResult.model_validate(run.result) if run.result else None,
        error=run.error,
    )


@router.get("/audit", response_model=AuditResponse)
async def audit(
    session: SessionDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> AuditResponse:
    """Gate decisions and rollbacks, newest first, with their figures."""
    entries = await store.list_audit(session, limit)
    return AuditResponse(
        entries=[AuditEntryPublic.model_validate(e, from_attributes=True) for e in entries]
    )


@router.post("/models/rollback", response_model=RollbackResponse)
async def rollback(
    session: SessionDep,
    body: Annotated[RollbackRequest | None, Body()] = None,
) -> RollbackResponse:
    """Activate an earlier validated version (default: the previously active one)."""
    active, previous = await rollback_to(
        session,
        body.version if body else None,
        actor=(body.actor if body else None) or "api",
        reason=(body.reason if body else None) or "",
    )
    return RollbackResponse(active=active, previous=previous)


@router.get("/status", response_model=StatusResponse)
async def status(
    session: SessionDep, extractor: ExtractorDep, settings: SettingsDep, runtime: RuntimeDep
) -> StatusResponse:
    """Samples stored so far, the active model and whether it can score images."""
    histogram = await store.ratings_histogram(session)
    active = await store.get_active_model(session)
    since = await store.last_trained_through(session)
    latest = await store.latest_run(session)
    ready = active is not None and active.validated
    return StatusResponse(
        observations=sum(histogram.values()),
        ratings_histogram={str(stars): n for stars, n in histogram.items()},
        feature_version=extractor.version,
        feature_dims=len(extractor.names),
        model=active.version if active else None,
        ready_for_inference=ready,
        model_version=active.version if active else None,
        validated=bool(active and active.validated),
        feature_set=active.feature_set if active else None,
        heldout_metrics=HeldOutMetrics(**active.metrics) if active else None,
        n_train=active.n_train if active else None,
        new_observations=await store.count_observations_after(session, since),
        retrain_every=settings.retrain_every,
        training=runtime.trainer.running,
        last_training_error=runtime.trainer.last_error,
        best_of_n=_best_of_n(active) if ready and active is not None else None,
        last_training_run=latest.id if latest is not None else None,
    )


def _best_of_n(row: ModelVersion) -> BestOfN | None:
    m = row.metrics
    if m.get("best_of_n_gain") is None:
        return None
    return BestOfN(
        gain=m["best_of_n_gain"],
        low=m["best_of_n_low"],
        high=m["best_of_n_high"],
        oracle=m.get("best_of_n_oracle"),
        sets=m.get("best_of_n_sets", 0),
        model_version=row.version,
    )


def _public(row: ModelVersion) -> ModelVersionPublic:
    baseline = row.baseline or {}
    return ModelVersionPublic(
        version=row.version,
        status=row.status,
        validated=row.validated,
        kind=row.kind,
        feature_set=row.feature_set,
        feature_version=row.feature_version,
        n_train=row.n_train,
        n_holdout=row.n_holdout,
        metrics=HeldOutMetrics(**row.metrics),
        baseline=row.baseline,
        reason=row.reason,
        trigger=row.trigger,
        created_at=row.created_at,
        activated_at=row.activated_at,
        gate=GateResult.model_validate(baseline["gate"]) if baseline.get("gate") else None,
        incumbent=baseline.get("incumbent"),
        incumbent_metrics=(
            HeldOutMetrics(**baseline["incumbent_metrics"])
            if baseline.get("incumbent_metrics")
            else None
        ),
    )


@router.get("/models", response_model=ModelsResponse)
async def models(session: SessionDep, runtime: RuntimeDep) -> ModelsResponse:
    """Every model version (newest first), the active one, and whether CLIP is on."""
    rows = await store.list_models(session)
    active = next((r.version for r in rows if r.status == "active"), None)
    return ModelsResponse(
        active=active,
        models=[r.version for r in rows],
        feature_set=runtime.feature_set,
        clip=ClipStatus(available=runtime.ctx.clip is not None, reason=runtime.clip_reason),
        versions=[_public(r) for r in rows],
    )
