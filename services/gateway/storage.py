"""Blob storage for original and generated images.

:class:`BlobStore` is the small contract every backend implements: the local
filesystem (default) and S3 or any S3-compatible store (``STORAGE_URL=s3://bucket/
prefix``, endpoint from ``S3_ENDPOINT_URL``). :func:`open_blob_store` picks one
from the URL. Keys are relative, slash-separated paths (``originals/<id>.jpg``);
writing a key twice replaces it, so retried work never leaves duplicates behind.
Images reach browsers through the gateway, so bucket credentials never leave it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from services.common.errors import NotFound, ServiceUnavailable
from services.common.files import write_atomic

log = logging.getLogger(__name__)


class BlobStore(Protocol):
    """Store bytes under a key. Implementations are safe to call concurrently."""

    async def put(self, key: str, data: bytes, content_type: str) -> None: ...

    async def get(self, key: str) -> bytes:
        """Raises NotFound when the key does not exist."""
        ...

    async def delete(self, key: str) -> None:
        """Deleting a missing key is not an error."""
        ...

    async def aclose(self) -> None:
        """Release connections (a no-op for stores that hold none)."""
        ...


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / _check_key(key)).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"blob key escapes the store: {key!r}")
        return path

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(write_atomic, self._path(key), data)

    async def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError as exc:
            raise NotFound(f"No existe la imagen {key}.", f"Image {key} does not exist.") from exc

    async def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    async def aclose(self) -> None:
        return None


def _check_key(key: str) -> str:
    if not key or key.startswith("/") or ".." in key.split("/"):
        raise ValueError(f"invalid blob key: {key!r}")
    return key


class S3BlobStore:
    """S3 (or S3-compatible) backend on aioboto3; one client for the store's lifetime.

    Credentials come from the standard AWS chain (environment, profile, task role).
    """

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 region: str | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.region = region
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None
        self._lock = asyncio.Lock()

    def _key(self, key: str) -> str:
        _check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    async def _s3(self) -> Any:
        async with self._lock:
            if self._client is None:
                import aioboto3  # heavy: imported only when S3 is configured

                session = aioboto3.Session()
                self._client = await self._stack.enter_async_context(session.client(
                    "s3", endpoint_url=self.endpoint_url, region_name=self.region))
        return self._client

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        s3 = await self._s3()
        try:
            await s3.put_object(Bucket=self.bucket, Key=self._key(key), Body=data,
                                ContentType=content_type)
        except (BotoCoreError, ClientError) as exc:
            raise ServiceUnavailable(
                f"No se pudo guardar la imagen en el almacenamiento ({exc}).",
                f"Could not store the image ({exc}).") from exc

    async def get(self, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        s3 = await self._s3()
        try:
            answer = await s3.get_object(Bucket=self.bucket, Key=self._key(key))
            async with answer["Body"] as body:
                return bytes(await body.read())
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise NotFound(f"No existe la imagen {key}.",
                               f"Image {key} does not exist.") from exc
            raise ServiceUnavailable(f"El almacenamiento no respondió ({exc}).",
                                     f"The storage did not answer ({exc}).") from exc
        except BotoCoreError as exc:
            raise ServiceUnavailable(f"El almacenamiento no respondió ({exc}).",
                                     f"The storage did not answer ({exc}).") from exc

    async def delete(self, key: str) -> None:
        s3 = await self._s3()
        await s3.delete_object(Bucket=self.bucket, Key=self._key(key))

    async def aclose(self) -> None:
        await self._stack.aclose()
        self._client = None


def open_blob_store(url: str, *, default_dir: Path, endpoint_url: str | None = None,
                    region: str | None = None) -> BlobStore:
    """``s3://bucket/prefix`` → :class:`S3BlobStore`; ``file:///dir``, a path or "" → local."""
    if not url:
        return LocalBlobStore(default_dir)
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"STORAGE_URL needs a bucket: {url!r}")
        return S3BlobStore(parsed.netloc, parsed.path, endpoint_url=endpoint_url, region=region)
    if parsed.scheme in ("", "file"):
        return LocalBlobStore(Path(parsed.path if parsed.scheme else url))
    raise ValueError(f"unsupported STORAGE_URL scheme {parsed.scheme!r} (use s3:// or file://)")
