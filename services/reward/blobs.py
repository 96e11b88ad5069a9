"""Where the reward service keeps bytes: trained models and labelled images.

:class:`BlobStore` is the plug-in point, with two backends:

* :class:`LocalBlobStore` writes files under a directory (``REWARD_MODEL_DIR`` /
  ``REWARD_IMAGE_DIR``, by default under ``DATA_DIR/reward``);
* :class:`S3BlobStore` keeps objects under ``s3://bucket/prefix`` (boto3, whose
  clients are thread-safe), for deployments whose disks do not survive a restart.

``REWARD_STORAGE_URL`` chooses (:func:`open_stores`). Contract, for both: keys are
relative paths of ``[A-Za-z0-9._/-]`` without ``..``; ``put`` replaces the whole
blob at once (a temporary file then a rename; one S3 PUT) and is idempotent for
equal bytes; ``get`` raises :class:`KeyError` for a missing key; all are
thread-safe and blocking (call them from a worker thread).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlparse

from services.common.files import write_atomic

if TYPE_CHECKING:
    from services.reward.settings import RewardSettings

_KEY = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


class BlobStore(Protocol):
    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...


class LocalBlobStore:
    """Blobs as files under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def put(self, key: str, data: bytes) -> None:
        write_atomic(self._path(key), data)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise KeyError(key) from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()


def _check_key(key: str) -> str:
    if not _KEY.match(key) or ".." in key.split("/"):
        raise ValueError(f"invalid blob key {key!r}")
    return key


class S3BlobStore:
    """Blobs as objects under ``s3://bucket/prefix``; credentials from the AWS chain."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
    ) -> None:
        import boto3  # only deployments that use S3 pay for the import

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._client: Any = boto3.client("s3", endpoint_url=endpoint_url, region_name=region)

    def _key(self, key: str) -> str:
        _check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes) -> None:
        self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def get(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            answer = self._client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise KeyError(key) from exc
            raise
        data: bytes = answer["Body"].read()
        return data

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return False
            raise
        return True


def open_stores(settings: RewardSettings) -> tuple[BlobStore, BlobStore]:
    """The (images, models) stores that ``REWARD_STORAGE_URL`` names.

    Empty: local directories (``images_path``, ``models_path``). ``s3://bucket/prefix``:
    ``prefix/images`` and ``prefix/models`` in that bucket.

    Raises:
        ValueError: a URL that is neither empty nor ``s3://bucket[/prefix]``.
    """
    url = settings.storage_url.strip()
    if not url:
        return LocalBlobStore(settings.images_path), LocalBlobStore(settings.models_path)
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"REWARD_STORAGE_URL must be empty or s3://bucket/prefix, not {url!r}")
    base = parsed.path.strip("/")
    stores = [
        S3BlobStore(
            parsed.netloc,
            f"{base}/{part}" if base else part,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.aws_region,
        )
        for part in ("images", "models")
    ]
    return stores[0], stores[1]


def image_key(sha256: str) -> str:
    """Blob key of an image's bytes, by content hash."""
    return f"{sha256[:2]}/{sha256}"
