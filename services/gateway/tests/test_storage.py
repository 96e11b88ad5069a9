"""One contract suite over every blob-store backend: local files and S3.

The S3 case talks to a real S3-compatible server (moto's server mode) that the test
starts on a loopback port, through the same aioboto3 code production uses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.common.errors import NotFound
from services.common.testing import s3_bucket
from services.gateway.storage import BlobStore, LocalBlobStore, S3BlobStore, open_blob_store


@pytest.fixture(params=["local", "s3"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    if request.param == "local":
        yield f"file://{tmp_path / 'blobs'}", None
        return
    endpoint = request.getfixturevalue("s3_endpoint")
    request.getfixturevalue("aws_env")
    bucket = s3_bucket(endpoint, f"afinador-{tmp_path.name.lower().replace('_', '-')[-40:]}")
    yield f"s3://{bucket}/images", endpoint


def run_with_store(url: str, endpoint: str | None, scenario: Any) -> None:
    async def main() -> None:
        store: BlobStore = open_blob_store(url, default_dir=Path("/nonexistent"),
                                           endpoint_url=endpoint, region="us-east-1")
        try:
            await scenario(store)
        finally:
            await store.aclose()

    asyncio.run(main())


def test_put_get_overwrite_delete(store_url: tuple[str, str | None]) -> None:
    async def scenario(store: BlobStore) -> None:
        await store.put("originals/a.jpg", b"first", "image/jpeg")
        assert await store.get("originals/a.jpg") == b"first"
        await store.put("originals/a.jpg", b"second", "image/jpeg")  # same key: replaced
        assert await store.get("originals/a.jpg") == b"second"
        await store.delete("originals/a.jpg")
        with pytest.raises(NotFound):
            await store.get("originals/a.jpg")
        await store.delete("originals/a.jpg")  # deleting twice is fine

    run_with_store(*store_url, scenario)


def test_missing_key_is_not_found(store_url: tuple[str, str | None]) -> None:
    async def scenario(store: BlobStore) -> None:
        with pytest.raises(NotFound):
            await store.get("variants/never-written.jpg")

    run_with_store(*store_url, scenario)


def test_binary_content_and_concurrent_writes(store_url: tuple[str, str | None]) -> None:
    payloads = {f"variants/v{i}.jpg": bytes(range(256)) * (i + 1) for i in range(8)}

    async def scenario(store: BlobStore) -> None:
        await asyncio.gather(*(store.put(k, v, "image/jpeg") for k, v in payloads.items()))
        got = await asyncio.gather(*(store.get(k) for k in payloads))
        assert got == list(payloads.values())

    run_with_store(*store_url, scenario)


def test_keys_cannot_escape_the_store(store_url: tuple[str, str | None]) -> None:
    async def scenario(store: BlobStore) -> None:
        for bad in ("../outside.jpg", "/etc/passwd", "a/../../b"):
            with pytest.raises(ValueError):
                await store.put(bad, b"x", "image/jpeg")

    run_with_store(*store_url, scenario)


def test_url_picks_the_backend(tmp_path: Path) -> None:
    assert isinstance(open_blob_store("", default_dir=tmp_path), LocalBlobStore)
    assert isinstance(open_blob_store(f"file://{tmp_path}", default_dir=tmp_path), LocalBlobStore)
    s3 = open_blob_store("s3://bucket/some/prefix", default_dir=tmp_path)
    assert isinstance(s3, S3BlobStore) and (s3.bucket, s3.prefix) == ("bucket", "some/prefix")
    with pytest.raises(ValueError):
        open_blob_store("ftp://host/x", default_dir=tmp_path)
