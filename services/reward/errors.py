"""Errors the reward service raises, and the HTTP status each one maps to.

    AfinadorError (services.common)
    └── RewardError                 root of this service's errors
        ├── InvalidImage (422)      the upload is not a readable image (empty, not an
        │                           image, truncated or corrupt)
        │   └── ImageTooLarge (413) the upload exceeds the byte or pixel limit
        ├── ModelUnavailable (503)  the model or a feature it needs (CLIP) can't be used
        ├── NoValidatedModel (409)  no validated model is active (stay in phase 1)
        ├── NotEnoughData (409)     too few observations to train or validate
        ├── ModelNotFound (404)     no model version by that name
        ├── RunNotFound (404)       no training run by that id
        ├── RollbackRefused (409)   that version can't be activated
        └── InvalidRequest (422)    the request's values are wrong (a rating outside
                                    1–5, too many images in one call)

Each carries a Spanish sentence (shown to trainers) and an English one, from this
service's catalogue (``errors.<lang>.json`` beside this module, keyed by code); the
shared handler in :mod:`services.common.errors` turns them into JSON responses.
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

REWARD = Catalogue("reward", Path(__file__).with_name("errors"), fallback=COMMON)
"""This service's sentences (``services/reward/errors.<lang>.json``)."""


class RewardError(AfinadorError):
    """Root of the reward service's errors."""

    code = "reward_error"
    catalogue = REWARD


class InvalidImage(RewardError, ValidationFailed):
    """The uploaded bytes are not an image this service can read."""

    status_code = 422
    code = "invalid_image"


class ImageTooLarge(InvalidImage):
    """The upload is bigger than ``REWARD_MAX_IMAGE_BYTES`` or ``REWARD_MAX_PIXELS``."""

    status_code = 413
    code = "image_too_large"


class ModelUnavailable(RewardError, ServiceUnavailable):
    """The model (or a feature it needs) cannot be used by this service right now."""

    code = "model_unavailable"


class NoValidatedModel(RewardError, Conflict):
    """No validated reward model is active yet: the caller should stay in phase 1."""

    code = "no_validated_model"


class NotEnoughData(RewardError, Conflict):
    """Too few labelled observations to train or validate a model."""

    code = "not_enough_data"


class ModelNotFound(RewardError, NotFound):
    """The named model version does not exist."""

    code = "model_not_found"


class RollbackRefused(RewardError, Conflict):
    """The requested version cannot be activated (never validated, or nothing to roll back to)."""

    code = "rollback_refused"


class RunNotFound(RewardError, NotFound):
    """No training run has that id."""

    code = "training_run_not_found"


class InvalidRequest(RewardError, ValidationFailed):
    """The request is well formed but its values are wrong."""

    code = "invalid_request"
