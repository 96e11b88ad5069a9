"""Errors of the evolution service.

AfinadorError (services.common.errors)
├── ValidationFailed (422)
│   ├── InvalidPromptVersion   a prompt-version document breaks prompts/schema.json
│   └── UnknownVersion         a request names a version this service does not have
├── NotFound (404)
│   ├── VersionNotFound        GET of a version that does not exist
│   └── RunNotFound            GET of an evolution run that does not exist
├── Conflict (409)
│   ├── EvolutionBlocked       an A/B test or another evolution is under way
│   └── InvalidTransition      promote/rollback that the current state does not allow
├── NoActiveVersion (503)      no version is active (the seed v1.0.0 is missing)
└── EvolutionFailed (502)      the evolver produced no acceptable proposal (LLM kept
                               failing, refusing or breaking the hard rules)
"""

from __future__ import annotations

from services.common.errors import AfinadorError, Conflict, NotFound, ValidationFailed


class InvalidPromptVersion(ValidationFailed):
    code = "invalid_prompt_version"


class UnknownVersion(ValidationFailed):
    code = "unknown_prompt_version"


class VersionNotFound(NotFound):
    code = "prompt_version_not_found"

    def __init__(self, version: str) -> None:
        super().__init__(
            f"La versión de prompt {version!r} no existe. "
            "Consulta GET /prompts/versions para ver las disponibles.",
            f"Prompt version {version!r} does not exist. "
            "See GET /prompts/versions for the available ones.",
            version=version,
        )


class RunNotFound(NotFound):
    code = "evolution_run_not_found"


class NoActiveVersion(AfinadorError):
    status_code = 503
    code = "no_active_prompt_version"


class EvolutionBlocked(Conflict):
    code = "evolution_blocked"


class InvalidTransition(Conflict):
    code = "invalid_prompt_transition"


class EvolutionFailed(AfinadorError):
    status_code = 502
    code = "evolution_failed"
