"""Fixtures for the evolution tests: an app on the backend under test, its token."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.common.settings import REPO_ROOT
from services.evolution.main import create_app
from services.evolution.settings import EvolutionSettings

SEED_PROMPTS = REPO_ROOT / "prompts"


@pytest.fixture
def prompts_dir(tmp_path: Path) -> Path:
    """A private copy of the repository's prompts/ that a test may modify."""
    target = tmp_path / "prompts"
    shutil.copytree(SEED_PROMPTS, target)
    return target


@pytest.fixture
def settings(database_url: str, prompts_dir: Path) -> EvolutionSettings:
    return EvolutionSettings(
        database_url=database_url,
        prompts_dir=prompts_dir,
        evolve_every=10,
        export_dir=prompts_dir.parent / "export",
        engine="offline",
        data_dir=prompts_dir.parent / "data",
    )


@pytest.fixture
def auth(settings: EvolutionSettings) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.service_token}"}


@pytest.fixture
def client(settings: EvolutionSettings, auth: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(settings), headers=auth) as test_client:
        yield test_client


@pytest.fixture
def evolution_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """``caplog`` that survives app creation.

    ``build_app`` calls ``configure_logging``, which replaces the root logger's
    handlers and so drops pytest's capture handler; attach it to this service's
    logger as well.
    """
    logger = logging.getLogger("services.evolution")
    logger.addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)
