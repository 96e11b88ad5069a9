"""Exporting the prompt versions to files for review (the database stays the source of truth).

``<export_dir>/versions/<version>.json`` holds each version's document exactly as
stored, and ``<export_dir>/versions/current.json`` the pointer to the champion
plus every version's status. A file is rewritten only when its content changes
(written to a temporary file and renamed), so an unchanged history leaves the
files untouched. The folder is ``EVOLUTION_EXPORT_DIR`` (default
``DATA_DIR/prompts``); exporting never blocks the service: a failure is logged.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.evolution import store

log = logging.getLogger(__name__)
CURRENT = "current.json"


def _write_if_changed(path: Path, content: str) -> bool:
    if path.exists() and path.read_text(encoding="utf-8") == content:
        return False
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(content, encoding="utf-8")
    os.replace(tmp, path)
    return True


def _dump(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


async def snapshot(session: AsyncSession) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Documents per version and the ``current.json`` pointer, from the database."""
    rows = await store.list_versions(session)
    active = next((r for r in rows if r.status == "active"), None)
    pointer = {
        "current": active.version if active else None,
        "promoted_at": active.promoted_at.isoformat() if active and active.promoted_at else None,
        "statuses": {r.version: r.status for r in rows},
        "note": "Exported by the evolution service; the database is the source of truth.",
    }
    return {r.version: r.document for r in rows}, pointer


async def export_versions(sessions: async_sessionmaker[AsyncSession], export_dir: Path
                          ) -> list[str]:
    """Write the files that changed; return their names (never raises)."""
    try:
        async with sessions() as session:
            documents, pointer = await snapshot(session)
        folder = export_dir / "versions"
        folder.mkdir(parents=True, exist_ok=True)
        written = [f"{version}.json" for version, document in documents.items()
                   if _write_if_changed(folder / f"{version}.json", _dump(document))]
        if _write_if_changed(folder / CURRENT, _dump(pointer)):
            written.append(CURRENT)
    except Exception:  # exporting is for review only; never break the service
        log.exception("could not export prompt versions to %s", export_dir)
        return []
    if written:
        log.info("exported prompt versions to %s: %s", export_dir, ", ".join(written))
    return written
