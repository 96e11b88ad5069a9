"""Fixtures for the cross-service tests: the four services as real processes."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from scripts.run import SERVICES, Cluster
from services.common.testing import wait_for
from services.gateway.testing import TEST_PASSWORD

ADMIN_USER = "admin"

__all__ = ["wait_for"]

ARTIFACTS = Path(__file__).parent / "artifacts"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_cluster(tmp_path: Path, database_urls: dict[str, str] | None = None) -> Cluster:
    env = {"DATA_DIR": str(tmp_path / "data"), "LOG_LEVEL": "INFO",
           "GATEWAY_OUTBOX_MAX_BACKOFF_SECONDS": "2",
           "AFINADOR_ADMIN_USER": ADMIN_USER, "AFINADOR_ADMIN_PASSWORD": TEST_PASSWORD}
    for service, url in (database_urls or {}).items():
        env[f"{service.upper()}_DATABASE_URL"] = url
    return Cluster(ports={s: free_port() for s in SERVICES}, env=env, log_dir=tmp_path / "logs")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """All four services on free loopback ports with fresh SQLite databases."""
    running = make_cluster(tmp_path)
    running.start_all()
    try:
        running.wait_healthy(deadline_s=90)
        yield running
    finally:
        running.stop_all()


def trainer_headers(cluster: Cluster, name: str = "lucia") -> dict[str, str]:
    """A trainer added with the command line, and the API token it prints for her."""
    env_password = {"AFINADOR_PASSWORD": TEST_PASSWORD}
    cluster.env.update(env_password)
    cluster.users("add", name, "--role", "trainer")
    return {"Authorization": f"Bearer {cluster.users('token', name).splitlines()[-1]}"}


def internal_headers() -> dict[str, str]:
    from services.common.settings import DEV_SERVICE_TOKEN

    return {"Authorization": f"Bearer {DEV_SERVICE_TOKEN}"}


def counts(cluster: Cluster) -> dict[str, Any]:
    """What each downstream service has counted so far."""
    with httpx.Client(headers=internal_headers(), timeout=10) as client:
        optimizer = client.get(cluster.url("optimizer") + "/ml/status").json()
        versions = client.get(cluster.url("evolution") + "/prompts/versions").json()
        reward = client.get(cluster.url("reward") + "/ml/status").json()
    per_version = {v["version"]: v["performance"]["sample_count"] for v in versions["versions"]}
    return {"optimizer": optimizer["samples_seen"], "evolution": per_version,
            "reward": reward["observations"]}
