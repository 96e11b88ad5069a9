"""Errors of the evolution service, and the HTTP status each one maps to.

    AfinadorError (services.common.errors)
    └── EvolutionError                 root of this service's errors
        ├── InvalidPromptVersion (422) a prompt-version document breaks prompts/schema.json
        ├── UnknownVersion (422)       a request names a version this service does not have
        ├── VersionNotFound (404)      GET of a version that does not exist
        ├── RunNotFound (404)          GET of an evolution run that does not exist
        ├── EvolutionBlocked (409)     an A/B test or another evolution is under way
        ├── InvalidTransition (409)    promote/rollback that the current state does not allow
        ├── NoActiveVersion (503)      no version is active (the seed v1.0.0 is missing)
        └── EvolutionFailed (502)      the evolver produced no acceptable proposal (the LLM
                                       kept failing, refusing or breaking the hard rules)

Each class also derives from the common class of its status (``ValidationFailed``,
``NotFound``, ``Conflict``, ``ServiceUnavailable``), so callers may catch either the
service's root or the common meaning. Each carries a Spanish sentence and an English
one from this service's catalogue (``errors.<lang>.json`` beside this module, keyed by
code); the one handler in :mod:`services.common.errors` turns them into JSON answers.
"""

from __future__ import annotations

from pathlib import Path

from services.common.catalogue import COMMON, Catalogue
from services.common.errors import (
    AfinadorError,
    Conflict,
    NotFound,
    ServiceUnavailable,
    ValidationFailed,
)

EVOLUTION = Catalogue("evolution", Path(__file__).with_name("errors"), fallback=COMMON)
"""This service's sentences (``services/evolution/errors.<lang>.json``)."""


class EvolutionError(AfinadorError):
    """Root of the evolution service's errors."""

    code = "evolution_error"
    catalogue = EVOLUTION


class InvalidPromptVersion(EvolutionError, ValidationFailed):
    code = "invalid_prompt_version"


class UnknownVersion(EvolutionError, ValidationFailed):
    code = "unknown_prompt_version"


class VersionNotFound(EvolutionError, NotFound):
    code = "prompt_version_not_found"

    def __init__(self, version: str) -> None:
        super().__init__(version=version)


class RunNotFound(EvolutionError, NotFound):
    code = "evolution_run_not_found"


class NoActiveVersion(EvolutionError, ServiceUnavailable):
    code = "no_active_prompt_version"


class EvolutionBlocked(EvolutionError, Conflict):
    code = "evolution_blocked"


class InvalidTransition(EvolutionError, Conflict):
    code = "invalid_prompt_transition"


class EvolutionFailed(EvolutionError):
    status_code = 502
    code = "evolution_failed"
