"""Gateway settings: environment variables prefixed ``GATEWAY_`` (see the README table).

Each field's docstring is its description in the generated configuration table.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import SettingsConfigDict

from services.common.settings import (
    DEV_SERVICE_TOKEN,
    REPO_ROOT,
    ServiceSettings,
    check_secret,
    shared_field,
)


def _alias(name: str) -> AliasChoices:
    """``GATEWAY_<NAME>`` or the bare ``<NAME>``."""
    return AliasChoices(f"GATEWAY_{name}", name)


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore",
                                      populate_by_name=True, use_attribute_docstrings=True)

    service_name: str = "gateway"
    port: int = 8000
    """Port `make run` starts the gateway on."""
    service_token: str = shared_field(  # type: ignore[assignment]
        "GATEWAY_", "SERVICE_TOKEN", DEV_SERVICE_TOKEN,
        "Bearer token for the gateway's internal routes (/metrics) and, unless "
        "GATEWAY_<SERVICE>_TOKEN says otherwise, for its calls to the other services.")
    database_url: str = shared_field(  # type: ignore[assignment]
        "GATEWAY_", "DATABASE_URL", "", "Gateway database (SQLite file under DATA_DIR by default)."
    )

    # sibling services -------------------------------------------------------------
    optimizer_url: str = Field(default="http://127.0.0.1:8001",
                               validation_alias=_alias("OPTIMIZER_URL"))
    """Base URL of the optimizer service."""
    evolution_url: str = Field(default="http://127.0.0.1:8002",
                               validation_alias=_alias("EVOLUTION_URL"))
    """Base URL of the evolution service."""
    reward_url: str = Field(default="http://127.0.0.1:8003", validation_alias=_alias("REWARD_URL"))
    """Base URL of the reward service."""
    internal_timeout_seconds: float = 10.0
    """Timeout of one call to a sibling service (each call is retried twice)."""

    optimizer_token: str = Field(default="", repr=False,
                                 validation_alias=_alias("OPTIMIZER_TOKEN"))
    """Bearer token for calls to the optimizer (empty = SERVICE_TOKEN)."""
    evolution_token: str = Field(default="", repr=False,
                                 validation_alias=_alias("EVOLUTION_TOKEN"))
    """Bearer token for calls to evolution (empty = SERVICE_TOKEN)."""
    reward_token: str = Field(default="", repr=False, validation_alias=_alias("REWARD_TOKEN"))
    """Bearer token for calls to the reward service (empty = SERVICE_TOKEN)."""

    # accounts and sessions ----------------------------------------------------------
    session_secret: str = Field(default="", repr=False,
                                validation_alias=_alias("SESSION_SECRET"))
    """Key that signs session and CSRF cookies (at least 32 characters outside development;
    empty in development = a random key per start, which signs everyone out on restart)."""
    session_idle_minutes: int = Field(default=120, ge=1)
    """A session unused this long ends."""
    session_absolute_hours: int = Field(default=12, ge=1)
    """A session ends this long after sign-in, however active."""
    login_window_minutes: int = Field(default=15, ge=1)
    """Failed sign-ins are counted over this window…"""
    login_max_failures_per_account: int = Field(default=5, ge=1)
    """…and an account is paused after this many…"""
    login_max_failures_per_ip: int = Field(default=20, ge=1)
    """…and an address after this many."""
    enable_training_mode: bool = Field(default=True,
                                       validation_alias=AliasChoices("ENABLE_TRAINING_MODE"))
    """The seeds' feature flag: false closes /train to everyone but admins."""
    training_admin_emails: str = Field(default="",
                                       validation_alias=AliasChoices("TRAINING_ADMIN_EMAILS"))
    """Comma-separated user names (e-mail addresses) that are admins whatever their stored role."""
    first_admin_user: str = Field(default="", validation_alias=AliasChoices("AFINADOR_ADMIN_USER"))
    """On first start with no users: create this admin (with AFINADOR_ADMIN_PASSWORD)."""
    first_admin_password: str = Field(default="", repr=False,
                                      validation_alias=AliasChoices("AFINADOR_ADMIN_PASSWORD"))
    """Password of that first admin."""

    # storage ----------------------------------------------------------------------
    storage_url: str = Field(default="", validation_alias=_alias("STORAGE_URL"))
    """Where images live: empty = DATA_DIR/blobs, `file:///dir`, or `s3://bucket/prefix`."""
    s3_endpoint_url: str | None = Field(default=None, validation_alias=_alias("S3_ENDPOINT_URL"))
    """Endpoint of an S3-compatible store (MinIO…); empty = AWS S3. Credentials: the AWS chain."""
    aws_region: str | None = Field(default=None, validation_alias=_alias("AWS_REGION"))
    """AWS region of the image bucket."""
    storage_dir: Path | None = None
    """Local image directory when STORAGE_URL is empty (default DATA_DIR/blobs)."""
    web_dir: Path = REPO_ROOT / "web"
    """Templates, static files, locales and node_modules (htmx)."""
    prompts_dir: Path = REPO_ROOT / "prompts"
    """Baseline prompt files, used only if the evolution service was never reachable."""

    # uploads and generation ---------------------------------------------------------
    max_upload_bytes: int = 20 * 1024 * 1024
    """Largest accepted upload, in bytes."""
    max_upload_pixels: int = 40_000_000
    """Largest accepted upload, in pixels (protects against decompression bombs)."""
    max_generation_side: int = 1024
    """Long side, in pixels, the local provider and Leonardo generate at."""
    generation_workers: int = 2
    """Async workers per gateway process that run generation jobs."""
    job_lease_seconds: float = Field(default=30.0, gt=0)
    """A running job whose worker stops renewing its lease this long (it crashed or hung)
    is claimed again by another worker, and the page says "Reanudando…"."""
    job_heartbeat_seconds: float = Field(default=10.0, gt=0)
    """How often a worker renews the lease of the job it runs (shorter than the lease)."""
    job_max_attempts: int = 3
    """Attempts per variant before it is marked failed (retryable errors only)."""
    worker_poll_seconds: float = 0.5
    """How often idle workers look for jobs queued by other replicas."""
    events_poll_seconds: float = 0.25
    """How often a progress stream (server-sent events) checks for changes."""
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    """On shutdown, how long background work may take to finish its current step
    before it is cancelled (an unfinished generation is resumed by the next start)."""

    # providers ----------------------------------------------------------------------
    leonardo_api_key: str = Field(default="", repr=False,
                                  validation_alias=_alias("LEONARDO_API_KEY"))
    """Leonardo AI key; when set, the `leonardo` provider is enabled (never logged)."""
    leonardo_base_url: str = "https://cloud.leonardo.ai/api/rest/v1"
    """Leonardo REST API base URL."""
    leonardo_model_id: str = "e316348f-7773-490e-adcd-46757c738eb7"
    """Leonardo model id (Absolute Reality v1.6, SD1.5: image-to-image plus a structure
    ControlNet is documented as incompatible with most SDXL models; docs/providers.md)."""
    leonardo_controlnet_preprocessor_id: int = 1
    """Leonardo ControlNet applied to the render (1: Edge to Image on SD1.5 models; the id
    depends on the model's base, see Leonardo's preprocessor table)."""
    leonardo_alchemy: bool = False
    """Leonardo Alchemy (sent explicitly: the API defaults it to on, which costs more and
    upscales the output)."""
    leonardo_preset_style: str = "NONE"
    """Leonardo presetStyle (LEONARDO or NONE without Alchemy; empty = not sent)."""
    leonardo_cost_per_image_usd: float = 0.015
    """Estimated cost of one Leonardo image (seed 000: $0.01–0.02)."""
    replicate_api_token: str = Field(default="", repr=False,
                                     validation_alias=_alias("REPLICATE_API_TOKEN"))
    """Replicate token; when set, the `stablediffusion` provider is enabled (never logged)."""
    replicate_base_url: str = "https://api.replicate.com/v1"
    """Replicate API base URL."""
    replicate_model: str = "fofr/sdxl-multi-controlnet-lora"
    """Replicate model (owner/name): SDXL image-to-image with ControlNet (docs/providers.md)."""
    replicate_version: str = "89eb212b3d1366a83e949c12a4b45dfe6b6b313b594cb8268e864931ac9ffb16"
    """Pinned model version id (a community model can only be run by version); empty =
    call the model by name, which only official models allow."""
    replicate_controlnet: str = "edge_canny"
    """The model's ControlNet fed with the render (its `controlnet_1` choices)."""
    replicate_cost_per_image_usd: float = 0.03
    """Estimated cost of one Replicate image (seed 000: $0.02–0.04)."""
    replicate_wait_seconds: int = Field(default=30, ge=0, le=60)
    """`Prefer: wait` seconds on prediction create (0 = poll only)."""
    provider_timeout_seconds: float = 180.0
    """Longest wait for one remote generation before it counts as timed out (and is retried)."""
    provider_request_timeout_seconds: float = 30.0
    """Timeout of one HTTP request to a provider (a timed-out read is retried; a timed-out
    create call is looked up in the account instead, never sent twice)."""
    provider_poll_interval_seconds: float = 2.0
    """How often remote generations are polled."""
    provider_max_retries: int = Field(default=3, ge=0)
    """Retries of one provider request on 429, 5xx, timeouts and malformed answers (a create
    call only when it provably never reached the provider)."""
    provider_backoff_seconds: float = 1.0
    """First retry delay; doubles each retry, with jitter (a 429's Retry-After wins)."""
    provider_max_backoff_seconds: float = 30.0
    """Longest delay between two retries of one provider request."""
    provider_max_retry_after_seconds: float = 60.0
    """Longest Retry-After waited in place; a longer one hands the variant back to the queue."""

    # rating delivery ----------------------------------------------------------------
    outbox_poll_seconds: float = 1.0
    """How often the outbox deliverer looks for ratings to deliver."""
    outbox_max_backoff_seconds: float = 60.0
    """Longest wait between delivery attempts to a service that is down."""
    outbox_lease_seconds: float = Field(default=60.0, gt=0)
    """A delivery claimed by a gateway that then died is claimed again after this long
    (longer than one delivery takes; the receivers are idempotent either way)."""
    rate_delivery_timeout_seconds: float = Field(default=0.2, ge=0, le=5)
    """How long saving a rating waits for the optimizer's acknowledgement (`ml_updated`);
    delivery always goes on in the background."""
    outbox_batch_size: int = Field(default=100, ge=1, le=1000)
    """Messages sent to the optimizer or evolution in one request."""

    shuffle_options: bool = True
    """Blind rating: show the two variants as A/B in random order (recorded per experiment)."""

    # phase 2 --------------------------------------------------------------------------
    best_of_n_enabled: bool = True
    """With a validated reward model, generate N candidates and show the best + most uncertain."""
    best_of_n_candidates: int = 6
    """N: candidates per experiment in phase 2 (at most 8)."""
    best_of_n_max_cost_usd: float = 0.10
    """Cost cap per experiment that bounds N when paid providers are enabled."""

    # learning targets -------------------------------------------------------------
    phase1_max_samples: int = 50
    """Phase 1 ends after this many ratings (the seeds' rule)…"""
    phase1_target_rating: float = 4.0
    """…or once a rating reaches this."""
    repeat_share: float = Field(default=0.05, ge=0.0, le=1.0)
    """Share of rated experiments followed by a blind repeat of an earlier pair (rater quality)."""
    default_language: str = "es"
    """Language of the pages when the trainer has not chosen one (`es` or `en`)."""

    @model_validator(mode="after")
    def _heartbeat_within_lease(self) -> GatewaySettings:
        if self.job_heartbeat_seconds >= self.job_lease_seconds:
            raise ValueError(
                f"GATEWAY_JOB_HEARTBEAT_SECONDS ({self.job_heartbeat_seconds:g}) must be shorter "
                f"than GATEWAY_JOB_LEASE_SECONDS ({self.job_lease_seconds:g}): a lease renewed "
                "only every heartbeat would expire while its job still runs, and another "
                "worker would start the same variant again.")
        return self

    @model_validator(mode="after")
    def _secrets_outside_development(self) -> GatewaySettings:
        if self.environment != "development":
            check_secret("GATEWAY_SESSION_SECRET", self.session_secret, self.environment)
            for name in ("optimizer_token", "evolution_token", "reward_token"):
                if getattr(self, name):
                    check_secret(f"GATEWAY_{name.upper()}", getattr(self, name),
                                 self.environment)
        elif not self.session_secret:
            self.session_secret = secrets.token_urlsafe(32)
        return self

    @property
    def admin_usernames(self) -> frozenset[str]:
        return frozenset(n.strip().lower() for n in self.training_admin_emails.split(",")
                         if n.strip())

    def token_for(self, service: str) -> str:
        """The bearer token for calls to ``service`` (its own, else SERVICE_TOKEN)."""
        own: str = getattr(self, f"{service}_token", "")
        return own or self.service_token

    @property
    def blob_dir(self) -> Path:
        return self.storage_dir or self.data_dir / "blobs"
