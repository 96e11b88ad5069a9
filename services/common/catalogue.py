"""Error sentences keyed by code, in Spanish and English, read from JSON files.

Each service keeps its API sentences in a pair of files beside its code
(``services/<service>/errors.es.json`` and ``errors.en.json``); the gateway's live with
the pages' other texts (``web/locales/errors.<lang>.json``); the ones every service
shares in ``services/common/errors.<lang>.json``. A key is an error's ``code``, or the
code, a dot and a reason when one kind of error has several sentences
(``rating_rejected.already_rated``). Sentences take named parameters in
:meth:`str.format` syntax (``{experiment}``, ``{low:g}``, ``{name!r}``).

A service's catalogue falls back to the common one, so it can raise the shared errors
(``database_unavailable``) without repeating their sentences. Files are read on first
use, not on import. ``tests/test_error_catalogues.py`` checks that every key has both
sentences with the same placeholders, that every key raised in code exists, and that
no key goes unused.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Lang = Literal["es", "en"]
LANGUAGES: tuple[Lang, ...] = ("es", "en")


@dataclass(frozen=True)
class Sentence:
    """One catalogue sentence, formatted in both languages, with the key and the
    parameters it was built from (so it can be formatted again later)."""

    key: str
    es: str
    en: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def say(self, lang: str) -> str:
        return self.en if lang == "en" else self.es


class Catalogue:
    """The sentences of one service, from ``<stem>.es.json`` and ``<stem>.en.json``.

    Args:
        name: the service, for error messages about the catalogue itself.
        stem: the files' path without ``.<lang>.json``.
        fallback: where keys this catalogue lacks are looked up (the common catalogue).
    """

    def __init__(self, name: str, stem: Path, fallback: Catalogue | None = None) -> None:
        self.name = name
        self.stem = stem
        self.fallback = fallback
        self._texts: dict[str, dict[str, str]] | None = None

    def path(self, lang: Lang) -> Path:
        return self.stem.with_name(f"{self.stem.name}.{lang}.json")

    def own(self, lang: Lang) -> Mapping[str, str]:
        """This catalogue's own sentences in ``lang`` (not its fallback's)."""
        if self._texts is None:
            self._texts = {
                lang: json.loads(self.path(lang).read_text(encoding="utf-8")) for lang in LANGUAGES
            }
        return self._texts[lang]

    def template(self, key: str, lang: Lang) -> str:
        """The unformatted sentence for ``key``.

        Raises:
            KeyError: no catalogue in the chain has ``key``.
        """
        text = self.own(lang).get(key)
        if text is not None:
            return text
        if self.fallback is not None:
            return self.fallback.template(key, lang)
        raise KeyError(f"{key!r} is in no error catalogue (looked in {self.name})")

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (
            key in self.own("es") or (self.fallback is not None and key in self.fallback)
        )

    def say(self, key: str, lang: str = "es", /, **params: Any) -> str:
        """The sentence for ``key`` in ``lang`` (Spanish unless ``lang`` is ``"en"``)."""
        return self.template(key, "en" if lang == "en" else "es").format(**params)

    def sentence(self, key: str, /, **params: Any) -> Sentence:
        """The sentence for ``key`` in both languages."""
        return Sentence(key, self.say(key, "es", **params), self.say(key, "en", **params), params)


def placeholders(template: str) -> frozenset[str]:
    """The names of the parameters a sentence takes (``{low:g}`` → ``low``)."""
    return frozenset(
        name
        for _, name, _, _ in string.Formatter().parse(template)
        if name is not None and name != ""
    )


COMMON = Catalogue("common", Path(__file__).with_name("errors"))
"""Sentences shared by every service (``services/common/errors.<lang>.json``)."""
