"""The /ml API over SQLite and (with TEST_POSTGRES_URL) PostgreSQL."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from threading import Barrier
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from services.common.testing import make_test_image
from services.reward.features import FEATURE_DIMS, FEATURE_NAMES, GROUPS
from services.reward.main import create_app
from services.reward.models import CachedFeatures, Observation
from services.reward.settings import RewardSettings

PNG = make_test_image(320, 240, fmt="PNG", seed=1)
JPEG = make_test_image(320, 240, fmt="JPEG", seed=2)


def make_settings(database_url: str, **overrides: Any) -> RewardSettings:
    # Blobs (images, models) go to a fresh directory, never the repository's data/.
    overrides.setdefault("data_dir", Path(tempfile.mkdtemp(prefix="reward-test-")))
    return RewardSettings(database_url=database_url, **overrides)


def auth(settings: RewardSettings) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.service_token}"}


@pytest.fixture
def settings(database_url: str) -> RewardSettings:
    return make_settings(database_url)


@pytest.fixture
def client(settings: RewardSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), headers=auth(settings)) as c:
        yield c


def label(rating_id: str = "rating-1", rating: int = 4, **extra: str) -> dict[str, str]:
    return {
        "rating_id": rating_id,
        "rating": str(rating),
        "experiment_id": "exp-1",
        "option": "A",
        "rater": "ana",
        **extra,
    }


def observe(client: TestClient, image: bytes = PNG, **kwargs: Any) -> Any:
    return client.post(
        "/ml/observe", data=label(**kwargs), files={"image": ("v.png", image, "image/png")}
    )


def extract(client: TestClient, image: bytes, name: str = "x.png") -> Any:
    return client.post("/ml/extract_features", files={"image": (name, image, "image/png")})


def rows(client: TestClient, model: type) -> list[Any]:
    async def load() -> list[Any]:
        async with client.app.state.sessions() as session:  # type: ignore[attr-defined]
            return list((await session.execute(select(model))).scalars())

    assert client.portal is not None
    return client.portal.call(load)


@pytest.mark.parametrize("image", [PNG, JPEG], ids=["png", "jpeg"])
def test_extract_features_shape(client: TestClient, image: bytes) -> None:
    response = extract(client, image)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["dims"] == FEATURE_DIMS == len(body["features"])
    assert body["feature_names"] == list(FEATURE_NAMES)
    assert body["feature_version"] == "classical-v2@512"
    assert body["image_sha256"] == hashlib.sha256(image).hexdigest()
    assert (body["width"], body["height"]) == (320, 240)
    assert set(body["groups"]) == set(GROUPS)
    concatenated: list[float] = []
    for group in GROUPS:
        block = body["groups"][group]
        concatenated.extend(block if isinstance(block, list) else [block])
    assert concatenated == body["features"]
    assert isinstance(body["groups"]["edge_density"], float)
    assert len(body["groups"]["color_histogram"]) == 64


def test_extract_features_is_cached_by_content(client: TestClient) -> None:
    first = extract(client, PNG).json()
    second = extract(client, PNG).json()
    assert (first["cached"], second["cached"]) == (False, True)
    assert first["features"] == second["features"]
    assert len(rows(client, CachedFeatures)) == 1
    assert extract(client, JPEG).json()["cached"] is False
    assert len(rows(client, CachedFeatures)) == 2


@pytest.mark.parametrize(
    "payload, status, code",
    [
        (b"this is not an image at all", 415, "unsupported_image_type"),
        (b"", 422, "invalid_image"),
        (JPEG[: len(JPEG) // 2], 422, "invalid_image"),
    ],
    ids=["not-image", "empty", "truncated-jpeg"],
)
def test_extract_features_refuses_bad_uploads(
    client: TestClient, payload: bytes, status: int, code: str
) -> None:
    response = extract(client, payload)
    assert response.status_code == status
    body = response.json()
    assert body["error"]["code"] == code
    assert body["detail"] == body["error"]["message"]  # Spanish sentence
    assert body["error"]["message_en"] != body["error"]["message"]
    assert rows(client, CachedFeatures) == []


def test_extract_features_refuses_too_large(database_url: str) -> None:
    settings = make_settings(database_url, max_image_bytes=len(PNG) - 1, max_pixels=10_000)
    with TestClient(create_app(settings), headers=auth(settings)) as c:
        too_big = extract(c, PNG)
        assert too_big.status_code == 413
        assert too_big.json()["error"]["code"] == "image_too_large"
        small = make_test_image(200, 100)  # 20 000 px > 10 000
        too_many = extract(c, small)
        assert too_many.status_code == 413
        assert "megapíxeles" in too_many.json()["detail"]


def test_missing_image_field_is_422(client: TestClient) -> None:
    assert client.post("/ml/extract_features").status_code == 422


@pytest.mark.parametrize(
    "method, path",
    [
        ("POST", "/ml/extract_features"),
        ("POST", "/ml/observe"),
        ("GET", "/ml/status"),
        ("GET", "/ml/models"),
    ],
)
def test_ml_routes_need_the_service_token(settings: RewardSettings, method: str, path: str) -> None:
    with TestClient(create_app(settings)) as c:
        assert c.request(method, path).status_code == 401
        wrong = c.request(method, path, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert wrong.json()["error"]["code"] == "unauthorized"
        assert c.get("/healthz").status_code == 200


def test_observe_is_idempotent_by_rating_id(client: TestClient) -> None:
    first = observe(client, rating_id="r-1", rating=5)
    assert first.status_code == 200, first.text
    assert first.json() == {"stored": True, "observations": 1}
    again = observe(client, rating_id="r-1", rating=5)
    assert again.json() == {"stored": False, "observations": 1}
    # A redelivery with a different rating keeps the first one.
    changed = observe(client, rating_id="r-1", rating=2)
    assert changed.json() == {"stored": False, "observations": 1}
    other = observe(client, rating_id="r-2", rating=2)
    assert other.json() == {"stored": True, "observations": 2}
    status = client.get("/ml/status").json()
    assert status["observations"] == 2
    assert status["ratings_histogram"] == {"1": 0, "2": 1, "3": 0, "4": 0, "5": 1}


def test_observe_stores_label_and_the_extracted_features(client: TestClient) -> None:
    response = observe(
        client,
        rating_id="r-9",
        rating=3,
        variant_id="v-7",
        prompt_version="1.2.0",
        mode="surfaces",
    )
    assert response.json()["stored"] is True
    (obs,) = rows(client, Observation)
    assert (obs.rating_id, obs.rating, obs.experiment_id, obs.option, obs.rater) == (
        "r-9",
        3,
        "exp-1",
        "A",
        "ana",
    )
    assert (obs.variant_id, obs.prompt_version, obs.mode) == ("v-7", "1.2.0", "surfaces")
    assert obs.image_sha256 == hashlib.sha256(PNG).hexdigest()
    assert obs.feature_version == "classical-v2@512"
    assert obs.created_at.tzinfo is not None
    extracted = extract(client, PNG).json()
    assert extracted["cached"] is True  # observe filled the cache
    assert obs.features == extracted["features"]


@pytest.mark.parametrize("rating", [7, 0, -1])
def test_observe_rating_out_of_range_is_422_and_stores_nothing(
    client: TestClient, rating: int
) -> None:
    response = observe(client, rating_id="r-bad", rating=rating)
    assert response.status_code == 422
    assert "rating" in response.json()["detail"]
    assert client.get("/ml/status").json()["observations"] == 0
    assert rows(client, Observation) == []


def test_observe_with_bad_image_stores_nothing_and_can_be_retried(client: TestClient) -> None:
    bad = observe(client, image=b"not an image", rating_id="r-5")
    assert bad.status_code == 415
    assert bad.json()["error"]["code"] == "unsupported_image_type"
    assert client.get("/ml/status").json()["observations"] == 0
    good = observe(client, rating_id="r-5")
    assert good.json() == {"stored": True, "observations": 1}


def test_observe_requires_the_label_fields(client: TestClient) -> None:
    response = client.post(
        "/ml/observe",
        data={"rating_id": "r-1", "rating": "3"},
        files={"image": ("v.png", PNG, "image/png")},
    )
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "experiment_id" in detail and "rater" in detail


def test_concurrent_duplicates_store_once(client: TestClient) -> None:
    workers = 6
    barrier = Barrier(workers)

    def send(_: int) -> Any:
        barrier.wait(timeout=30)
        return observe(client, rating_id="r-race", image=JPEG)

    with ThreadPoolExecutor(workers) as pool:
        responses = list(pool.map(send, range(workers)))
    assert [r.status_code for r in responses] == [200] * workers, [r.text for r in responses]
    assert sum(r.json()["stored"] for r in responses) == 1
    assert {r.json()["observations"] for r in responses} == {1}
    assert client.get("/ml/status").json()["observations"] == 1
    assert len(rows(client, Observation)) == 1


def test_concurrent_distinct_ratings_of_one_image_all_store(client: TestClient) -> None:
    workers = 4
    barrier = Barrier(workers)

    def send(i: int) -> Any:
        barrier.wait(timeout=30)
        return observe(client, rating_id=f"r-{i}", image=JPEG)

    with ThreadPoolExecutor(workers) as pool:
        responses = list(pool.map(send, range(workers)))
    assert [r.status_code for r in responses] == [200] * workers, [r.text for r in responses]
    assert all(r.json()["stored"] for r in responses)
    assert client.get("/ml/status").json()["observations"] == workers
    assert len(rows(client, CachedFeatures)) == 1


def test_observations_and_cache_survive_a_restart(database_url: str) -> None:
    settings = make_settings(database_url)
    with TestClient(create_app(settings), headers=auth(settings)) as c:
        assert observe(c, rating_id="r-1", rating=5).json()["stored"] is True
        assert observe(c, rating_id="r-2", rating=1).json()["stored"] is True
    with TestClient(create_app(settings), headers=auth(settings)) as c:
        status = c.get("/ml/status").json()
        assert status["observations"] == 2
        assert status["ratings_histogram"]["5"] == 1
        assert status["ratings_histogram"]["1"] == 1
        assert observe(c, rating_id="r-1", rating=5).json() == {"stored": False, "observations": 2}
        assert extract(c, PNG).json()["cached"] is True


def test_status_and_models_before_any_model(client: TestClient) -> None:
    assert client.get("/ml/status").json() == {
        "observations": 0,
        "ratings_histogram": {"1": 0, "2": 0, "3": 0, "4": 0, "5": 0},
        "feature_version": "classical-v2@512",
        "feature_dims": FEATURE_DIMS,
        "model": None,
        "ready_for_inference": False,
        "model_version": None,
        "validated": False,
        "feature_set": None,
        "heldout_metrics": None,
        "n_train": None,
        "new_observations": 0,
        "retrain_every": 100,
        "training": False,
        "last_training_error": None,
        "best_of_n": None,
        "last_training_run": None,
    }
    assert client.get("/ml/models").json() == {
        "active": None,
        "models": [],
        "feature_set": "classical",
        "clip": {"available": False, "reason": "REWARD_CLIP_MODEL not set"},
        "versions": [],
    }


def test_feature_size_setting_changes_the_version(database_url: str) -> None:
    settings = make_settings(database_url, feature_size=128)
    with TestClient(create_app(settings), headers=auth(settings)) as c:
        body = extract(c, PNG).json()
        assert body["feature_version"] == "classical-v2@128"
        assert c.get("/ml/status").json()["feature_version"] == "classical-v2@128"


def test_observe_treats_blank_optional_fields_as_missing(client: TestClient) -> None:
    response = observe(client, rating_id="r-blank", variant_id="", prompt_version="", mode="")
    assert response.json()["stored"] is True
    (obs,) = rows(client, Observation)
    assert (obs.variant_id, obs.prompt_version, obs.mode) == (None, None, None)
    assert obs.rater == "ana"
