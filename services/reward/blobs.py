"""Where the reward service keeps bytes: trained models and labelled images.

:class:`BlobStore` is the plug-in point; :class:`LocalBlobStore` writes files under a
directory (``REWARD_MODEL_DIR`` / ``REWARD_IMAGE_DIR``, by default under
``DATA_DIR/reward``). Contract: keys are relative paths of ``[A-Za-z0-9._/-]``
without ``..``; ``put`` is atomic (write to a temporary file, then rename) and
idempotent for equal bytes; ``get`` raises :class:`KeyError` for a missing key;
both are thread-safe and blocking (call them from a worker thread).
An S3 implementation would keep the same three methods.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol

from services.common.files import write_atomic

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
        if not _KEY.match(key) or ".." in key.split("/"):
            raise ValueError(f"invalid blob key {key!r}")
        return self.root / key

    def put(self, key: str, data: bytes) -> None:
        write_atomic(self._path(key), data)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise KeyError(key) from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()


def image_key(sha256: str) -> str:
    """Blob key of an image's bytes, by content hash."""
    return f"{sha256[:2]}/{sha256}"
