"""``/ml/*`` routes: parse the request, call the domain function, shape the answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, File, Form, Query, Request, UploadFile

from services.common.app import SessionDep
from services.common.db import transaction
from services.reward import store
from services.reward.api.deps import ExtractorDep, RuntimeDep, SettingsDep
from services.reward.extraction import ImageLimits, features_for_image
from services.reward.features import FeatureVector
from services.reward.models import ModelVersion
from services.reward.observations import Label, record_observation
from services.reward.prediction import predict_ratings
from services.reward.registry import rollback as rollback_to
from services.reward.schemas import (
    ClipStatus,
    ExtractFeaturesResponse,
    FeatureGroups,
    HeldOutMetrics,
    ModelsResponse,
    ModelVersionPublic,
    ObservationForm,
    ObserveResponse,
    Prediction,
    PredictResponse,
    RollbackRequest,
    RollbackResponse,
    StatusResponse,
    TrainResponse,
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


@router.post("/train", response_model=TrainResponse)
async def train(runtime: RuntimeDep) -> TrainResponse:
    """Train a new version now and apply the validation gate (waits for the result).

    409 ``not_enough_data`` when there are too few observations.
    """
    outcome = await runtime.trainer.train(trigger="manual")
    return TrainResponse(
        version=outcome.version,
        activated=outcome.activated,
        validated=outcome.validated,
        reason=outcome.reason,
        kind=outcome.kind,
        feature_set=outcome.feature_set,
        n_train=outcome.n_train,
        n_holdout=outcome.n_holdout,
        metrics=HeldOutMetrics(**outcome.metrics),
        baseline=HeldOutMetrics(**outcome.baseline),
        incumbent=outcome.incumbent,
        candidates={k: HeldOutMetrics(**m) for k, m in outcome.candidates.items()},
    )


@router.post("/models/rollback", response_model=RollbackResponse)
async def rollback(
    session: SessionDep,
    body: Annotated[RollbackRequest | None, Body()] = None,
) -> RollbackResponse:
    """Activate an earlier validated version (default: the previously active one)."""
    active, previous = await rollback_to(session, body.version if body else None)
    return RollbackResponse(active=active, previous=previous)


@router.get("/status", response_model=StatusResponse)
async def status(
    session: SessionDep, extractor: ExtractorDep, settings: SettingsDep, runtime: RuntimeDep
) -> StatusResponse:
    """Samples stored so far, the active model and whether it can score images."""
    histogram = await store.ratings_histogram(session)
    active = await store.get_active_model(session)
    since = await store.last_trained_through(session)
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
    )


def _public(row: ModelVersion) -> ModelVersionPublic:
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
