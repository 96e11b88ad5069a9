"""Errors the optimizer service raises, and the HTTP status each one maps to.

    AfinadorError (services.common.errors)
    └── OptimizerError                root of this service's errors
        └── InvalidParameters (422)   a rating's parameters are not a point of the
                                      space (unknown provider, missing name, out of
                                      range); the whole batch is refused

Each carries a Spanish sentence and an English one; the one handler in
:mod:`services.common.errors` turns them into JSON responses (``detail`` in Spanish,
``error.code``, ``error.message_en``). Numerical trouble in the model is never an
error a caller sees: it is logged and the service answers from the best observed
point (see :mod:`services.optimizer.recommendation`).
"""

from __future__ import annotations

from services.common.errors import AfinadorError, ValidationFailed


class OptimizerError(AfinadorError):
    """Root of the optimizer service's errors."""

    code = "optimizer_error"


class InvalidParameters(OptimizerError, ValidationFailed):
    """A rating's parameters are not a point of the search space."""

    status_code = 422
    code = "invalid_parameters"

    def __init__(self, index: int, reason_es: str, reason_en: str) -> None:
        super().__init__(
            f"results[{index}].parameters: {reason_es} "
            "No se ha guardado ninguna valoración del lote.",
            f"results[{index}].parameters: {reason_en} No rating of the batch was stored.",
            index=index,
        )
