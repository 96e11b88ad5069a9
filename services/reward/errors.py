"""Errors the reward service raises, and the HTTP status each one maps to.

    AfinadorError (services.common)
    └── RewardError                 root of this service's errors
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

Uploads that are not an image this service can use raise the shared ``InvalidImage``
(422), ``ImageTooLarge`` (413) or ``UnsupportedImageType`` (415) of
:mod:`services.common.errors` (one decoder, :mod:`services.common.images`, for every
service); the blob stores raise the shared ``BlobNotFound`` (404) and
``BlobStoreUnavailable`` (503).
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
