"""What changed between two prompt versions, term by term.

Prompts are comma-separated terms, so the diff works on terms (``difflib`` on the
term lists): each entry of ``terms`` is ``same``, ``added`` or ``removed`` in the
order of the newer text; terms present in both whose position changed are listed
in ``moved``. Default parameters are compared value by value.
"""

from __future__ import annotations

import difflib
from typing import Any


def _terms(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def term_diff(old: str, new: str) -> dict[str, Any]:
    a, b = _terms(old), _terms(new)
    ops: list[dict[str, str]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag == "equal":
            ops.extend({"op": "same", "text": t} for t in b[j1:j2])
            continue
        ops.extend({"op": "removed", "text": t} for t in a[i1:i2])
        ops.extend({"op": "added", "text": t} for t in b[j1:j2])
    removed = [o["text"] for o in ops if o["op"] == "removed"]
    added = [o["text"] for o in ops if o["op"] == "added"]
    moved = sorted(set(removed) & set(added))
    return {
        "terms": ops,
        "added": [t for t in added if t not in moved],
        "removed": [t for t in removed if t not in moved],
        "moved": moved,
        "changed": a != b,
    }


def diff_documents(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Per provider and mode, the term diff of prompt and negative prompt; and defaults."""
    entries = []
    for provider, spec in new["providers"].items():
        old_spec = old["providers"].get(provider, {"modes": {}, "defaults": {}})
        for mode, pair in spec["modes"].items():
            old_pair = old_spec["modes"].get(mode, {"prompt": "", "negative_prompt": ""})
            for field in ("prompt", "negative_prompt"):
                entries.append({"provider": provider, "mode": mode, "field": field,
                                **term_diff(old_pair[field], pair[field])})
    defaults = [
        {"provider": provider, "name": name, "from": old["providers"].get(provider, {})
         .get("defaults", {}).get(name), "to": value}
        for provider, spec in new["providers"].items()
        for name, value in spec["defaults"].items()
        if old["providers"].get(provider, {}).get("defaults", {}).get(name) != value
    ]
    return {"from": old["version"], "to": new["version"], "entries": entries,
            "defaults": defaults,
            "changed": any(e["changed"] for e in entries) or bool(defaults)}
