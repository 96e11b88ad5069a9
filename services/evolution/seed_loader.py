"""Loading the seed prompt versions from ``prompts/`` into the database.

Decides, at start-up:

* which files are versions (``prompts/versions/v*.json``) and whether each is valid
  (``prompts/schema.json`` plus the rules in :mod:`services.evolution.documents`;
  the file name must be the version). One broken file stops the start-up with an
  error that names the file: serving with a half-loaded prompt history is worse
  than not starting.
* which versions are new: a version already in the database is skipped (the
  database is the source of truth once loaded; a file that differs from the stored
  version only produces a warning).
* which version is active: if none is, the baseline ``v1.0.0`` becomes active.

Safe when several replicas start at once (inserts ignore conflicts; a partial
unique index allows one active version).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.db import transaction
from services.evolution import store
from services.evolution.documents import (
    BASELINE_VERSION,
    load_validator,
    validate_document,
    version_key,
)
from services.evolution.errors import InvalidPromptVersion, NoActiveVersion

log = logging.getLogger(__name__)


@dataclass
class LoadReport:
    inserted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    activated: str | None = None


def read_version_file(path: Path, validator: Any) -> dict[str, Any]:
    """Parse and validate one version file.

    Raises:
        InvalidPromptVersion: unreadable JSON, schema violation, or the file name
            does not match the ``version`` inside.
    """
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidPromptVersion.because("unreadable", path=str(path), problem=str(exc),
                                           details={"source": str(path)}) from exc
    document = validate_document(document, validator, str(path))
    if document["version"] != path.stem:
        raise InvalidPromptVersion.because("file_name", path=str(path),
                                           version=document["version"],
                                           details={"source": str(path)})
    return document


def read_seed_versions(prompts_dir: Path) -> list[dict[str, Any]]:
    """Every valid ``versions/v*.json`` under ``prompts_dir``, oldest version first."""
    validator = load_validator(prompts_dir / "schema.json")
    documents = [
        read_version_file(path, validator)
        for path in sorted((prompts_dir / "versions").glob("v*.json"))
    ]
    return sorted(documents, key=lambda d: version_key(d["version"]))


async def store_seed_versions(session: AsyncSession, documents: list[dict[str, Any]]) -> LoadReport:
    """Insert the versions the database lacks and make sure one version is active.

    Raises:
        InvalidPromptVersion: a document names a parent that exists neither in the
            files nor in the database.
        NoActiveVersion: no version is active and there is no ``v1.0.0`` to activate.
    """
    report = LoadReport()
    known = await store.existing_versions(
        session,
        [d["version"] for d in documents]
        + [d["parent_version"] for d in documents if d["parent_version"]],
    )
    in_files = {d["version"] for d in documents}
    for document in documents:
        parent = document["parent_version"]
        if parent is not None and parent not in in_files and parent not in known:
            raise InvalidPromptVersion.because("unknown_parent", version=document["version"],
                                               parent=parent,
                                               details={"version": document["version"]})
    for document in documents:
        version = document["version"]
        if await store.insert_version_if_absent(session, document):
            report.inserted.append(version)
            continue
        report.skipped.append(version)
        stored = await store.get_version(session, version)
        if stored is not None and stored.document != document:
            log.warning(
                "prompt version %s in the files differs from the stored one; the database "
                "wins (add a new version file instead of editing a loaded one)",
                version,
            )
    if await store.active_version(session) is None:
        if await store.get_version(session, BASELINE_VERSION) is None:
            raise NoActiveVersion.because("no_baseline", baseline=BASELINE_VERSION)
        await store.activate(session, BASELINE_VERSION)
        report.activated = BASELINE_VERSION
    return report


async def load_seed_versions_into(
    sessions: async_sessionmaker[AsyncSession], prompts_dir: Path
) -> LoadReport:
    """Read, validate and store the seed versions in one transaction; log the outcome."""
    try:
        documents = read_seed_versions(prompts_dir)
        async with transaction(sessions) as session:
            report = await store_seed_versions(session, documents)
    except (InvalidPromptVersion, NoActiveVersion) as exc:
        log.error("cannot load prompt versions from %s: %s", prompts_dir, exc.message_en)
        raise
    log.info(
        "prompt versions from %s: inserted %s, already present %s, activated %s",
        prompts_dir,
        report.inserted or "none",
        report.skipped or "none",
        report.activated or "none",
    )
    return report
