"""A tiny schema language for the contract fixtures (no jsonschema dependency).

A :class:`Field` states what one request field may be: its JSON type, whether it is
required, its range, its allowed values, and ``source``: the public document the
fixture line was read from. :func:`first_problem` returns the first reason a value
breaks its fields, worded like the real service words it where we know how.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

JsonType = Literal["string", "integer", "number", "boolean", "array", "object", "uri"]

_URI = re.compile(r"^(https?://|data:)")


@dataclass(frozen=True)
class Field:
    type: JsonType
    source: str
    required: bool = False
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None
    multiple_of: int | None = None


def type_problem(value: Any, kind: JsonType) -> str | None:
    """Why ``value`` is not of JSON type ``kind`` (``Int`` is a 32/64-bit integer: a
    float such as 7.0 or 7.2 is refused, like GraphQL's Int)."""
    if kind == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else "expected a 32-bit integer for type 'Int'"
    if kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else "expected a number for type 'Float'"
    if kind == "boolean":
        return None if isinstance(value, bool) else "expected a boolean for type 'Boolean'"
    if kind in ("string", "uri"):
        if not isinstance(value, str):
            return "expected a string for type 'String'"
        if kind == "uri" and not _URI.match(value):
            return "Does not match format 'uri'"
        return None
    if kind == "array":
        return None if isinstance(value, list) else "expected an array"
    return None if isinstance(value, dict) else "expected an object"


def field_problem(name: str, value: Any, field: Field) -> str | None:
    if (problem := type_problem(value, field.type)) is not None:
        return problem
    if field.choices is not None and value not in field.choices:
        return f"{name} must be one of: {', '.join(map(str, field.choices))}"
    if field.low is not None and value < field.low:
        return f"{name} must be greater than or equal to {field.low:g}"
    if field.high is not None and value > field.high:
        return f"{name} must be less than or equal to {field.high:g}"
    if field.multiple_of is not None and value % field.multiple_of:
        return f"{name} must be a multiple of {field.multiple_of}"
    return None


def first_problem(body: dict[str, Any], fields: dict[str, Field],
                  allow_unknown: bool = False) -> tuple[str, str] | None:
    """``(field name, problem)`` for the first field of ``body`` that breaks ``fields``
    (missing required fields first, then unknown fields, then values), or None."""
    for name, field in fields.items():
        if field.required and body.get(name) is None:
            return name, f"{name} is required"
    if not allow_unknown:
        for name in body:
            if name not in fields:
                return name, f"unexpected field {name!r}"
    for name, value in body.items():
        if name in fields and value is not None:
            if (problem := field_problem(name, value, fields[name])) is not None:
                return name, problem
    return None
