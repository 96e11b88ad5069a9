"""Test helpers shared by the services' tests (imported only from tests)."""

from __future__ import annotations

import asyncio
import io
import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from PIL import Image

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "")


def wait_for(check: Callable[[], Any], deadline_s: float = 30, what: str = "condition",
             interval_s: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after the deadline."""
    deadline = time.monotonic() + deadline_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {deadline_s}s waiting for {what}")
        time.sleep(interval_s)


def make_test_image(width: int = 320, height: int = 240, fmt: str = "PNG", seed: int = 0) -> bytes:
    """A small synthetic 'room': gradient walls, a floor, a window and a box, as bytes."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    img = np.zeros((height, width, 3), dtype=np.float32)
    img[..., 0] = 150 + 60 * x / width
    img[..., 1] = 140 + 40 * y / height
    img[..., 2] = 120 + 30 * (1 - x / width)
    floor = y > height * 0.65
    img[floor] = [120, 90, 60]
    rows = slice(int(height * 0.15), int(height * 0.45))
    cols = slice(int(width * 0.6), int(width * 0.85))
    img[rows, cols] = [220, 230, 240]
    img[int(height * 0.5) : int(height * 0.8), int(width * 0.15) : int(width * 0.4)] = [80, 70, 110]
    img += rng.normal(0, 4, img.shape)
    return encode_image(Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)), fmt)


def encode_image(image: Image.Image, fmt: str, **save_options: Any) -> bytes:
    """``image`` saved as ``fmt`` (Pillow's ``save`` options pass through), as bytes."""
    out = io.BytesIO()
    image.save(out, format=fmt, **save_options)
    return out.getvalue()


def _admin(sql: str) -> None:
    import asyncpg

    async def run() -> None:
        dsn = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def postgres_database() -> Iterator[str]:
    """Create a throw-away PostgreSQL database and yield its asyncpg URL."""
    from sqlalchemy.engine import make_url

    name = f"afinador_test_{uuid.uuid4().hex[:10]}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(POSTGRES_URL).set(drivername="postgresql+asyncpg", database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def s3_bucket(endpoint: str, name: str) -> str:
    """Create bucket ``name`` on the S3-compatible server at ``endpoint``; its name."""
    import boto3

    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name
