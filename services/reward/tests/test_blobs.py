"""One contract suite over the reward service's blob stores: local files and S3.

The S3 case talks to a real S3-compatible server (moto's server mode, started by
the ``s3_endpoint`` fixture on a loopback port) through the boto3 code production uses.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common.testing import s3_bucket
from services.reward.blobs import BlobStore, LocalBlobStore, S3BlobStore, open_stores
from services.reward.settings import RewardSettings


@pytest.fixture(params=["local", "s3"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[BlobStore, BlobStore]]:
    if request.param == "local":
        yield open_stores(RewardSettings(data_dir=tmp_path))
        return
    endpoint = request.getfixturevalue("s3_endpoint")
    request.getfixturevalue("aws_env")
    bucket = s3_bucket(endpoint, f"reward-{tmp_path.name.lower().replace('_', '-')[-40:]}")
    yield open_stores(RewardSettings(data_dir=tmp_path, storage_url=f"s3://{bucket}/afinador",
                                     s3_endpoint_url=endpoint, aws_region="us-east-1"))


def test_put_get_exists_and_replace(stores: tuple[BlobStore, BlobStore]) -> None:
    images, models = stores
    assert not images.exists("ab/abcdef")
    with pytest.raises(KeyError):
        images.get("ab/abcdef")
    images.put("ab/abcdef", b"jpeg bytes")
    assert images.exists("ab/abcdef") and images.get("ab/abcdef") == b"jpeg bytes"
    images.put("ab/abcdef", b"jpeg bytes")  # idempotent for equal bytes
    models.put("v1/model.bin", b"first")
    models.put("v1/model.bin", b"second")
    assert models.get("v1/model.bin") == b"second"
    # The two stores are separate namespaces.
    assert not models.exists("ab/abcdef") and not images.exists("v1/model.bin")


@pytest.mark.parametrize("key", ["../escape", "a/../b", "/absolute", "spaces not allowed", ""])
def test_keys_outside_the_store_are_refused(stores: tuple[BlobStore, BlobStore], key: str
                                            ) -> None:
    images, _ = stores
    with pytest.raises(ValueError, match="invalid blob key"):
        images.put(key, b"x")


def test_s3_objects_live_under_the_configured_prefix(s3_endpoint: str, aws_env: None,
                                                      tmp_path: Path) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3_bucket(s3_endpoint, "reward-prefix")
    images, models = open_stores(RewardSettings(
        data_dir=tmp_path, storage_url="s3://reward-prefix/prod/reward",
        s3_endpoint_url=s3_endpoint, aws_region="us-east-1"))
    assert isinstance(images, S3BlobStore) and isinstance(models, S3BlobStore)
    images.put("ab/abc", b"1")
    models.put("v2/model.bin", b"2")
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket="reward-prefix")["Contents"])
    assert keys == ["prod/reward/images/ab/abc", "prod/reward/models/v2/model.bin"]
    assert not any(tmp_path.rglob("*.bin"))  # nothing written to local disk


def test_default_is_local_directories_and_bad_urls_are_refused(tmp_path: Path) -> None:
    images, models = open_stores(RewardSettings(data_dir=tmp_path))
    assert isinstance(images, LocalBlobStore) and isinstance(models, LocalBlobStore)
    assert images.root != models.root
    with pytest.raises(ValueError, match="REWARD_STORAGE_URL"):
        open_stores(RewardSettings(data_dir=tmp_path, storage_url="ftp://host/x"))
