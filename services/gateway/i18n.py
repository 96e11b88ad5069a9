"""Interface texts in Spanish (default) and English.

``web/locales/<lang>.json`` holds the core texts; a page area may add its own file
``web/locales/<area>.<lang>.json`` (for example ``prompts.es.json``), merged in.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

LANGUAGES = ("es", "en")


@lru_cache(maxsize=4)
def _catalog(locales_dir: Path, lang: str) -> dict[str, str]:
    texts: dict[str, str] = {}
    for path in [locales_dir / f"{lang}.json", *sorted(locales_dir.glob(f"*.{lang}.json"))]:
        texts.update(json.loads(path.read_text(encoding="utf-8")))
    return texts


class Translator:
    def __init__(self, locales_dir: Path, lang: str) -> None:
        self.lang = lang if lang in LANGUAGES else "es"
        self._texts = _catalog(locales_dir, self.lang)
        self._fallback = _catalog(locales_dir, "es")

    def keys(self, prefix: str) -> list[str]:
        """Every known key that starts with ``prefix``."""
        return sorted(k for k in {**self._fallback, **self._texts} if k.startswith(prefix))

    def __call__(self, key: str, **values: object) -> str:
        text = self._texts.get(key) or self._fallback.get(key) or key
        return text.format(**values) if values else text
