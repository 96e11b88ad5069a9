"""Settings of the reward service (environment variables prefixed ``REWARD_``).

Defaults work offline on a laptop: an SQLite file under ``./data/reward.db``,
classical features only. ``DATABASE_URL`` is also read without the prefix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import DEV_SERVICE_TOKEN, ServiceSettings, shared_field


class RewardSettings(ServiceSettings):
    """Configuration of the reward service."""

    model_config = SettingsConfigDict(env_prefix="REWARD_", extra="ignore", populate_by_name=True)

    service_name: str = "reward"
    port: int = 8003
    service_token: str = shared_field(  # type: ignore[assignment]
        "REWARD_",
        "SERVICE_TOKEN",
        DEV_SERVICE_TOKEN,
        "Bearer token this service accepts (REWARD_SERVICE_TOKEN gives it its own; "
        "at least 32 random characters outside development).",
    )
    database_url: str = shared_field(  # type: ignore[assignment]
        "REWARD_",
        "DATABASE_URL",
        "",
        "SQLAlchemy async URL; empty means sqlite+aiosqlite under DATA_DIR/reward.db.",
    )
    max_image_bytes: int = Field(
        default=25 * 1024 * 1024,
        gt=0,
        description="Largest accepted upload, in bytes (413 above it).",
    )
    max_pixels: int = Field(
        default=40_000_000,
        gt=0,
        description="Largest accepted image, in pixels (width x height; 413 above it).",
    )
    feature_size: int = Field(
        default=512,
        ge=16,
        le=4096,
        description=(
            "Long side, in pixels, the image is resized to before classical features are "
            "computed. Part of the feature version: changing it starts a new vector space."
        ),
    )
    clip_model: str = Field(
        default="",
        description=(
            "Local directory of CLIP weights saved by transformers (save_pretrained: "
            "config.json, weights, preprocessor_config.json). Empty: classical features "
            "only; /ml/models says why CLIP is off. Nothing is downloaded."
        ),
    )
    clip_device: str = Field(
        default="auto",
        description="auto (cuda when available, else cpu), cpu or cuda[:N]. fp16 on cuda.",
    )
    clip_batch_size: int = Field(default=32, ge=1, le=1024, description="Images per CLIP batch.")
    blas_threads: int = Field(
        default=1,
        ge=0,
        le=256,
        description=(
            "Threads OpenBLAS may use per matrix product; 0 keeps the library's default "
            "(one per core). This service's products are small and already run in parallel "
            "worker threads, where extra BLAS threads mostly spin."
        ),
    )
    model_dir: Path | None = Field(
        default=None,
        description="Blob directory for trained models; empty means DATA_DIR/reward/models.",
    )
    image_dir: Path | None = Field(
        default=None,
        description=(
            "Blob directory for labelled images (and their originals), kept so models "
            "can be retrained on new feature sets; empty means DATA_DIR/reward/images."
        ),
    )
    storage_url: str = Field(
        default="",
        description=(
            "Where models and labelled images live: empty = REWARD_MODEL_DIR and "
            "REWARD_IMAGE_DIR; "
            "s3://bucket/prefix = S3 (prefix/models, prefix/images), for deployments "
            "whose disks do not survive a restart; file:///dir = dir/models, dir/images."
        ),
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        description="Endpoint of an S3-compatible store (MinIO…); empty = AWS S3. "
        "Credentials: the AWS chain.",
    )
    aws_region: str | None = Field(
        default=None,
        validation_alias=AliasChoices("REWARD_AWS_REGION", "AWS_REGION"),
        description="AWS region of the bucket (REWARD_AWS_REGION or AWS_REGION).",
    )
    retrain_every: int = Field(
        default=100,
        ge=1,
        description="Train a new model in the background after this many new observations.",
    )
    auto_retrain: bool = Field(default=True, description="Whether observe triggers retraining.")
    min_train: int = Field(
        default=30, ge=5, description="Fewest training observations a model is fitted on."
    )
    min_holdout: int = Field(
        default=8, ge=2, description="Fewest held-out observations a model can be validated on."
    )
    holdout_fraction: float = Field(
        default=0.2,
        gt=0,
        lt=1,
        description=(
            "Share of renders held out, chosen by a hash of the render (the original's hash, "
            "else the experiment id); an image of a held-out render is held out with all its "
            "ratings, so no image is on both sides and the split is stable as ratings arrive."
        ),
    )
    ensemble_resamples: int = Field(
        default=5, ge=2, le=50, description="Bootstrap resamples in a model ensemble."
    )
    calibration: Literal["isotonic", "linear", "none"] = Field(
        default="isotonic",
        description="Map from the ensemble's score to stars, fitted on out-of-bag scores.",
    )
    ranking_weight: float = Field(
        default=0.0,
        ge=0,
        description=(
            "Weight of the within-render pairwise (RankNet) term when training the CLIP "
            "MLP; 0 = squared error only (what grouped validation chose on BIQ2021)."
        ),
    )
    min_srcc: float = Field(
        default=0.3,
        ge=-1,
        le=1,
        description="Gate: the fewest held-out SRCC a model needs to go live.",
    )
    gate_z: float = Field(
        default=1.6448536269514722,
        ge=0,
        description=(
            "Gate: tolerance against the active model in standard errors of the paired "
            "difference (bootstrap over held-out renders); 1.645 = one-sided 95 %."
        ),
    )
    gate_resamples: int = Field(
        default=200, ge=20, le=5000, description="Gate: bootstrap resamples for the tolerances."
    )
    train_stale_seconds: int = Field(
        default=900,
        ge=10,
        description=(
            "A queued or running training whose heartbeat is older than this is treated "
            "as dead (its replica stopped) and no longer blocks a new one."
        ),
    )
    max_observe_batch: int = Field(
        default=32, ge=1, le=256, description="Most observations one /ml/observe_batch call holds."
    )
    mlp_epochs: int = Field(default=300, ge=1, description="Training epochs of each CLIP MLP.")
    max_batch: int = Field(
        default=32, ge=1, le=256, description="Most images one /ml/predict_rating call scores."
    )

    @property
    def models_path(self) -> Path:
        return self.model_dir or self.data_dir / "reward" / "models"

    @property
    def images_path(self) -> Path:
        return self.image_dir or self.data_dir / "reward" / "images"
