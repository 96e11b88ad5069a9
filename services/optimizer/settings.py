"""Optimizer settings (environment prefix ``OPTIMIZER_``).

Every knob has a default that works offline on a laptop. The model knobs trade
suggestion latency against quality. Fits run in the background, one at a time,
after each new batch of ratings; requests wait at most ``fit_wait_seconds`` for
one (see ``services/optimizer/keeper.py`` and docs/benchmarks.md).
"""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from services.common.parameter_space import PROVIDERS
from services.common.settings import DEV_SERVICE_TOKEN, ServiceSettings, shared_field
from services.optimizer.config import GPConfig


class OptimizerSettings(ServiceSettings):
    """Settings of the optimizer service."""

    model_config = SettingsConfigDict(
        env_prefix="OPTIMIZER_", extra="ignore", populate_by_name=True
    )

    service_name: str = "optimizer"
    port: int = 8001
    service_token: str = shared_field(  # type: ignore[assignment]
        "OPTIMIZER_", "SERVICE_TOKEN", DEV_SERVICE_TOKEN,
        "Bearer token this service accepts (OPTIMIZER_SERVICE_TOKEN gives it its own; "
        "at least 32 random characters outside development).")
    database_url: str = shared_field(  # type: ignore[assignment]
        "OPTIMIZER_",
        "DATABASE_URL",
        "",
        "SQLAlchemy async URL; empty means SQLite at <DATA_DIR>/optimizer.db.",
    )
    n_initial_points: int = Field(
        default=10,
        ge=1,
        description="Observations (for the enabled providers) needed before the GP is used "
        "(10 = five experiments); until then suggestions follow a space-filling design.",
    )
    challenger_floor: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="With several providers, the second variant tries another provider "
        "while the posterior gives it at least this probability of being best "
        "(top-two Thompson sampling).",
    )
    random_state: int = Field(
        default=42, description="Seed for random suggestions, GP fitting and acquisition sampling."
    )
    default_providers: list[str] = Field(
        default=["local"],
        description="Providers assumed enabled when a suggestion request names none "
        '(JSON list in the environment, e.g. \'["local","leonardo"]\').',
    )
    candidate_points: int = Field(
        default=512,
        ge=50,
        description="Random candidates per enabled provider on which the posterior is "
        "evaluated (plus every observed point and local perturbations of the best ones).",
    )
    local_points: int = Field(
        default=24,
        ge=0,
        description="Perturbations around each of the best posterior means per provider, "
        "so narrow optima are resolved.",
    )
    sample_points: int = Field(
        default=96,
        ge=10,
        description="Most promising candidates per provider (by upper confidence bound) "
        "over which joint posterior samples are drawn (Thompson sampling, convergence).",
    )
    posterior_samples: int = Field(
        default=256,
        ge=16,
        description="Joint posterior draws for the provider probabilities and the "
        "principled convergence measure.",
    )
    max_fit_observations: int = Field(
        default=600,
        ge=10,
        description="The posterior is conditioned on at most this many most recent "
        "observations (cost grows with the cube of their number).",
    )
    hyper_fit_observations: int = Field(
        default=250,
        ge=10,
        description="The kernel and noise hyperparameters are fitted on at most this many "
        "most recent observations.",
    )
    convergence_tolerance: float = Field(
        default=0.25,
        gt=0,
        description="Stars: the principled convergence is the probability that the "
        "recommendation is within this much of the best point in the space.",
    )
    fit_in_process: bool = Field(
        default=True,
        description="Run the hyperparameter search of each fit in a child process, so a "
        "fit never slows the service's requests (false: in a thread of the service).",
    )
    fit_wait_seconds: float = Field(
        default=1.0,
        ge=0,
        description="How long a suggestion waits for the fit of the latest ratings (fits "
        "run in the background, one at a time) before it uses the previous model.",
    )
    status_fit_wait_seconds: float = Field(
        default=0.0,
        ge=0,
        description="The same for GET /ml/status and /ml/partial_dependence: by default "
        "they answer at once from the latest model and say how old it is.",
    )

    @field_validator("default_providers")
    @classmethod
    def _known_providers(cls, value: list[str]) -> list[str]:
        unknown = [p for p in value if p not in PROVIDERS]
        if unknown or not value:
            raise ValueError(f"default_providers must be a non-empty subset of {PROVIDERS}")
        return value

    def gp_config(self) -> GPConfig:
        """The model knobs as the plain value the domain modules take."""
        return GPConfig(
            n_initial_points=self.n_initial_points,
            challenger_floor=self.challenger_floor,
            random_state=self.random_state,
            candidate_points=self.candidate_points,
            local_points=self.local_points,
            sample_points=self.sample_points,
            posterior_samples=self.posterior_samples,
            max_fit_observations=self.max_fit_observations,
            hyper_fit_observations=self.hyper_fit_observations,
            convergence_tolerance=self.convergence_tolerance,
        )
