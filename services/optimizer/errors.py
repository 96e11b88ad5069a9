"""Errors the optimizer service raises, and the HTTP status each one maps to.

    AfinadorError (services.common.errors)
    └── OptimizerError                root of this service's errors
        ├── InvalidRequest (422)      the request's values are wrong (unknown or no
        │                             providers)
        └── InvalidParameters (422)   a rating's parameters are not a point of the
                                      space (unknown provider, missing name, out of
                                      range); the whole batch is refused

Each carries a Spanish sentence and an English one from this service's catalogue
(``errors.<lang>.json`` beside this module, keyed by code); the one handler in
:mod:`services.common.errors` turns them into JSON responses (``detail`` in Spanish,
``error.code``, ``error.message_en``). Numerical trouble in the model is never an
error a caller sees: it is logged and the service answers from the best observed
point (see :mod:`services.optimizer.recommendation`).
"""

from __future__ import annotations

from pathlib import Path

from services.common.catalogue import COMMON, Catalogue, Sentence
from services.common.errors import AfinadorError, ValidationFailed

OPTIMIZER = Catalogue("optimizer", Path(__file__).with_name("errors"), fallback=COMMON)
"""This service's sentences (``services/optimizer/errors.<lang>.json``)."""


class OptimizerError(AfinadorError):
    """Root of the optimizer service's errors."""

    code = "optimizer_error"
    catalogue = OPTIMIZER


class InvalidRequest(OptimizerError, ValidationFailed):
    """The request is well formed but its values are wrong."""

    status_code = 422
    code = "validation_failed"


class InvalidParameters(OptimizerError, ValidationFailed):
    """A rating's parameters are not a point of the search space."""

    status_code = 422
    code = "invalid_parameters"

    def __init__(self, index: int, reason_es: str, reason_en: str) -> None:
        es = OPTIMIZER.say("invalid_parameters", "es", index=index, reason=reason_es)
        en = OPTIMIZER.say("invalid_parameters", "en", index=index, reason=reason_en)
        super().__init__(Sentence(self.code, es, en, {"index": index}), index=index)
