"""Stopping a service's background loops without cutting a database step in half.

Cancelling a task while it waits on an SQLite statement (aiosqlite runs it in its own
thread) can leave the connection closed as a *zombie* that still holds the database's
write lock, so the next process on the same file sees "database is locked" for as
long as this one lives. Loops are therefore asked to stop first (a flag they check
between steps, and an event that ends their idle wait) and cancelled only if they
have not finished within a grace period.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection

log = logging.getLogger(__name__)


async def stop_gracefully(tasks: Collection[asyncio.Task[object]], grace_seconds: float) -> None:
    """Wait up to ``grace_seconds`` for ``tasks`` to end on their own; cancel the rest."""
    if not tasks:
        return
    _, late = await asyncio.wait(tasks, timeout=grace_seconds)
    for task in late:
        log.warning("%s did not stop within %.0fs; cancelling it", task.get_name(),
                    grace_seconds)
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
