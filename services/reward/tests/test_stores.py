"""Where the reward service keeps labelled images and models (the blob contract itself is
``services/common/tests/test_blobs.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.blobs import LocalBlobStore, S3BlobStore
from services.common.testing import s3_bucket
from services.reward.runtime import open_stores
from services.reward.settings import RewardSettings


async def test_s3_images_and_models_live_under_the_configured_prefix(
    s3_endpoint: str, aws_env: None, tmp_path: Path
) -> None:
    import boto3

    s3_bucket(s3_endpoint, "reward-prefix")
    images, models = open_stores(
        RewardSettings(
            data_dir=tmp_path,
            storage_url="s3://reward-prefix/prod/reward/",
            s3_endpoint_url=s3_endpoint,
            aws_region="us-east-1",
        )
    )
    assert isinstance(images, S3BlobStore) and isinstance(models, S3BlobStore)
    try:
        await images.put("ab/abc", b"1")
        await models.put("rm-0002.pkl", b"2")
        assert not await models.exists("ab/abc") and not await images.exists("rm-0002.pkl")
    finally:
        await images.aclose()
        await models.aclose()
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket="reward-prefix")["Contents"])
    assert keys == ["prod/reward/images/ab/abc", "prod/reward/models/rm-0002.pkl"]
    assert not any(f.is_file() for f in tmp_path.rglob("*"))  # nothing written to local disk


def test_default_is_two_local_directories_and_bad_urls_are_refused(tmp_path: Path) -> None:
    images, models = open_stores(RewardSettings(data_dir=tmp_path))
    assert isinstance(images, LocalBlobStore) and isinstance(models, LocalBlobStore)
    assert (images.root, models.root) == (
        tmp_path / "reward" / "images",
        tmp_path / "reward" / "models",
    )
    on_disk = open_stores(RewardSettings(data_dir=tmp_path, storage_url=f"file://{tmp_path}/b"))
    assert [s.root for s in on_disk if isinstance(s, LocalBlobStore)] == [
        tmp_path / "b" / "images",
        tmp_path / "b" / "models",
    ]
    for bad in ("ftp://host/x", "s3://"):
        with pytest.raises(ValueError, match="REWARD_STORAGE_URL"):
            open_stores(RewardSettings(data_dir=tmp_path, storage_url=bad))
