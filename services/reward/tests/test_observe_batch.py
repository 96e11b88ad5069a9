"""``POST /ml/observe_batch``: several observations per call (the gateway's outbox).

Shape (multipart): ``observations`` is a JSON array of items with the fields of
``/ml/observe`` plus ``original`` (index into the ``originals`` files); ``images``
holds one file per item, in order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.common.testing import make_test_image
from services.reward.main import create_app
from services.reward.models import Observation
from services.reward.settings import RewardSettings
from services.reward.tests.test_api import auth, make_settings, observe, rows

IMAGES = [make_test_image(160, 120, fmt="PNG", seed=10 + k) for k in range(4)]
ORIGINAL = make_test_image(160, 120, fmt="PNG", seed=99)


@pytest.fixture
def settings(database_url: str) -> RewardSettings:
    return make_settings(database_url, feature_size=128, max_observe_batch=4)


@pytest.fixture
def client(settings: RewardSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), headers=auth(settings)) as c:
        yield c


def item(rating_id: str, rating: int = 4, **extra: Any) -> dict[str, Any]:
    return {
        "rating_id": rating_id,
        "rating": rating,
        "experiment_id": "exp-b",
        "option": "A",
        "rater": "ana",
        **extra,
    }


def batch(
    client: TestClient,
    items: list[dict[str, Any]],
    images: list[bytes],
    originals: list[bytes] | None = None,
) -> Any:
    files = [("images", (f"v{k}.png", data, "image/png")) for k, data in enumerate(images)]
    files += [
        ("originals", (f"o{k}.png", data, "image/png")) for k, data in enumerate(originals or [])
    ]
    return client.post("/ml/observe_batch", data={"observations": json.dumps(items)}, files=files)


def test_batch_stores_new_items_reports_duplicates_and_rejects_bad_images(
    client: TestClient,
) -> None:
    assert observe(client, IMAGES[0], rating_id="r-0").json()["stored"] is True
    items = [
        item("r-0"),  # delivered before through /ml/observe
        item("r-1", 5, original=0),
        item("r-2", 2),
        item("r-3", 3, original=0, variant_id="v-3", mode="structure"),
    ]
    images = [IMAGES[0], IMAGES[1], b"not an image", IMAGES[3]]
    response = batch(client, items, images, [ORIGINAL])
    assert response.status_code == 200, response.text
    body = response.json()
    assert [(r["index"], r["rating_id"], r["status"]) for r in body["results"]] == [
        (0, "r-0", "duplicate"),
        (1, "r-1", "stored"),
        (2, "r-2", "rejected"),
        (3, "r-3", "stored"),
    ]
    assert body["results"][2]["error"]["code"] == "unsupported_image_type"
    assert body["stored"] == 2 and body["observations"] == 3
    by_id = {o.rating_id: o for o in rows(client, Observation)}
    assert set(by_id) == {"r-0", "r-1", "r-3"}
    assert by_id["r-1"].rating == 5 and by_id["r-3"].variant_id == "v-3"
    assert by_id["r-3"].mode == "structure"
    assert by_id["r-1"].original_sha256 == hashlib.sha256(ORIGINAL).hexdigest()
    assert by_id["r-3"].structure is not None and len(by_id["r-3"].structure) > 0
    assert by_id["r-1"].image_sha256 == hashlib.sha256(IMAGES[1]).hexdigest()
    # The same features as a single observe of the same bytes would store.
    single = client.post(
        "/ml/extract_features", files={"image": ("x.png", IMAGES[1], "image/png")}
    ).json()
    assert single["cached"] is True and single["features"] == by_id["r-1"].features

    # Redelivering the batch (the outbox retrying) stores nothing twice; the fixed
    # image goes in.
    again = batch(client, items, [IMAGES[0], IMAGES[1], IMAGES[2], IMAGES[3]], [ORIGINAL])
    assert [r["status"] for r in again.json()["results"]] == [
        "duplicate",
        "duplicate",
        "stored",
        "duplicate",
    ]
    assert again.json()["observations"] == 4


@pytest.mark.parametrize(
    ("items", "n_images", "n_originals", "words"),
    [
        ([item(f"r-{k}") for k in range(5)], 5, 0, "4"),  # more than max_observe_batch
        ([], 1, 0, "1"),
        ([item("r-1"), item("r-2")], 1, 0, "imágenes"),  # one image short
        ([item("r-1", original=1)], 1, 1, "original"),  # no second original
        ([item("r-1", 9)], 1, 0, "rating"),  # out of 1–5
    ],
)
def test_batch_refuses_a_malformed_request_as_a_whole(
    client: TestClient, items: list[dict[str, Any]], n_images: int, n_originals: int, words: str
) -> None:
    response = batch(client, items, IMAGES[:1] * n_images, [ORIGINAL] * n_originals)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_request"
    assert words in response.json()["detail"]
    assert rows(client, Observation) == []


def test_batch_with_invalid_json_is_422(client: TestClient) -> None:
    response = client.post(
        "/ml/observe_batch",
        data={"observations": "{not json"},
        files=[("images", ("v.png", IMAGES[0], "image/png"))],
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"
