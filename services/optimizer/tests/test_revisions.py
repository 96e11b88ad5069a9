"""A trainer's correction reaches the optimizer as a higher revision of the same rating id:
it replaces the stored rating and is never counted twice."""

from __future__ import annotations

from fastapi.testclient import TestClient

from services.optimizer.tests.test_api import client, post, result, settings, status

__all__ = ["client", "settings"]  # fixtures used by the tests below


def test_a_higher_revision_replaces_the_rating_and_counts_once(client: TestClient) -> None:
    post(client, "/ml/update_model", {"results": [result(1, 4), result(2, 2)]})
    revised = post(client, "/ml/update_model", {"results": [result(1, 1) | {"revision": 2}]})
    assert (revised["new_observations"], revised["samples_seen"]) == (0, 2)
    assert status(client)["providers_seen"]["local"] == {"count": 2, "avg_rating": 1.5}
    # A late redelivery of revision 1 (or the same revision again) changes nothing.
    post(client, "/ml/update_model", {"results": [result(1, 4), result(1, 5) | {"revision": 2}]})
    assert status(client)["providers_seen"]["local"] == {"count": 2, "avg_rating": 1.5}
    # Within one batch, the highest revision of a rating id wins.
    post(client, "/ml/update_model", {"results": [result(2, 5) | {"revision": 3},
                                                  result(2, 3) | {"revision": 2}]})
    assert status(client)["providers_seen"]["local"] == {"count": 2, "avg_rating": 3.0}
