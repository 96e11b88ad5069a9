"""Test helpers for the gateway: users made directly in its database.

Tests sign in the way programmatic clients do, with an API token, unless they test
the browser's sign-in itself.
"""

from __future__ import annotations

from fastapi.testclient import TestClient

from services.gateway import accounts

TEST_PASSWORD = "correct-horse-battery"


def add_user(client: TestClient, username: str, role: accounts.Role = "trainer",
             password: str = TEST_PASSWORD) -> str:
    """Create a user in the running app's database; returns a fresh API token for them."""

    async def create() -> str:
        async with client.app.state.sessions() as session, session.begin():  # type: ignore[attr-defined]
            await accounts.add_user(session, username, password, role, actor="test")
            return await accounts.issue_token(session, username, actor="test")

    assert client.portal is not None, "use the TestClient as a context manager"
    return client.portal.call(create)


def sign_in_with_token(client: TestClient, username: str = "ana",
                       role: accounts.Role = "trainer") -> str:
    """Create ``username`` and make every later request of ``client`` carry its token."""
    token = add_user(client, username, role)
    client.headers["Authorization"] = f"Bearer {token}"
    return token
