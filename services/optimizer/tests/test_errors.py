"""The optimizer's error tree: one root under the shared one, drawn in the docstring."""

from __future__ import annotations

import inspect

from services.common.errors import AfinadorError, ValidationFailed, error_body
from services.optimizer import errors
from services.optimizer.errors import InvalidParameters, OptimizerError


def test_every_error_is_an_optimizer_error_and_is_drawn() -> None:
    classes = [
        c for _, c in inspect.getmembers(errors, inspect.isclass)
        if c.__module__ == errors.__name__ and issubclass(c, AfinadorError)
    ]
    assert len(classes) == len([
        c for _, c in inspect.getmembers(errors, inspect.isclass)
        if c.__module__ == errors.__name__
    ])
    assert OptimizerError in classes and issubclass(OptimizerError, AfinadorError)
    for cls in classes:
        assert issubclass(cls, OptimizerError), cls
        assert cls.__name__ in (errors.__doc__ or ""), cls
    assert len({c.code for c in classes}) == len(classes)  # codes are unique


def test_invalid_parameters_is_a_422_in_both_languages() -> None:
    error = InvalidParameters(3, "Falta guidance_scale.", "guidance_scale is missing.")
    assert isinstance(error, ValidationFailed) and error.status_code == 422
    body = error_body(error)
    assert body["error"]["code"] == "invalid_parameters"
    assert body["detail"].startswith("results[3].parameters: Falta guidance_scale.")
    assert "No se ha guardado ninguna valoración" in body["detail"]
    assert body["error"]["message_en"].endswith("No rating of the batch was stored.")
    assert body["error"]["details"] == {"index": 3}
