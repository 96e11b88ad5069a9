"""What a valid prompt-version document is, and how to read prompts out of one.

A document follows ``prompts/schema.json`` (JSON Schema draft 2020-12). Beyond the
schema, ``created_at`` must be an ISO 8601 timestamp with a time zone and a version
may not be its own parent. Versions order by ``(MAJOR, MINOR, PATCH)``.

The ``local`` provider has no prompts of its own: it uses the ``stablediffusion``
ones (same parameter names too, see ``services.common.parameter_space``).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

from services.evolution.errors import InvalidPromptVersion

VERSION_RE = re.compile(r"^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")
BASELINE_VERSION = "v1.0.0"
PROMPT_PROVIDERS: dict[str, str] = {
    "leonardo": "leonardo",
    "stablediffusion": "stablediffusion",
    "local": "stablediffusion",
}
"""Provider key in an assignment → provider entry of the document whose prompts it uses."""
MODE_PROVIDER_ORDER = ("leonardo", "stablediffusion")
"""Providers that have their own prompts in a document, in a stable order."""


def version_key(version: str) -> tuple[int, int, int]:
    """Sort key of ``vMAJOR.MINOR.PATCH``; raises ValueError for anything else."""
    match = VERSION_RE.match(version)
    if match is None:
        raise ValueError(f"not a prompt version: {version!r}")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


@lru_cache(maxsize=8)
def _validator(schema_path: Path) -> jsonschema.Draft202012Validator:
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def load_validator(schema_path: Path) -> jsonschema.Draft202012Validator:
    """The validator for ``schema.json`` (cached per path)."""
    try:
        return _validator(schema_path.resolve())
    except (OSError, ValueError, jsonschema.SchemaError) as exc:
        raise InvalidPromptVersion.because("schema_unreadable", path=str(schema_path),
                                           problem=str(exc)) from exc


def _message(error: jsonschema.ValidationError) -> str:
    if error.validator == "format" and error.validator_value == "date-time":
        return (f"{error.instance!r} is not an ISO 8601 date-time with a time zone "
                "(e.g. 2025-01-19T10:00:00Z)")
    return str(error.message)


def validate_document(
    document: Any, validator: jsonschema.Draft202012Validator, source: str
) -> dict[str, Any]:
    """Check a document against the schema and the extra rules; return it unchanged.

    Raises:
        InvalidPromptVersion: with every problem found, naming ``source``.
    """
    problems = [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(root)'}: {_message(error)}"
        for error in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    ]
    if not problems:
        try:
            created = datetime.fromisoformat(document["created_at"])
        except ValueError:
            problems.append(f"created_at: {document['created_at']!r} is not an ISO 8601 date-time")
        else:
            if created.tzinfo is None:
                problems.append("created_at: needs a time zone (e.g. 'Z')")
        if document["parent_version"] == document["version"]:
            problems.append("parent_version: a version cannot be its own parent")
    if problems:
        raise InvalidPromptVersion.because("invalid", source=source,
                                           problems="; ".join(problems),
                                           details={"source": source, "problems": problems})
    return dict(document)


def created_at(document: dict[str, Any]) -> datetime:
    """The document's ``created_at`` (validated documents always have a time zone)."""
    return datetime.fromisoformat(document["created_at"])


def prompts_for(document: dict[str, Any], mode: str) -> dict[str, dict[str, str]]:
    """Prompt and negative prompt per provider key: leonardo, stablediffusion, local."""
    providers = document["providers"]
    out: dict[str, dict[str, str]] = {}
    for key, source in PROMPT_PROVIDERS.items():
        pair = providers[source]["modes"][mode]
        out[key] = {"prompt": pair["prompt"], "negative_prompt": pair["negative_prompt"]}
    return out
