"""One contract suite over every blob-store backend: local files and S3.

The S3 case talks to a real S3-compatible server (moto's server mode, started by the
``s3_endpoint`` fixture on a loopback port) through the same aioboto3 code production
uses. Every test that takes ``location`` runs once per backend.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.common.blobs import BlobStore, LocalBlobStore, S3BlobStore, from_url
from services.common.errors import BlobNotFound, BlobStoreUnavailable
from services.common.testing import s3_bucket


@dataclass
class Location:
    """Where a backend keeps its blobs, and how a test looks there behind its back."""

    url: str
    endpoint: str | None
    stored_keys: Callable[[], list[str]]  # every object/file under the URL, relative to it
    break_it: Callable[[], None]  # make the location unusable (bucket gone, root a file)

    def open(self, suffix: str = "") -> BlobStore:
        return from_url(self.url + suffix, endpoint_url=self.endpoint, region="us-east-1")


@pytest.fixture(params=["local", "s3"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Location:
    if request.param == "local":
        root = tmp_path / "blobs"

        def files() -> list[str]:
            return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

        def root_becomes_a_file() -> None:
            import shutil

            shutil.rmtree(root, ignore_errors=True)
            root.write_bytes(b"not a directory")

        return Location(f"file://{root}", None, files, root_becomes_a_file)

    import boto3

    endpoint = request.getfixturevalue("s3_endpoint")
    request.getfixturevalue("aws_env")
    bucket = s3_bucket(endpoint, f"afinador-{tmp_path.name.lower().replace('_', '-')[-40:]}")
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")

    def objects() -> list[str]:
        listed = client.list_objects_v2(Bucket=bucket, Prefix="store/").get("Contents", [])
        return sorted(o["Key"].removeprefix("store/") for o in listed)

    def delete_the_bucket() -> None:
        for key in objects():
            client.delete_object(Bucket=bucket, Key=f"store/{key}")
        client.delete_bucket(Bucket=bucket)

    return Location(f"s3://{bucket}/store", endpoint, objects, delete_the_bucket)


@pytest.fixture
async def store(location: Location) -> AsyncIterator[BlobStore]:
    opened = location.open()
    try:
        yield opened
    finally:
        await opened.aclose()


async def test_put_get_exists_overwrite_delete(store: BlobStore) -> None:
    assert not await store.exists("originals/a.jpg")
    await store.put("originals/a.jpg", b"first", "image/jpeg")
    assert await store.exists("originals/a.jpg")
    assert await store.get("originals/a.jpg") == b"first"
    await store.put("originals/a.jpg", b"second", "image/jpeg")  # same key: replaced
    assert await store.get("originals/a.jpg") == b"second"
    await store.delete("originals/a.jpg")
    assert not await store.exists("originals/a.jpg")
    with pytest.raises(BlobNotFound):
        await store.get("originals/a.jpg")
    await store.delete("originals/a.jpg")  # deleting twice is fine


async def test_a_missing_key_is_a_404_with_sentences(store: BlobStore) -> None:
    await store.put("variants/other.jpg", b"x")
    with pytest.raises(BlobNotFound) as caught:
        await store.get("variants/never-written.jpg")
    error = caught.value
    assert error.status_code == 404 and error.code == "blob_not_found"
    assert "variants/never-written.jpg" in error.message_es
    assert error.message_es != error.message_en
    # A "directory" of other keys is not a blob either.
    assert not await store.exists("variants")
    with pytest.raises(BlobNotFound):
        await store.get("variants")


async def test_binary_content_and_concurrent_writes(store: BlobStore) -> None:
    payloads = {f"variants/v{i}.jpg": bytes(range(256)) * (i + 1) for i in range(8)}
    await asyncio.gather(*(store.put(k, v, "image/jpeg") for k, v in payloads.items()))
    got = await asyncio.gather(*(store.get(k) for k in payloads))
    assert got == list(payloads.values())


async def test_blobs_live_under_the_url_at_their_key(location: Location, store: BlobStore) -> None:
    await store.put("ab/abcdef", b"1")
    await store.put("rm-0001.pkl", b"2")
    assert location.stored_keys() == ["ab/abcdef", "rm-0001.pkl"]


async def test_two_sub_locations_are_separate_namespaces(location: Location) -> None:
    images, models = location.open("/images"), location.open("/models")
    try:
        await images.put("ab/abc", b"image")
        await models.put("ab/abc", b"model")
        assert (await images.get("ab/abc"), await models.get("ab/abc")) == (b"image", b"model")
        assert location.stored_keys() == ["images/ab/abc", "models/ab/abc"]
    finally:
        await images.aclose()
        await models.aclose()


BAD_KEYS = [
    "",
    "../outside.jpg",
    "/etc/passwd",
    "a/../../b",
    "a/./b",
    "a//b",
    "trailing/",
    "spaces not allowed",
    "ñ.jpg",
    "a\\b",
]


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_keys_outside_the_rules_are_refused_before_any_io(
    location: Location, store: BlobStore, key: str
) -> None:
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: store.put(key, b"x"),
        lambda: store.get(key),
        lambda: store.exists(key),
        lambda: store.delete(key),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="invalid blob key"):
            await call()
    assert location.stored_keys() == []


async def test_a_broken_location_is_a_503_not_a_404(location: Location, store: BlobStore) -> None:
    await store.put("originals/a.jpg", b"x")
    location.break_it()
    with pytest.raises(BlobStoreUnavailable) as caught:
        await store.put("originals/b.jpg", b"y")
    assert caught.value.status_code == 503 and caught.value.code == "blob_store_unavailable"
    assert caught.value.message_es != caught.value.message_en
    with pytest.raises(BlobStoreUnavailable):
        await store.get("originals/a.jpg")


def test_the_url_picks_the_backend(tmp_path: Path) -> None:
    default = from_url("", default_dir=tmp_path / "d")
    assert isinstance(default, LocalBlobStore) and default.root == tmp_path / "d"
    local = from_url(f"file://{tmp_path}/x")
    assert isinstance(local, LocalBlobStore) and local.root == tmp_path / "x"
    plain = from_url(str(tmp_path / "y"))
    assert isinstance(plain, LocalBlobStore) and plain.root == tmp_path / "y"
    s3 = from_url("s3://bucket/some/prefix/", endpoint_url="http://127.0.0.1:9", region="eu")
    assert isinstance(s3, S3BlobStore)
    assert (s3.bucket, s3.prefix, s3.endpoint_url, s3.region) == (
        "bucket",
        "some/prefix",
        "http://127.0.0.1:9",
        "eu",
    )
    for bad in ("ftp://host/x", "s3:///no-bucket", ""):
        with pytest.raises(ValueError):
            from_url(bad)


def test_building_an_s3_store_does_no_io_and_imports_nothing_heavy() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from services.common.blobs import from_url; "
        "from_url('s3://bucket/p', endpoint_url='http://127.0.0.1:9'); "
        "print([m for m in ('boto3', 'aioboto3', 'botocore') if m in sys.modules])"
    )
    root = Path(__file__).resolve().parents[3]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    assert out.stdout.strip() == "[]"
