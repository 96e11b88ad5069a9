"""Request and response shapes of the reward service's HTTP API (not its tables)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator


class FeatureGroups(BaseModel):
    """The feature vector split into blocks (see :mod:`services.reward.features`)."""

    color_histogram: list[float] = Field(description="4×4×4 joint RGB histogram, sums to 1.")
    edge_density: float = Field(description="Fraction of pixels on an edge (Sobel).")
    texture: list[float] = Field(
        description="gradient_mean, local_std_mean, then Gabor energies (fine, coarse × 4 angles)."
    )
    lighting: list[float] = Field(
        description="16-bin luma histogram, mean, p05, p50, p95, clipped_dark, clipped_bright."
    )
    sharpness: float = Field(description="Variance of the Laplacian of luma.")
    noise: float = Field(description="Robust noise standard deviation of luma.")
    colorfulness: float = Field(description="Hasler–Süsstrunk colourfulness.")
    contrast: float = Field(description="RMS contrast (standard deviation of luma).")
    canny_edge_density: float | None = Field(
        default=None, description="Fraction of pixels on a Canny edge (classical-v2)."
    )
    naturalness: list[float] | None = Field(
        default=None, description="BRISQUE MSCN statistics at 2 scales (36 values, classical-v2)."
    )
    multiscale: list[float] | None = Field(
        default=None,
        description="laplacian_var_half, spectral_slope, hf_energy_ratio, jpeg_blockiness.",
    )
    saturation: list[float] | None = Field(
        default=None, description="HSV saturation mean, std, p95."
    )
    regional: list[float] | None = Field(
        default=None,
        description="luma_local_contrast_coarse, dark_channel_mean, highlight_detail.",
    )


class ExtractFeaturesResponse(BaseModel):
    feature_version: str = Field(description="Vector space id, e.g. 'classical-v1@512'.")
    feature_names: list[str]
    features: list[float]
    groups: FeatureGroups
    dims: int
    image_sha256: str
    width: int = Field(description="Width of the decoded image (after EXIF rotation).")
    height: int
    cached: bool = Field(description="True when these bytes had been featurised before.")


class ObservationForm(BaseModel):
    """Form fields of ``POST /ml/observe`` (the image travels as the ``image`` file)."""

    rating_id: str = Field(min_length=1, max_length=64, description="Gateway rating id.")
    rating: int = Field(ge=1, le=5, description="Stars, 1 to 5.")
    experiment_id: str = Field(min_length=1, max_length=64)
    option: str = Field(min_length=1, max_length=32, description="Which variant, e.g. 'A'.")
    rater: str = Field(min_length=1, max_length=255)
    variant_id: str | None = Field(default=None, max_length=64)
    prompt_version: str | None = Field(default=None, max_length=64)
    mode: str | None = Field(default=None, max_length=32, description="structure | surfaces")
    revision: int = Field(
        default=1, ge=1, description="A higher revision of a stored rating id replaces its rating."
    )

    @field_validator("variant_id", "prompt_version", "mode", mode="before")
    @classmethod
    def _blank_is_missing(cls, value: object) -> object:
        # HTTP clients send an absent optional form field as an empty string.
        return None if value == "" else value


class ObserveResponse(BaseModel):
    stored: bool = Field(description="False when this rating_id had already been stored.")
    observations: int = Field(description="Observations stored in total.")


class ObservationItem(ObservationForm):
    """One observation of ``POST /ml/observe_batch``; its image is the file at the same
    position in ``images``."""

    original: int | None = Field(
        default=None,
        ge=0,
        description="Index into the ``originals`` files of the render this image was made "
        "from (several items may share one); omitted: no original.",
    )


class ObserveItemResult(BaseModel):
    index: int = Field(description="Position of the item in the request.")
    rating_id: str
    status: Literal["stored", "duplicate", "rejected"] = Field(
        description="stored: new; duplicate: this rating_id was stored before (nothing "
        "done); rejected: not stored because of ``error`` (retrying will not help)."
    )
    error: dict[str, Any] | None = Field(
        default=None, description="code, message (Spanish), message_en: why it was rejected."
    )


class ObserveBatchResponse(BaseModel):
    results: list[ObserveItemResult]
    stored: int = Field(description="Items stored by this call.")
    observations: int = Field(description="Observations stored in total.")


class HeldOutMetrics(BaseModel):
    """Scores on held-out ratings (see :mod:`services.reward.metrics`)."""

    n: int
    srcc: float
    plcc: float
    mae: float
    within_05: float
    coverage_68: float
    coverage_95: float
    mean_std: float
    pair_accuracy: float | None = Field(
        default=None,
        description="Within-render pairwise accuracy: share of pairs of variants of one "
        "render, rated differently by one trainer, that the model orders the same way.",
    )
    n_pairs: int = 0
    pred_min: float | None = None
    pred_max: float | None = None
    best_of_n_gain: float | None = Field(
        default=None,
        description="Stars gained on average by taking the model's pick among the variants "
        "of a render instead of a random one (held-out renders).",
    )
    best_of_n_low: float | None = None
    best_of_n_high: float | None = None
    best_of_n_oracle: float | None = None
    best_of_n_sets: int = 0


class BestOfN(BaseModel):
    """Best-of-N figure of the active model, from its held-out renders."""

    gain: float = Field(description="Expected stars gained over a random pick.")
    low: float = Field(description="95 % bootstrap interval, lower end.")
    high: float
    oracle: float | None = Field(description="Gain of always picking the best-rated variant.")
    sets: int = Field(description="Held-out (render, trainer) sets it was measured on.")
    model_version: str


class GateCheck(BaseModel):
    name: str
    candidate: float | None
    reference: float | None
    tolerance: float | None
    passed: bool
    note: str = ""


class GateResult(BaseModel):
    passed: bool
    checks: list[GateCheck]


class StatusResponse(BaseModel):
    observations: int
    ratings_histogram: dict[str, int] = Field(description="Observations per star, '1'..'5'.")
    feature_version: str
    feature_dims: int
    model: str | None = Field(default=None, description="Active reward model version.")
    ready_for_inference: bool = Field(description="A validated model is active.")
    model_version: str | None = Field(default=None, description="Same as model.")
    validated: bool = False
    feature_set: str | None = Field(default=None, description="Active model's feature set.")
    heldout_metrics: HeldOutMetrics | None = None
    n_train: int | None = None
    new_observations: int = Field(
        default=0, description="Observations after the newest one any version trained on."
    )
    retrain_every: int = 0
    training: bool = Field(default=False, description="A training is running now.")
    last_training_error: str | None = None
    best_of_n: BestOfN | None = Field(
        default=None,
        description="Expected rating gain of the model's pick among a render's variants "
        "over a random pick (active model, held-out renders); null until a model is live "
        "and its held-out set had renders with several rated variants.",
    )
    last_training_run: str | None = Field(default=None, description="Newest training run id.")


class ClipStatus(BaseModel):
    available: bool
    reason: str


class ModelVersionPublic(BaseModel):
    version: str
    status: str = Field(description="active | inactive | rejected")
    validated: bool = Field(description="Passed the validation gate when trained.")
    kind: str
    feature_set: str
    feature_version: str
    n_train: int
    n_holdout: int
    metrics: HeldOutMetrics
    baseline: dict[str, Any] | None
    reason: str
    trigger: str = Field(description="manual | auto")
    created_at: datetime
    activated_at: datetime | None
    gate: GateResult | None = Field(default=None, description="The gate's checks when trained.")
    incumbent: str | None = None
    incumbent_metrics: HeldOutMetrics | None = None


class ModelsResponse(BaseModel):
    active: str | None
    models: list[str] = Field(description="Every version, newest first.")
    feature_set: str = Field(description="What this service can compute now.")
    clip: ClipStatus
    versions: list[ModelVersionPublic] = Field(default_factory=list)


class TrainResult(BaseModel):
    """What one training produced: the version, its figures and the gate's decision."""

    version: str
    activated: bool
    validated: bool
    reason: str
    kind: str
    feature_set: str
    n_train: int
    n_holdout: int
    metrics: HeldOutMetrics
    baseline: HeldOutMetrics = Field(description="The constant predictor on the same held-out set.")
    incumbent: str | None
    incumbent_metrics: HeldOutMetrics | None = None
    candidates: dict[str, HeldOutMetrics]
    gate: GateResult | None = None


class TrainAccepted(BaseModel):
    """Answer of ``POST /ml/train`` (202): the run to follow."""

    run_id: str
    status: str = Field(description="queued | running (an existing run) …")
    existing: bool = Field(description="True when a training was already under way.")
    status_url: str


class TrainRunStatus(BaseModel):
    """``GET /ml/train/{run_id}``."""

    run_id: str
    trigger: str
    status: Literal["queued", "running", "succeeded", "failed", "skipped"]
    stage: str = Field(description="queued, loading, fitting, validating, recording, done")
    progress: float = Field(ge=0, le=1)
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    version: str | None
    result: TrainResult | None = Field(default=None, description="When succeeded.")
    error: dict[str, Any] | None = Field(
        default=None, description="When failed or skipped: code, message, message_en."
    )


class AuditEntryPublic(BaseModel):
    id: int
    action: str = Field(description="gate_passed | gate_rejected | rollback")
    version: str | None
    previous: str | None
    actor: str
    reason: str
    details: dict[str, Any]
    created_at: datetime


class AuditResponse(BaseModel):
    entries: list[AuditEntryPublic]


class RollbackRequest(BaseModel):
    version: str | None = Field(
        default=None, description="Version to activate; default the previous validated one."
    )
    actor: str | None = Field(default=None, max_length=128, description="Who asks (audit).")
    reason: str | None = Field(default=None, max_length=1000, description="Why (audit).")


class RollbackResponse(BaseModel):
    active: str
    previous: str | None


class Prediction(BaseModel):
    index: int
    mean: float = Field(description="Predicted rating, 1–5 stars.")
    std: float = Field(description="Predictive standard deviation, in stars.")
    image_sha256: str


class PredictResponse(BaseModel):
    model_version: str
    validated: bool
    predictions: list[Prediction]
