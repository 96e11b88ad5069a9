"""``Annotated`` dependency aliases the optimizer's routers share.

Handlers take the session *factory* (``SessionsDep``) rather than one session per
request: they read in a short transaction and release the connection before
waiting for a model fit, so readers waiting on a fit never hold database
connections that writers need.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.optimizer.keeper import ModelKeeper
from services.optimizer.settings import OptimizerSettings
from services.optimizer.store import ObservationLog


def _settings(request: Request) -> OptimizerSettings:
    settings: OptimizerSettings = request.app.state.settings
    return settings


def _keeper(request: Request) -> ModelKeeper:
    keeper: ModelKeeper = request.app.state.keeper
    return keeper


def _observations(request: Request) -> ObservationLog:
    log: ObservationLog = request.app.state.observations
    return log


def _sessions(request: Request) -> async_sessionmaker[AsyncSession]:
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    return sessions


SettingsDep = Annotated[OptimizerSettings, Depends(_settings)]
KeeperDep = Annotated[ModelKeeper, Depends(_keeper)]
ObservationsDep = Annotated[ObservationLog, Depends(_observations)]
SessionsDep = Annotated[async_sessionmaker[AsyncSession], Depends(_sessions)]
