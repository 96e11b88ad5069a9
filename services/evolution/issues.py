"""What trainers complain about: comments (Spanish or English) mapped to issue categories.

A comment is normalised (lower case, accents removed, punctuation to spaces) and
split into words. A category matches when one of its keywords does:

* a keyword ending in ``*`` is a stem and matches any word that starts with it
  (``sombr*``: sombra, sombras, sombreado);
* a plain keyword matches a word equal to it or within a small edit distance
  (Damerau-Levenshtein: 1 for words of 6-7 letters, 2 for 8 or more; shorter
  words must be exact), so typos such as "iluminacoin" or "textrua" still count;
* a phrase (several words) matches consecutive words, each by the rules above.

"Structure changed" also covers colours or materials that were *changed* (a change
word near a colour/material word); such a mention is not counted as a colour
*rendition* problem.

Negation. Some keywords name a *defect* ("plano", "oscuro", "cambiado", "noise");
others name a *quality* whose mention is itself the complaint ("profundidad",
"sombras", "estructura"). A defect keyword is cancelled when a negation word
("no", "ni", "nada", "sin", "not", "without", "nothing"…) stands at most four
words before it in the same clause (clauses end at punctuation and at "pero" /
"but"): "no se ve plano", "sin ruido", "nothing was moved" are not complaints,
while "no tiene profundidad" and "sin sombras" still are, and so is "no se ve
nada realista, muy plano" (the comma ends the negated clause). A quality keyword
does not count in a clause that negates one of its category's defects: "la
iluminación no está quemada", "no ha cambiado nada de la estructura".

Per category the report gives the number of comments, the share of commented
ratings, the severity (mean rating of the variants that mention it, and
``(5 - mean) / 4`` in 0..1) and a few example comments. Raw comments of low-rated
variants are kept in the report as well: they are the most direct feedback.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

LOW_RATING = 3
"""Ratings at or below this are "low" (their raw comments go to the evolver)."""


@dataclass(frozen=True)
class Category:
    key: str
    label_es: str
    label_en: str
    mentions: tuple[str, ...]
    """Keywords whose mention is the complaint, negated or not ("sin profundidad")."""
    defects: tuple[str, ...]
    """Keywords that name a defect, so that a negation before them cancels them."""

    @property
    def keywords(self) -> tuple[str, ...]:
        return self.mentions + self.defects


CATEGORIES: tuple[Category, ...] = (
    Category(
        "flat", "Plano / sin profundidad", "Flat / no depth",
        mentions=(
            "profundidad", "profundo", "sin volumen", "depth", "depthless", "no volume",
        ),
        defects=(
            "plano", "plana", "planos", "planas", "aplanad*", "montaje", "recortado",
            "pegado", "flat", "cardboard", "cutout", "collage", "2d",
        ),
    ),
    Category(
        "lighting", "Iluminación", "Lighting",
        mentions=(
            "ilumin*", "luz", "luces", "luminoso", "brillo", "lighting", "light", "lights",
            "lit",
        ),
        defects=(
            "oscur*", "quemad*", "sobreexpuest*", "subexpuest*", "artificial", "dark",
            "darker", "overexposed", "underexposed", "blown", "glare", "harsh",
        ),
    ),
    Category(
        "colors", "Colores poco realistas", "Unrealistic colours",
        mentions=(
            "color", "colores", "colour", "colours", "colors", "tono", "tonos",
            "tonalidad", "white balance", "balance de blancos",
        ),
        defects=(
            "desaturad*", "saturad*", "apagad*", "lavad*", "dominante", "washed",
            "saturated", "oversaturated", "desaturated", "dull", "tint", "cast",
        ),
    ),
    Category(
        "textures", "Texturas poco realistas", "Unrealistic textures",
        mentions=(
            "textur*", "material", "materiales", "liso", "lisa", "texture", "textures",
            "textured", "smooth", "grain of the wood", "veta", "vetas",
        ),
        defects=(
            "plastico", "plasticoso", "emborronad*", "borros*", "difuminad*", "plastic",
            "plasticky", "smeared", "blurry", "blurred",
        ),
    ),
    Category(
        "shadows", "Sombras", "Shadows",
        mentions=(
            "sombr*", "penumbra", "shadow", "shadows", "shading", "shade",
        ),
        defects=(
            "flotando", "flota", "floating",
        ),
    ),
    Category(
        "structure", "Estructura cambiada", "Structure changed",
        mentions=(
            "estructura", "estructural", "geometr*", "perspectiva", "faltan objetos",
            "falta un*", "layout", "structure", "geometry", "perspective",
            "missing object*", "missing furniture",
        ),
        defects=(
            "distorsion*", "deformad*", "torcid*", "curvad*", "movid*", "desplazad*",
            "cambiad*", "cambio", "cambia", "añadid*", "desaparec*", "inventad*",
            "distorted", "warped", "bent", "moved", "shifted", "changed", "added", "extra",
            "disappeared", "redesigned",
        ),
    ),
    Category(
        "artifacts", "Artefactos / ruido", "Artefacts / noise",
        mentions=(
            "jpeg", "distorsiones raras",
        ),
        defects=(
            "artefact*", "artifact*", "ruido", "ruidos*", "granulad*", "grano", "manchas",
            "mancha", "pixelad*", "halo", "halos", "glitch", "noise", "noisy", "grain",
            "grainy", "pixelated", "banding", "blotch*", "aberracion*",
        ),
    ),
)
CATEGORY_BY_KEY = {c.key: c for c in CATEGORIES}

NEGATIONS = frozenset({
    "no", "ni", "nada", "nunca", "sin", "tampoco", "ningun", "ninguna", "ninguno",
    "not", "never", "without", "nothing", "none", "isn", "aren", "wasn", "weren", "doesn",
    "don", "didn", "hasn", "haven",
})
"""Words that cancel a defect keyword up to ``NEGATION_SCOPE`` words after them."""
NEGATION_SCOPE = 4
_CLAUSE_BREAKS = frozenset({"pero", "aunque", "but", "although", "though"})

_CHANGE_WORDS = ("cambiad*", "cambio", "cambia", "distint*", "diferente*", "changed",
                 "different", "otro", "otra")
_DESIGN_WORDS = ("color", "colores", "colour", "colours", "colors", "material",
                 "materiales", "materials", "tono", "tonos")


def normalise(text: str) -> list[str]:
    """Lower-case words without accents or punctuation ("Iluminación!" -> ["iluminacion"])."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return re.findall(r"[a-z0-9]+", stripped)


def clauses(text: str) -> list[list[str]]:
    """Normalised words per clause: split at punctuation and at "pero" / "but"."""
    out: list[list[str]] = []
    for part in re.split(r"[.,;:!?¡¿()\n]+", text):
        current: list[str] = []
        for word in normalise(part):
            if word in _CLAUSE_BREAKS:
                out.append(current)
                current = []
            else:
                current.append(word)
        out.append(current)
    return [c for c in out if c]


def _negated(words: Sequence[str], start: int) -> bool:
    return any(w in NEGATIONS for w in words[max(0, start - NEGATION_SCOPE) : start])


def edit_distance(a: str, b: str, limit: int = 3) -> int:
    """Damerau-Levenshtein distance (optimal string alignment), capped at ``limit``."""
    if abs(len(a) - len(b)) >= limit:
        return limit
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) >= limit:
            return limit
        prev2, prev = prev, cur
    return min(prev[-1], limit)


def _word_matches(word: str, keyword: str) -> bool:
    if keyword.endswith("*"):
        stem = keyword[:-1]
        if word.startswith(stem):
            return True
        # a typo inside the stem itself ("ilminacion"): compare the same length
        return len(stem) >= 5 and any(
            edit_distance(word[:cut], stem, 2) <= 1 for cut in range(len(stem) - 1, len(stem) + 2)
        )
    if word == keyword:
        return True
    if len(keyword) < 6 or len(word) < 5:
        return False
    allowed = 1 if len(keyword) < 8 else 2
    return edit_distance(word, keyword, allowed + 1) <= allowed


def _compile(keyword: str) -> list[str]:
    parts = normalise(keyword.rstrip("*"))
    return [p + "*" if keyword.endswith("*") and i == len(parts) - 1 else p
            for i, p in enumerate(parts)]


_COMPILED: dict[str, list[tuple[list[str], bool]]] = {
    c.key: [(_compile(kw), False) for kw in c.mentions]
    + [(_compile(kw), True) for kw in c.defects]
    for c in CATEGORIES
}
"""Per category: each keyword as words to match, and whether negation cancels it."""


def _phrase_at(words: Sequence[str], phrase: Sequence[str]) -> list[int]:
    hits = []
    for start in range(len(words) - len(phrase) + 1):
        if all(_word_matches(words[start + k], part) for k, part in enumerate(phrase)):
            hits.append(start)
    return hits


def _any_at(words: Sequence[str], keywords: Iterable[str]) -> list[int]:
    patterns = [[p + "*" if kw.endswith("*") else p for p in normalise(kw.rstrip("*"))]
                for kw in keywords]
    return sorted({i for pattern in patterns for i in _phrase_at(words, pattern)})


def _mentions(words: Sequence[str], phrases: Sequence[tuple[list[str], bool]]) -> bool:
    """Whether a clause complains about one category.

    A defect keyword counts unless negated. A quality keyword counts unless the
    same clause negates one of the category's defects ("la iluminación no está
    quemada", "no ha cambiado nada de la estructura").
    """
    quality = negated_defect = False
    for phrase, is_defect in phrases:
        for i in _phrase_at(words, phrase):
            if not is_defect:
                quality = True
            elif _negated(words, i):
                negated_defect = True
            else:
                return True
    return quality and not negated_defect


def categorise(comment: str) -> set[str]:
    """The categories one comment mentions (negated defects excepted)."""
    found: set[str] = set()
    for words in clauses(comment):
        found |= _categorise_clause(words)
    return found


def _categorise_clause(words: list[str]) -> set[str]:
    found = {key for key, phrases in _COMPILED.items() if _mentions(words, phrases)}
    changes = [i for i in _any_at(words, _CHANGE_WORDS) if not _negated(words, i)]
    design = _any_at(words, _DESIGN_WORDS)
    if any(abs(c - d) <= 3 for c in changes for d in design):
        found.add("structure")
        # "han cambiado los colores" is a design change, not a colour-rendition issue,
        # unless the comment also names a rendition problem ("desaturado", "washed").
        rendition = [kw for kw in CATEGORY_BY_KEY["colors"].keywords if kw not in _DESIGN_WORDS]
        if not _any_at(words, rendition):
            found.discard("colors")
        if not _any_at(words, [k for k in CATEGORY_BY_KEY["textures"].keywords
                               if k not in ("material", "materiales")]):
            found.discard("textures")
    return found


@dataclass(frozen=True)
class RatedComment:
    rating: int
    comments: str | None
    mode: str = ""
    version: str = ""


@dataclass
class IssueStat:
    key: str
    label_es: str
    label_en: str
    count: int = 0
    share: float = 0.0
    mean_rating: float | None = None
    severity: float | None = None
    examples: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key, "label_es": self.label_es, "label_en": self.label_en,
            "count": self.count, "share": self.share, "mean_rating": self.mean_rating,
            "severity": self.severity, "examples": list(self.examples),
        }


@dataclass
class IssueReport:
    samples: int
    commented: int
    mean_rating: float | None
    issues: list[IssueStat]
    low_rated_comments: list[dict[str, Any]]
    unmatched_comments: list[str]

    def top(self, limit: int = 3) -> list[IssueStat]:
        """The most pressing issues: most mentioned, then most severe."""
        ranked = [i for i in self.issues if i.count > 0]
        ranked.sort(key=lambda i: (-(i.count * (i.severity or 0.0)), -i.count, i.key))
        return ranked[:limit]

    def as_dict(self) -> dict[str, Any]:
        return {
            "samples": self.samples, "commented": self.commented,
            "mean_rating": self.mean_rating,
            "issues": [i.as_dict() for i in self.issues],
            "low_rated_comments": self.low_rated_comments,
            "unmatched_comments": self.unmatched_comments,
        }


def analyse(rated: Sequence[RatedComment], examples: int = 3, raw_limit: int = 30
            ) -> IssueReport:
    """Counts, severity and examples per category, plus the raw low-rated comments.

    ``rated`` is newest first; examples and raw comments keep that order.
    """
    stats = {c.key: IssueStat(c.key, c.label_es, c.label_en) for c in CATEGORIES}
    ratings_by_issue: dict[str, list[int]] = {c.key: [] for c in CATEGORIES}
    commented = 0
    unmatched: list[str] = []
    low: list[dict[str, Any]] = []
    for item in rated:
        text = (item.comments or "").strip()
        if not text:
            continue
        commented += 1
        found = categorise(text)
        if not found and len(unmatched) < raw_limit:
            unmatched.append(text)
        for key in found:
            stat = stats[key]
            stat.count += 1
            ratings_by_issue[key].append(item.rating)
            if len(stat.examples) < examples and text not in stat.examples:
                stat.examples.append(text)
        if item.rating <= LOW_RATING and len(low) < raw_limit:
            low.append({"rating": item.rating, "comment": text, "mode": item.mode,
                        "issues": sorted(found)})
    for key, stat in stats.items():
        values = ratings_by_issue[key]
        if values:
            mean = sum(values) / len(values)
            stat.mean_rating = round(mean, 3)
            stat.severity = round((5.0 - mean) / 4.0, 3)
            stat.share = round(stat.count / commented, 3) if commented else 0.0
    all_ratings = [r.rating for r in rated]
    return IssueReport(
        samples=len(rated),
        commented=commented,
        mean_rating=round(sum(all_ratings) / len(all_ratings), 3) if all_ratings else None,
        issues=list(stats.values()),
        low_rated_comments=low,
        unmatched_comments=unmatched,
    )
