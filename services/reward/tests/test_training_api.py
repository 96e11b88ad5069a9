"""Training, the validation gate, the registry and predictions over HTTP.

Synthetic labels with a known cause: each image is the test room blurred by one of
five radii, rated 5 (sharp) down to 1 (most blurred), so a working model must rank
sharp images above blurred ones.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageFilter
from sqlalchemy import select

from services.common.testing import make_test_image
from services.reward.main import create_app
from services.reward.models import ModelVersion, Observation
from services.reward.settings import RewardSettings

BLUR = (0.0, 0.8, 1.6, 2.4, 3.2)


def image(i: int, level: int, size: tuple[int, int] = (96, 72)) -> bytes:
    raw = Image.open(io.BytesIO(make_test_image(*size, seed=i))).convert("RGB")
    if BLUR[level]:
        raw = raw.filter(ImageFilter.GaussianBlur(BLUR[level]))
    out = io.BytesIO()
    raw.save(out, format="PNG")
    return out.getvalue()


def make_settings(
    database_url: str, data_dir: Path | None = None, **overrides: Any
) -> RewardSettings:
    values: dict[str, Any] = {
        "feature_size": 128,
        "min_train": 10,
        "min_holdout": 3,
        "ensemble_resamples": 2,
        "retrain_every": 1000,
        "holdout_fraction": 0.25,
    }
    values.update(overrides)
    return RewardSettings(
        database_url=database_url,
        data_dir=data_dir or Path(tempfile.mkdtemp(prefix="reward-test-")),
        **values,
    )


def connect(settings: RewardSettings) -> TestClient:
    headers = {"Authorization": f"Bearer {settings.service_token}"}
    return TestClient(create_app(settings), headers=headers)


@pytest.fixture
def settings(database_url: str) -> RewardSettings:
    return make_settings(database_url)


@pytest.fixture
def client(settings: RewardSettings) -> Iterator[TestClient]:
    with connect(settings) as c:
        yield c


def observe(client: TestClient, i: int, original: bytes | None = None) -> Any:
    level = i % 5
    files = {"image": ("v.png", image(i, level), "image/png")}
    if original is not None:
        files["original"] = ("o.png", original, "image/png")
    data = {
        "rating_id": f"r-{i}",
        "rating": str(5 - level),
        "experiment_id": f"e-{i}",
        "option": "A",
        "rater": "ana",
    }
    response = client.post("/ml/observe", data=data, files=files)
    assert response.status_code == 200, response.text
    return response.json()


def predict(client: TestClient, images: list[bytes], **kwargs: Any) -> Any:
    files = [("images", (f"c{i}.png", b, "image/png")) for i, b in enumerate(images)]
    if "original" in kwargs:
        files.append(("original", ("o.png", kwargs.pop("original"), "image/png")))
    return client.post("/ml/predict_rating", files=files, params=kwargs)


def train(client: TestClient) -> dict[str, Any]:
    """POST /ml/train (202), wait for the background run, return GET /ml/train/{id}."""
    accepted = client.post("/ml/train")
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    assert body["status_url"] == f"/ml/train/{body['run_id']}"
    runtime = client.app.state.reward  # type: ignore[attr-defined]
    assert client.portal is not None
    client.portal.call(runtime.trainer.wait_idle)
    status = client.get(body["status_url"])
    assert status.status_code == 200, status.text
    run: dict[str, Any] = status.json()
    assert run["run_id"] == body["run_id"] and run["stage"] == "done" and run["progress"] == 1
    return run


def trained(client: TestClient) -> dict[str, Any]:
    run = train(client)
    assert run["status"] == "succeeded", run
    result: dict[str, Any] = run["result"]
    assert run["version"] == result["version"]
    return result


def demand_srcc(client: TestClient, minimum: float) -> None:
    """Change the gate's minimum SRCC of the running service."""
    trainer = client.app.state.reward.trainer  # type: ignore[attr-defined]
    trainer.settings = trainer.settings.model_copy(update={"min_srcc": minimum})


def rows(client: TestClient, model: type) -> list[Any]:
    async def load() -> list[Any]:
        async with client.app.state.sessions() as session:  # type: ignore[attr-defined]
            return list((await session.execute(select(model))).scalars())

    assert client.portal is not None
    return client.portal.call(load)


def test_no_model_means_409_and_too_few_ratings_refuse_training(client: TestClient) -> None:
    response = predict(client, [image(0, 0)])
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "no_validated_model"
    for i in range(6):
        observe(client, i)
    refused = train(client)
    assert refused["status"] == "failed" and refused["result"] is None
    assert refused["error"]["code"] == "not_enough_data"
    assert "Sigue valorando" in refused["error"]["message"]
    assert client.get("/ml/models").json()["models"] == []
    assert client.get("/ml/train/tr-nope").status_code == 404


def test_train_validate_predict_and_gate(client: TestClient) -> None:
    for i in range(40):
        observe(client, i)
    first = trained(client)
    assert first["version"] == "rm-0001"
    assert first["validated"] is True and first["activated"] is True
    assert first["feature_set"] == "classical" and first["incumbent"] is None
    assert first["n_train"] + first["n_holdout"] == 40 and first["n_holdout"] >= 3
    assert first["metrics"]["mae"] < first["baseline"]["mae"]
    assert {"srcc", "plcc", "mae", "within_05", "pair_accuracy", "best_of_n_gain"} <= set(
        first["metrics"]
    )
    assert [c["name"] for c in first["gate"]["checks"]] == [
        "srcc_minimum",
        "mae_vs_constant",
    ]

    status = client.get("/ml/status").json()
    assert status["ready_for_inference"] is True
    assert status["model"] == status["model_version"] == "rm-0001"
    assert status["heldout_metrics"] == first["metrics"]
    assert status["n_train"] == first["n_train"] and status["new_observations"] == 0

    # Best-of-N: six unseen candidates, sharp to blurred, scored in one call, in order.
    candidates = [image(100 + k, level) for k, level in enumerate((0, 4, 0, 4, 2, 1))]
    response = predict(client, candidates)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == "rm-0001" and body["validated"] is True
    preds = body["predictions"]
    assert [p["index"] for p in preds] == list(range(6))
    assert all(1.0 <= p["mean"] <= 5.0 and p["std"] > 0 for p in preds)
    assert min(preds[0]["mean"], preds[2]["mean"]) > max(preds[1]["mean"], preds[3]["mean"])
    import hashlib

    assert preds[0]["image_sha256"] == hashlib.sha256(candidates[0]).hexdigest()
    again = predict(client, candidates).json()  # features now come from the cache
    assert again["predictions"] == preds

    # The gate: retraining on the same data gives the same model, which is not worse
    # than the active one on any check (every difference is 0), so it goes live.
    second = trained(client)
    assert second["version"] == "rm-0002" and second["incumbent"] == "rm-0001"
    assert second["validated"] is True and second["activated"] is True
    checks = {c["name"]: c for c in second["gate"]["checks"]}
    assert {"srcc_vs_active", "mae_vs_active"} <= set(checks)
    assert checks["srcc_vs_active"]["candidate"] == checks["srcc_vs_active"]["reference"]
    assert second["incumbent_metrics"] == second["metrics"]
    # A model that does not clear the minimum SRCC is rejected, and says why.
    demand_srcc(client, 0.9999)
    third = trained(client)
    assert third["version"] == "rm-0003" and third["activated"] is False
    assert "rejected" in third["reason"] and "minimum" in third["reason"]
    models = client.get("/ml/models").json()
    assert models["active"] == "rm-0002"
    assert models["models"] == ["rm-0003", "rm-0002", "rm-0001"]
    statuses = {v["version"]: v["status"] for v in models["versions"]}
    assert statuses == {"rm-0001": "inactive", "rm-0002": "active", "rm-0003": "rejected"}
    rejected = models["versions"][0]
    assert rejected["gate"]["passed"] is False and rejected["incumbent"] == "rm-0002"
    assert rejected["metrics"]["srcc"] == third["metrics"]["srcc"]
    audit = client.get("/ml/audit").json()["entries"]
    assert [(e["action"], e["version"]) for e in audit] == [
        ("gate_rejected", "rm-0003"),
        ("gate_passed", "rm-0002"),
        ("gate_passed", "rm-0001"),
    ]
    assert audit[0]["details"]["gate"] == rejected["gate"]
    # A rejected version can still be asked for explicitly, and says so.
    shadow = predict(client, candidates[:2], version="rm-0003").json()
    assert shadow["model_version"] == "rm-0003" and shadow["validated"] is False
    assert predict(client, candidates[:1], version="rm-9999").status_code == 404

    # Bad batches are refused as a whole.
    bad = predict(client, [candidates[0], b"not an image"])
    assert bad.status_code == 415 and bad.json()["error"]["code"] == "unsupported_image_type"
    too_many = predict(client, [candidates[0]] * 33)
    assert too_many.status_code == 422


def test_rollback_only_to_validated_versions(client: TestClient) -> None:
    for i in range(40):
        observe(client, i)
    assert trained(client)["activated"] is True  # rm-0001
    demand_srcc(client, 0.9999)
    assert trained(client)["activated"] is False  # rm-0002, rejected
    assert client.post("/ml/models/rollback").status_code == 409  # nothing earlier
    refused = client.post("/ml/models/rollback", json={"version": "rm-0002"})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "rollback_refused"
    assert client.post("/ml/models/rollback", json={"version": "nope"}).status_code == 404

    # Make rm-0002 a validated, active version by hand, then roll back to rm-0001.
    async def promote() -> None:
        async with client.app.state.sessions() as session, session.begin():  # type: ignore[attr-defined]
            from services.reward import store

            row = await store.get_model(session, "rm-0002")
            assert row is not None
            row.validated = True
            await store.activate(session, "rm-0002")

    assert client.portal is not None
    client.portal.call(promote)
    assert client.get("/ml/status").json()["model_version"] == "rm-0002"
    back = client.post("/ml/models/rollback")
    assert back.status_code == 200, back.text
    assert back.json() == {"active": "rm-0001", "previous": "rm-0002"}
    assert client.get("/ml/status").json()["model_version"] == "rm-0001"
    forward = client.post(
        "/ml/models/rollback", json={"version": "rm-0002", "actor": "ana", "reason": "test"}
    ).json()
    assert forward == {"active": "rm-0002", "previous": "rm-0001"}
    latest = client.get("/ml/audit", params={"limit": 2}).json()["entries"]
    assert [(e["action"], e["version"], e["previous"], e["actor"]) for e in latest] == [
        ("rollback", "rm-0002", "rm-0001", "ana"),
        ("rollback", "rm-0001", "rm-0002", "api"),
    ]
    assert [r.status for r in rows(client, ModelVersion) if r.status == "active"] == ["active"]


def test_automatic_retraining_after_n_new_observations(database_url: str) -> None:
    settings = make_settings(database_url, retrain_every=16, min_train=8, min_holdout=2)
    with connect(settings) as client:
        for i in range(15):
            observe(client, i)
        assert client.get("/ml/status").json()["new_observations"] == 15
        runtime = client.app.state.reward  # type: ignore[attr-defined]
        assert client.portal is not None
        client.portal.call(runtime.trainer.wait_idle)
        assert client.get("/ml/models").json()["models"] == []  # 15 < 16: nothing trained
        observe(client, 15)
        client.portal.call(runtime.trainer.wait_idle)
        models = client.get("/ml/models").json()
        assert models["models"] == ["rm-0001"], client.get("/ml/status").json()
        assert models["versions"][0]["trigger"] == "auto"
        status = client.get("/ml/status").json()
        assert status["new_observations"] == 0 and status["retrain_every"] == 16


def test_model_survives_a_restart_and_a_corrupt_blob_is_refused(database_url: str) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="reward-test-"))
    settings = make_settings(database_url, data_dir=data_dir)
    with connect(settings) as client:
        for i in range(40):
            observe(client, i)
        assert trained(client)["activated"] is True
        before = predict(client, [image(200, 0)]).json()
    with connect(settings) as client:
        assert client.get("/ml/status").json()["ready_for_inference"] is True
        assert predict(client, [image(200, 0)]).json() == before
    (blob,) = (data_dir / "reward" / "models").glob("rm-0001.pkl")
    blob.write_bytes(blob.read_bytes()[:-10])
    with connect(settings) as client:
        broken = predict(client, [image(200, 0)])
        assert broken.status_code == 503
        assert broken.json()["error"]["code"] == "model_unavailable"


def test_original_adds_structure_features_and_bytes_are_kept(
    client: TestClient, settings: RewardSettings
) -> None:
    original = image(7, 7 % 5)
    observe(client, 7, original=original)  # the candidate is the original itself
    flipped = io.BytesIO()
    Image.open(io.BytesIO(image(8, 8 % 5))).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(
        flipped, format="PNG"
    )
    observe(client, 8, original=flipped.getvalue())  # layout mirrored: structure changed
    observe(client, 9)
    by_id = {o.rating_id: o for o in rows(client, Observation)}
    assert by_id["r-7"].structure[:3] == pytest.approx([1.0, 1.0, 1.0])
    assert by_id["r-8"].structure[0] == 1.0 and by_id["r-8"].structure[2] < 0.9
    assert by_id["r-9"].structure is None and by_id["r-9"].original_sha256 is None
    import hashlib

    assert by_id["r-7"].original_sha256 == hashlib.sha256(original).hexdigest()
    stored = {p.name for p in (settings.images_path).rglob("*") if p.is_file()}
    assert hashlib.sha256(original).hexdigest() in stored
    assert by_id["r-9"].image_sha256 in stored


def test_predict_with_an_original(client: TestClient) -> None:
    original = image(1, 0)
    for i in range(40):
        observe(client, i, original=original if i % 2 else None)
    assert trained(client)["activated"] is True
    response = predict(client, [image(300, 0), image(301, 4)], original=original)
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 2


def test_with_s3_storage_a_new_replica_serves_the_model_without_local_files(
    s3_endpoint: str, aws_env: None, tmp_path: Path
) -> None:
    from services.common.testing import s3_bucket

    s3_bucket(s3_endpoint, "reward-replicas")
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'reward.db'}"
    storage = {
        "storage_url": "s3://reward-replicas/reward",
        "s3_endpoint_url": s3_endpoint,
        "aws_region": "us-east-1",
    }
    first = make_settings(database_url, data_dir=tmp_path / "first", **storage)
    with connect(first) as client:
        for i in range(40):
            observe(client, i)
        assert trained(client)["activated"] is True
        before = predict(client, [image(200, 0)]).json()
    # Another task with a fresh disk and the same database and bucket (a Fargate restart).
    second = make_settings(database_url, data_dir=tmp_path / "second", **storage)
    with connect(second) as client:
        assert predict(client, [image(200, 0)]).json() == before
    # A new feature size makes every stored vector stale: retraining re-extracts
    # features from the labelled images, which only S3 holds.
    resized = make_settings(database_url, data_dir=tmp_path / "third", feature_size=96, **storage)
    with connect(resized) as client:
        result = trained(client)
        assert result["n_train"] + result["n_holdout"] == 40, result
    for replica in ("first", "second", "third"):  # no model or image on any local disk
        assert not [f for f in (tmp_path / replica).rglob("*") if f.is_file()], replica


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database (replicas share one; SQLite serves one process)."""
    from services.common.testing import POSTGRES_URL, postgres_database

    if not POSTGRES_URL:
        pytest.skip("PostgreSQL case skipped: TEST_POSTGRES_URL is not set")
    yield from postgres_database()


def test_two_replicas_asked_at_once_train_once(postgres_url: str) -> None:
    """Two services on one PostgreSQL database: the second request finds the first
    run under way (any replica) and returns it instead of starting another."""
    data_dir = Path(tempfile.mkdtemp(prefix="reward-test-"))
    settings = make_settings(postgres_url, data_dir=data_dir)
    with connect(settings) as first, connect(settings) as second:
        for i in range(40):
            observe(first, i)
        a = first.post("/ml/train").json()
        b = second.post("/ml/train").json()
        assert b["run_id"] == a["run_id"] and b["existing"] is True and a["existing"] is False
        for client in (first, second):
            assert client.portal is not None
            trainer = client.app.state.reward.trainer  # type: ignore[attr-defined]
            client.portal.call(trainer.wait_idle)
        run = second.get(a["status_url"]).json()  # the other replica answers too
        assert run["status"] == "succeeded" and run["version"] == "rm-0001"
        assert second.get("/ml/models").json()["models"] == ["rm-0001"]
        assert predict(second, [image(200, 0)]).status_code == 200


def test_a_training_skips_while_another_replica_holds_the_lock(postgres_url: str) -> None:
    """The cross-replica lock: while another connection holds it, a run is skipped."""
    from services.common.db import create_engine
    from services.reward import store

    settings = make_settings(postgres_url)
    with connect(settings) as client:
        for i in range(40):
            observe(client, i)
        holder = create_engine(postgres_url)

        async def take() -> Any:
            conn = await holder.connect()
            assert await store.try_training_lock(conn)
            await conn.commit()
            return conn

        async def give_back(conn: Any) -> None:
            await store.release_training_lock(conn)
            await conn.commit()
            await conn.close()
            await holder.dispose()

        assert client.portal is not None
        conn = client.portal.call(take)
        try:
            run = train(client)
        finally:
            client.portal.call(give_back, conn)
        assert run["status"] == "skipped" and run["error"]["code"] == "training_busy"
        assert client.get("/ml/models").json()["models"] == []
        assert trained(client)["version"] == "rm-0001"  # the lock is free again
