"""Print (or write into the README) the table of every environment variable.

`python -m scripts.config_table` prints the Markdown table; `--write` replaces the
block between the CONFIG markers in README.md. The table is generated from the four
services' settings classes, so it cannot drift from what the code reads.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

from pydantic import AliasChoices
from pydantic_core import PydanticUndefined

from scripts.migrate import SETTINGS
from services.common.settings import REPO_ROOT

README = REPO_ROOT / "README.md"
START, END = "<!-- CONFIG:START -->", "<!-- CONFIG:END -->"
SHARED_FIELDS = {"environment", "log_level", "service_token", "data_dir"}


def env_names(cls: Any, field_name: str, field: Any) -> list[str]:
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice).upper() for choice in alias.choices]
    if isinstance(alias, str):
        return [alias.upper()]
    return [f"{cls.model_config.get('env_prefix', '')}{field_name}".upper()]


def show_default(value: Any) -> str:
    if value is PydanticUndefined:
        return "(required)"
    if isinstance(value, Path):
        try:
            return "`" + str(value.relative_to(REPO_ROOT)) + "`"
        except ValueError:
            return f"`{value}`"
    if value in ("", None):
        return "(empty)"
    if isinstance(value, list | tuple | dict):
        return f"`{value!r}`"
    return f"`{value}`"


def rows() -> list[str]:
    lines = ["| variable | service | default | meaning |", "|---|---|---|---|"]
    shared_done = False
    for service, target in SETTINGS.items():
        module, name = target.split(":")
        cls = getattr(importlib.import_module(module), name)
        for field_name, field in cls.model_fields.items():
            if field_name == "service_name":
                continue
            shared = field_name in SHARED_FIELDS
            if shared and shared_done:
                continue
            default = field.default
            if field_name == "database_url":
                default = f"SQLite file DATA_DIR/{service}.db"
            meaning = (field.description or "").replace("|", "\\|").replace("\n", " ")
            variable = " / ".join(f"`{n}`" for n in env_names(cls, field_name, field))
            where = "all" if shared else service
            lines.append(f"| {variable} | {where} | {show_default(default)} | {meaning} |")
        shared_done = True
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update README.md in place")
    args = parser.parse_args(argv)
    table = "\n".join(rows())
    if not args.write:
        print(table)
        return 0
    text = README.read_text()
    if START not in text or END not in text:
        print("README.md has no CONFIG markers", file=sys.stderr)
        return 1
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{START}\n{table}\n{END}{tail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
