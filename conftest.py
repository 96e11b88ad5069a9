"""Fixtures shared by every test in the repository.

``database_url`` runs a test once per database backend: SQLite always, and
PostgreSQL when ``TEST_POSTGRES_URL`` is set (a fresh database is created for the
test and dropped afterwards). Without it the PostgreSQL case is skipped with a
visible reason.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.common.testing import POSTGRES_URL, postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL case skipped: TEST_POSTGRES_URL is not set")
    yield from postgres_database()
