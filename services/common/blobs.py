"""Where the services keep bytes (renders, generated images, trained models).

:class:`BlobStore` is the one contract; :func:`from_url` picks the backend:

* ``""`` → :class:`LocalBlobStore` under the caller's default directory;
  ``file:///dir`` or a plain path → :class:`LocalBlobStore` under that directory;
* ``s3://bucket/prefix`` → :class:`S3BlobStore` (aioboto3; any S3-compatible store
  through ``endpoint_url``; credentials from the standard AWS chain).

The contract, the same for every backend (``services/common/tests/test_blobs.py``
runs one suite over both):

* keys are relative paths of ``[A-Za-z0-9._-]`` segments joined by ``/``, without
  ``.`` or ``..`` segments, so a key names the same object on disk and in S3 and can
  never leave the store; any other key is a programming error (:class:`ValueError`);
* ``put`` replaces the whole blob at once (a temporary file then a rename; one S3
  PUT): readers see the old bytes or the new, never half, and writing a key twice is
  how retried work avoids duplicates;
* ``get`` of a missing key raises :class:`~services.common.errors.BlobNotFound` (404);
  ``delete`` of a missing key is not an error; ``exists`` never raises for a missing key;
* any other failure of the backend (disk full, permissions, bucket gone, S3
  unreachable) raises :class:`~services.common.errors.BlobStoreUnavailable` (503);
* every method is a coroutine and a store may be used by concurrent tasks of one
  event loop (disk work runs in worker threads); call :meth:`BlobStore.aclose` on
  shut-down.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from services.common.errors import BlobNotFound, BlobStoreUnavailable
from services.common.files import write_atomic

_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")


class BlobStore(Protocol):
    """Bytes under relative keys; see the module docstring for the full contract."""

    async def put(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> None:
        """Store ``data`` under ``key``, replacing what was there.

        Raises:
            BlobStoreUnavailable: the backend refused or did not answer.
        """
        ...

    async def get(self, key: str) -> bytes:
        """The bytes under ``key``.

        Raises:
            BlobNotFound: nothing is stored under ``key``.
            BlobStoreUnavailable: the backend refused or did not answer.
        """
        ...

    async def exists(self, key: str) -> bool:
        """Whether something is stored under ``key``."""
        ...

    async def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error."""
        ...

    async def aclose(self) -> None:
        """Release connections (a no-op for stores that hold none)."""
        ...


def check_key(key: str) -> str:
    """``key`` when it obeys the key rules; :class:`ValueError` otherwise."""
    parts = key.split("/")
    if not all(_SEGMENT.match(p) and p not in (".", "..") for p in parts):
        raise ValueError(f"invalid blob key {key!r}")
    return key


class LocalBlobStore:
    """Blobs as files under ``root`` (created on the first write)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def put(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> None:
        path = self._path(key)
        try:
            await asyncio.to_thread(write_atomic, path, data)
        except OSError as exc:
            raise _disk_unavailable(exc) from exc

    async def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            if isinstance(exc, NotADirectoryError) and self.root.is_file():
                raise _disk_unavailable(exc) from exc  # the store's root itself is a file
            raise BlobNotFound(key) from exc
        except OSError as exc:
            raise _disk_unavailable(exc) from exc

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)

    async def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            await asyncio.to_thread(path.unlink, missing_ok=True)
        except (IsADirectoryError, NotADirectoryError):
            return  # no blob by that key: a directory of other keys, or under a file
        except OSError as exc:
            raise _disk_unavailable(exc) from exc

    async def aclose(self) -> None:
        return None


def _disk_unavailable(exc: OSError) -> BlobStoreUnavailable:
    return BlobStoreUnavailable(f"{type(exc).__name__}: {exc.strerror or exc}")


_MISSING = ("NoSuchKey", "404", "NotFound")


class S3BlobStore:
    """Blobs as objects under ``s3://bucket/prefix``; one aioboto3 client per store.

    The client is opened on first use (so building a store does no I/O and imports
    nothing heavy) and bound to the event loop that first used it.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.region = region
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"S3BlobStore('s3://{self.bucket}/{self.prefix}')"

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    async def _s3(self) -> Any:
        async with self._lock:
            if self._client is None:
                import aioboto3  # heavy: imported only when S3 is configured

                session = aioboto3.Session()
                self._client = await self._stack.enter_async_context(
                    session.client("s3", endpoint_url=self.endpoint_url, region_name=self.region)
                )
        return self._client

    async def put(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        name = self._key(key)
        s3 = await self._s3()
        try:
            await s3.put_object(Bucket=self.bucket, Key=name, Body=data, ContentType=content_type)
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable(exc) from exc

    async def get(self, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        name = self._key(key)
        s3 = await self._s3()
        try:
            answer = await s3.get_object(Bucket=self.bucket, Key=name)
            async with answer["Body"] as body:
                return bytes(await body.read())
        except ClientError as exc:
            if _error_code(exc) in _MISSING:
                raise BlobNotFound(key) from exc
            raise _unavailable(exc) from exc
        except BotoCoreError as exc:
            raise _unavailable(exc) from exc

    async def exists(self, key: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        name = self._key(key)
        s3 = await self._s3()
        try:
            await s3.head_object(Bucket=self.bucket, Key=name)
        except ClientError as exc:
            if _error_code(exc) in _MISSING:
                return False
            raise _unavailable(exc) from exc
        except BotoCoreError as exc:
            raise _unavailable(exc) from exc
        return True

    async def delete(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        name = self._key(key)
        s3 = await self._s3()
        try:
            await s3.delete_object(Bucket=self.bucket, Key=name)  # S3: missing is not an error
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable(exc) from exc

    async def aclose(self) -> None:
        async with self._lock:
            await self._stack.aclose()
            self._client = None


def _error_code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _unavailable(exc: Exception) -> BlobStoreUnavailable:
    code = _error_code(exc) if hasattr(exc, "response") else type(exc).__name__
    return BlobStoreUnavailable(f"S3 {code}")


def from_url(
    url: str,
    *,
    default_dir: Path | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
) -> BlobStore:
    """The store ``url`` names (a ``STORAGE_URL`` setting).

    ``s3://bucket/prefix`` → :class:`S3BlobStore`; ``file:///dir`` or a plain path →
    :class:`LocalBlobStore`; ``""`` → :class:`LocalBlobStore` under ``default_dir``.

    Raises:
        ValueError: an unknown scheme, an S3 URL without a bucket, or ``""`` without
            a ``default_dir``.
    """
    url = url.strip()
    if not url:
        if default_dir is None:
            raise ValueError("an empty storage URL needs a default directory")
        return LocalBlobStore(default_dir)
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"a storage URL needs a bucket: s3://bucket/prefix, not {url!r}")
        return S3BlobStore(parsed.netloc, parsed.path, endpoint_url=endpoint_url, region=region)
    if parsed.scheme == "file":
        return LocalBlobStore(Path(parsed.path))
    if parsed.scheme == "":
        return LocalBlobStore(Path(url))
    raise ValueError(
        f"unsupported storage URL scheme {parsed.scheme!r} in {url!r} (use s3://, file:// "
        "or a directory)"
    )
