"""Fake Leonardo AI and Replicate servers: test doubles that speak the real protocols.

Each fake is two small FastAPI apps on loopback ports, so the client sees two origins
like in production: the provider's API, and an asset host standing in for S3 presigned
uploads and the result CDN (which refuses requests carrying the API key). A
:class:`Scenario` scripts failures per route (429 with Retry-After, 5xx, slow answers,
malformed JSON, 404 results, failed generations, bad keys); :class:`FakeState` records
every request so a test can assert exactly what reached the provider::

    with FakeServer("leonardo", Scenario(faults={"create": ["429"]})) as fake:
        provider = LeonardoProvider("test-key", base_url=fake.base_url, ...)
        ...
        assert fake.state.calls("create")[-1]["json"]["init_strength"] == 0.3
"""

from __future__ import annotations

from services.gateway.providers.fakes._loopback import LoopbackServer
from services.gateway.providers.fakes._state import (
    FAULTS,
    FakeState,
    RecordingProgress,
    RecordingSleep,
    Scenario,
    assets_app,
)
from services.gateway.providers.fakes._transport import LosingTransport
from services.gateway.providers.fakes.leonardo import leonardo_app
from services.gateway.providers.fakes.replicate import replicate_app

__all__ = [
    "FAULTS",
    "FakeServer",
    "FakeState",
    "LoopbackServer",
    "LosingTransport",
    "RecordingProgress",
    "RecordingSleep",
    "Scenario",
    "leonardo_app",
    "replicate_app",
    "serve_fake",
]

API_PREFIX = {"leonardo": "/api/rest/v1", "replicate": "/v1"}


class FakeServer:
    """A running fake provider (``kind`` is ``leonardo`` or ``replicate``); a context manager.

    ``url`` is the API origin, ``base_url`` what the client is configured with, and
    ``asset_url`` the S3/CDN origin. ``reset(scenario)`` starts a new test on the same
    running servers.
    """

    def __init__(self, kind: str, scenario: Scenario | None = None) -> None:
        if kind not in API_PREFIX:
            raise ValueError(f"unknown fake {kind!r}; known: {sorted(API_PREFIX)}")
        self.kind = kind
        self.state = FakeState(scenario=scenario or Scenario())
        app = leonardo_app(self.state) if kind == "leonardo" else replicate_app(self.state)
        self._api = LoopbackServer(app)
        self._assets = LoopbackServer(assets_app(self.state))
        self.url = self.state.api_url = self._api.url
        self.asset_url = self.state.asset_url = self._assets.url
        self.base_url = self.url + API_PREFIX[kind]

    def reset(self, scenario: Scenario | None = None) -> FakeState:
        self.state.reset(scenario)
        return self.state

    def __enter__(self) -> FakeServer:
        self._api.__enter__()
        try:
            self._assets.__enter__()
        except BaseException:
            self._api.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._assets.__exit__(None, None, None)
        self._api.__exit__(None, None, None)


def serve_fake(kind: str, scenario: Scenario | None = None) -> tuple[FakeServer, FakeState]:
    """A fake ``leonardo`` or ``replicate`` server (not started: use it as a context
    manager) and its state."""
    server = FakeServer(kind, scenario)
    return server, server.state
