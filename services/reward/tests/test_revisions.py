"""A trainer's correction reaches the reward service as a higher revision of the same
rating id: the stored label changes, the observation count does not."""

from __future__ import annotations

from fastapi.testclient import TestClient

from services.reward.models import Observation
from services.reward.tests.test_api import client, observe, rows, settings

__all__ = ["client", "settings"]  # fixtures used below


def test_a_higher_revision_replaces_the_label_once(client: TestClient) -> None:
    assert observe(client, rating_id="r-1", rating=4).json() == {"stored": True,
                                                                 "observations": 1}
    revised = observe(client, rating_id="r-1", rating=2, revision="2").json()
    assert revised == {"stored": False, "observations": 1}
    stale = observe(client, rating_id="r-1", rating=5).json()  # a late revision 1
    assert stale == {"stored": False, "observations": 1}
    (stored,) = rows(client, Observation)
    assert (stored.rating, stored.revision) == (2, 2)
