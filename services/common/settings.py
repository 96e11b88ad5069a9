"""Settings base shared by every service.

Each service subclasses :class:`ServiceSettings` with its own ``env_prefix``
(``GATEWAY_``, ``OPTIMIZER_``…). Every field is read from ``<PREFIX><NAME>``;
the few that operators usually set once for the whole system (``DATABASE_URL``,
``SERVICE_TOKEN``, ``ENVIRONMENT``, ``LOG_LEVEL``) also accept the bare name, so a
container that runs a single service can be configured with plain names.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SERVICE_TOKEN = "afinador-dev-token"
MIN_SECRET_LENGTH = 32
DOCUMENTED_EXAMPLES = frozenset({
    DEV_SERVICE_TOKEN, "change-me", "changeme", "secret", "dev-secret",
    "replace-with-a-long-random-secret", "your-service-token",
})
"""Secrets that appear in our docs or configs as examples: never valid outside development."""


def check_secret(name: str, value: str, environment: str) -> None:
    """Refuse a short or documented-example secret outside development."""
    if len(value) < MIN_SECRET_LENGTH or value in DOCUMENTED_EXAMPLES:
        raise ValueError(
            f"{name} must be a random secret of at least {MIN_SECRET_LENGTH} characters outside "
            f"development (ENVIRONMENT={environment!r}); generate one with "
            "`python -m scripts.secrets` or `openssl rand -hex 32`.")
REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_field(prefix: str, name: str, default: object, description: str) -> object:
    """A field read from ``<PREFIX><NAME>`` first, then the bare ``<NAME>``."""
    return Field(
        default=default,
        validation_alias=AliasChoices(f"{prefix}{name}", name),
        description=description,
    )


class ServiceSettings(BaseSettings):
    """Fields common to all services. Subclasses set ``service_name`` and the prefix."""

    model_config = SettingsConfigDict(
        extra="ignore", populate_by_name=True, use_attribute_docstrings=True)

    service_name: str = "service"
    environment: str = Field(
        default="development",
        validation_alias=AliasChoices("ENVIRONMENT"),
        description="development | production. Production refuses the default service token.",
    )
    log_level: str = Field(default="INFO", validation_alias=AliasChoices("LOG_LEVEL"),
                           description="DEBUG, INFO, WARNING or ERROR.")
    service_token: str = Field(
        default=DEV_SERVICE_TOKEN,
        validation_alias=AliasChoices("SERVICE_TOKEN"),
        description="Bearer token internal calls carry (at least 32 random characters outside "
                    "development; a service given its own token by `<PREFIX>SERVICE_TOKEN` "
                    "accepts that one).",
        repr=False,
    )
    data_dir: Path = Field(
        default=REPO_ROOT / "data",
        validation_alias=AliasChoices("DATA_DIR"),
        description="Where embedded SQLite files and local blobs live.",
    )
    database_url: str = ""
    migrate_on_start: bool = True
    """Apply this service's migrations at start-up (production: false + `scripts.migrate`)."""
    host: str = "127.0.0.1"
    """Interface `make run` binds the service to."""
    port: int = 8000
    """Port `make run` starts the service on."""

    @model_validator(mode="after")
    def _defaults_and_safety(self) -> ServiceSettings:
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{self.data_dir / (self.service_name + '.db')}"
        if self.environment != "development":
            check_secret("SERVICE_TOKEN", self.service_token, self.environment)
        return self
