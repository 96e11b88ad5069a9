"""CLIP through the production loading path, with a tiny random checkpoint.

The checkpoint is built here (random weights, a few thousand parameters), saved with
``save_pretrained`` into a temporary directory together with an image-processor
config, and loaded by :func:`services.reward.clip.load_clip` exactly as real
weights would be.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select

from services.common.testing import make_test_image
from services.reward.clip import load_clip
from services.reward.main import create_app
from services.reward.models import CachedFeatures
from services.reward.tests.test_training_api import make_settings, observe, predict
from services.reward.tests.test_training_api import trained as train_result

transformers = pytest.importorskip("transformers")
pytest.importorskip("torch")


def save_tiny_clip(path: Path, projection: bool = True) -> Path:
    config = transformers.CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=32,
        patch_size=8,
        projection_dim=16,
    )
    cls = transformers.CLIPVisionModelWithProjection if projection else transformers.CLIPVisionModel
    cls(config).save_pretrained(path)
    transformers.CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


def rgb(seed: int, size: tuple[int, int] = (80, 60)) -> np.ndarray:
    data = make_test_image(*size, seed=seed)
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_load_and_embed_in_batches(tiny_clip: Path) -> None:
    embedder, reason = load_clip(str(tiny_clip), device="cpu", batch_size=2)
    assert embedder is not None, reason
    assert reason.startswith("loaded") and "16-d image_embeds" in reason
    images = [rgb(0), rgb(1, (50, 90)), rgb(2), rgb(0)]
    vectors = embedder.embed(images)  # 4 images in batches of 2
    assert vectors.shape == (4, 16) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(vectors[0], vectors[3], atol=1e-6)  # same pixels
    assert not np.allclose(vectors[0], vectors[1])
    np.testing.assert_allclose(embedder.embed([images[1]])[0], vectors[1], atol=1e-5)
    assert embedder.version.startswith("clip:")


def test_vision_model_without_projection_uses_the_pooled_output(tmp_path: Path) -> None:
    embedder, reason = load_clip(str(save_tiny_clip(tmp_path, projection=False)), device="cpu")
    assert embedder is not None, reason
    assert embedder.dims == 32 and "pooler_output" in reason
    assert embedder.embed([rgb(3)]).shape == (1, 32)


def test_unavailable_clip_says_why(tmp_path: Path) -> None:
    assert load_clip("") == (None, "REWARD_CLIP_MODEL not set")
    embedder, reason = load_clip(str(tmp_path / "missing"))
    assert embedder is None and "never downloaded" in reason
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    embedder, reason = load_clip(str(tmp_path / "broken"))
    assert embedder is None and "could not be loaded" in reason


@pytest.mark.slow
def test_service_trains_and_predicts_with_clip(database_url: str, tiny_clip: Path) -> None:
    settings = make_settings(database_url, clip_model=str(tiny_clip), mlp_epochs=60)
    headers = {"Authorization": f"Bearer {settings.service_token}"}
    with TestClient(create_app(settings), headers=headers) as client:
        models = client.get("/ml/models").json()
        assert models["clip"]["available"] is True and models["feature_set"] == "classical+clip"
        for i in range(40):
            observe(client, i)
        trained = train_result(client)
        # Both candidates were fitted and scored on the same held-out set.
        assert set(trained["candidates"]) == {"classical", "classical+clip"}
        assert trained["feature_set"] in trained["candidates"]
        assert trained["activated"] is True
        response = predict(client, [make_test_image(96, 72, seed=500)])
        assert response.status_code == 200, response.text

        async def clip_rows() -> int:
            async with client.app.state.sessions() as session:  # type: ignore[attr-defined]
                stmt = select(func.count()).where(CachedFeatures.feature_version.like("clip:%"))
                return int(await session.scalar(stmt) or 0)

        assert client.portal is not None
        # Observing cached every image's embedding; predicting adds one only when the
        # winning candidate (whichever had the lower held-out MAE) uses CLIP.
        uses_clip = trained["feature_set"] == "classical+clip"
        assert client.portal.call(clip_rows) == 40 + int(uses_clip)
