"""Fixtures shared by every test in the repository.

``database_url`` runs a test once per database backend: SQLite always, and
PostgreSQL when ``TEST_POSTGRES_URL`` is set (a fresh database is created for the
test and dropped afterwards). Without it the PostgreSQL case is skipped with a
visible reason.

``s3_endpoint`` is a real S3-compatible server (moto's server mode) on a loopback
port, for the blob stores' S3 backends; ``aws_env`` gives boto3 dummy credentials.
"""

from __future__ import annotations

import socket
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


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
