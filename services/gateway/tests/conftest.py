"""Gateway test fixtures: the app on a given database with its siblings unreachable."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.gateway.main import create_app
from services.gateway.settings import GatewaySettings
from services.gateway.testing import sign_in_with_token


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there once the socket is closed


@pytest.fixture
def gateway_settings(database_url: str, tmp_path: Path) -> GatewaySettings:
    return GatewaySettings(
        database_url=database_url, data_dir=tmp_path, optimizer_url=closed_port_url(),
        evolution_url=closed_port_url(), reward_url=closed_port_url(),
        worker_poll_seconds=0.05, outbox_poll_seconds=0.2, internal_timeout_seconds=2,
        shuffle_options=False)  # tests that check the order of A/B; shuffling has its own


@pytest.fixture
def anonymous_gateway(gateway_settings: GatewaySettings) -> Iterator[TestClient]:
    """The gateway app with nobody signed in."""
    with TestClient(create_app(gateway_settings)) as client:
        yield client


@pytest.fixture
def gateway(anonymous_gateway: TestClient) -> TestClient:
    """The gateway app, every request signed by trainer ``ana``'s API token."""
    sign_in_with_token(anonymous_gateway, "ana", "trainer")
    return anonymous_gateway
