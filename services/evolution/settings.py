"""Settings of the evolution service (environment prefix ``EVOLUTION_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import SettingsConfigDict

from services.common.settings import DEV_SERVICE_TOKEN, REPO_ROOT, ServiceSettings, shared_field


class EvolutionSettings(ServiceSettings):
    """Evolution settings; every default works offline on a laptop."""

    model_config = SettingsConfigDict(
        env_prefix="EVOLUTION_", extra="ignore", populate_by_name=True
    )

    service_name: str = "evolution"
    port: int = 8002
    service_token: str = shared_field(  # type: ignore[assignment]
        "EVOLUTION_", "SERVICE_TOKEN", DEV_SERVICE_TOKEN,
        "Bearer token this service accepts (EVOLUTION_SERVICE_TOKEN gives it its own; "
        "at least 32 random characters outside development).")
    database_url: str = shared_field(  # type: ignore[assignment]
        "EVOLUTION_",
        "DATABASE_URL",
        "",
        "SQLAlchemy async URL; empty means sqlite+aiosqlite under DATA_DIR/evolution.db.",
    )
    prompts_dir: Path = Field(
        default=REPO_ROOT / "prompts",
        description="Folder with schema.json and versions/v*.json, loaded into the DB at start-up.",
    )
    export_dir: Path | None = Field(
        default=None,
        description="Where versions/v*.json and versions/current.json are exported after every "
        "change, for review. Empty means DATA_DIR/prompts (set it to the repository's prompts/ "
        "to review evolved versions with git). The database stays the source of truth.",
    )

    # triggers
    evolve_every: int = Field(
        default=10,
        gt=0,
        description="A new prompt version may be evolved every this many rated samples.",
    )
    converged_rating: float = Field(
        default=4.5, description="Periodic evolution stops once the best version averages this."
    )
    plateau_samples: int = Field(
        default=15, gt=0, description="Evolve after this many samples without an improvement."
    )
    low_rating: float = Field(
        default=4.0, description="Low performance: best version below this after low_after samples."
    )
    low_after: int = Field(default=20, gt=0)
    low_gap: int = Field(
        default=5, gt=0, description="Low performance re-evolves at most every this many samples."
    )
    best_min_samples: int = Field(
        default=5, gt=0, description="A version counts for the best rating from this many samples."
    )

    # A/B decision (see services.evolution.ab_test)
    ab_promote_probability: float = 0.95
    ab_rollback_probability: float = 0.90
    ab_min_pairs: int = 10
    ab_max_pairs: int = 20
    ab_looks: tuple[int, ...] = (15, 20)
    ab_prior_pairs: float = 3.0
    ab_prior_sd: float = 1.0
    ab_prior_sd_weight: float = 2.0
    monitor_min_samples: int = 10
    monitor_max_samples: int = 20
    monitor_rollback_probability: float = 0.975

    # evolution engines
    engine: Literal["auto", "llm", "offline"] = Field(
        default="auto",
        description="auto: the LLM when a key is configured, else offline operators.",
    )
    offline_seed: int = 0
    llm_base_url: str | None = Field(
        default=None,
        description="OpenAI-compatible base URL (e.g. http://localhost:11434/v1 for Ollama); "
        "empty means OpenAI.",
    )
    llm_model: str = "gpt-4o-mini"
    llm_api_key: str = Field(
        default="",
        validation_alias=AliasChoices("EVOLUTION_LLM_API_KEY", "OPENAI_API_KEY"),
        description="Key for the LLM endpoint (EVOLUTION_LLM_API_KEY, else OPENAI_API_KEY).",
    )
    llm_timeout_seconds: float = Field(default=60.0, gt=0)
    llm_max_attempts: int = Field(default=3, ge=1, le=10)
    llm_temperature: float = 0.7
    llm_fallback_offline: bool = Field(
        default=True,
        description="When the LLM gives no acceptable answer after its attempts, evolve offline.",
    )
    run_stale_seconds: float = Field(
        default=900.0, description="A 'running' evolution older than this is considered dead."
    )

    @model_validator(mode="after")
    def _export_default(self) -> EvolutionSettings:
        if self.export_dir is None:
            self.export_dir = self.data_dir / "prompts"
        if sorted(self.ab_looks) != list(self.ab_looks):
            raise ValueError("EVOLUTION_AB_LOOKS must be increasing")
        return self

    @property
    def exports_to(self) -> Path:
        assert self.export_dir is not None
        return self.export_dir
