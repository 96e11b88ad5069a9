"""``Annotated`` dependency aliases the reward routers share."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.reward.extraction import FeatureContext
from services.reward.features import FeatureExtractor
from services.reward.runtime import Runtime
from services.reward.settings import RewardSettings


def _settings(request: Request) -> RewardSettings:
    settings: RewardSettings = request.app.state.settings
    return settings


def _extractor(request: Request) -> FeatureExtractor:
    extractor: FeatureExtractor = request.app.state.extractor
    return extractor


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.reward
    return runtime


def _context(request: Request) -> FeatureContext:
    runtime: Runtime = request.app.state.reward
    return runtime.ctx


SettingsDep = Annotated[RewardSettings, Depends(_settings)]
ExtractorDep = Annotated[FeatureExtractor, Depends(_extractor)]
RuntimeDep = Annotated[Runtime, Depends(_runtime)]
ContextDep = Annotated[FeatureContext, Depends(_context)]
