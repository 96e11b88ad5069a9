"""Observations → the GP's inputs, and the key that names one fitted model.

* :func:`encode` turns stored observations into :class:`services.optimizer.gp.Design`
  (unit-cube coordinates and integer category codes) and the ratings vector. Codes
  are assigned in order of first appearance; a category never seen in training
  (a new prompt version) gets ``-1`` through :class:`Vocabulary`.
* :func:`model_key` hashes exactly what a fitted model depends on: every
  observation field the model reads, and the configuration. Two processes with the
  same observations compute the same key, and so the same model (fits start from
  the prior's centre; random candidates and posterior samples are seeded from it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from services.common.parameter_space import PROVIDERS
from services.optimizer import gp
from services.optimizer.config import GPConfig
from services.optimizer.space import Observation, to_unit


@dataclass
class Vocabulary:
    """Integer codes for the categorical inputs of one fit."""

    modes: dict[str | None, int]
    versions: dict[str | None, int]
    raters: dict[str | None, int]

    def mode(self, mode: str | None) -> int:
        return self.modes.get(mode, -1)

    def version(self, version: str | None) -> int:
        return self.versions.get(version, -1)


def _codes(items: Sequence[Any]) -> tuple[np.ndarray, dict[Any, int]]:
    vocab: dict[Any, int] = {}
    return np.array([vocab.setdefault(i, len(vocab)) for i in items], dtype=int), vocab


def encode(observations: Sequence[Observation]) -> tuple[gp.Design, np.ndarray, Vocabulary]:
    """Observations → the GP's design matrix, ratings and category codes."""
    renders = [o.render if o.render is not None else f"#{i}" for i, o in enumerate(observations)]
    mode, modes = _codes([o.mode for o in observations])
    version, versions = _codes([o.prompt_version for o in observations])
    image, _ = _codes(renders)
    rater, raters = _codes([o.rater for o in observations])
    design = gp.Design(
        x=np.array([to_unit(o.values) for o in observations], dtype=float).reshape(-1, 3),
        provider=np.array([PROVIDERS.index(o.provider) for o in observations], dtype=int),
        mode=mode,
        version=version,
        image=image,
        rater=rater,
    )
    ratings = np.array([float(o.rating) for o in observations])
    return design, ratings, Vocabulary(modes, versions, raters)


def model_key(observations: Sequence[Observation], config: GPConfig) -> str:
    """A hash of everything a fitted model depends on."""
    payload = {
        "config": config.fingerprint(),
        "observations": [
            [
                o.provider,
                *(round(v, 9) for v in to_unit(o.values)),
                float(o.rating),
                o.render,
                o.rater,
                o.mode,
                o.prompt_version,
            ]
            for o in observations
        ],
    }
    blob = json.dumps(payload, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()
