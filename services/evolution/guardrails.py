"""The client's hard rules, checked on every proposed prompt (LLM or offline).

Photorealism first, and never change the design: a proposal is rejected when

* the prompt asks for a design change: words such as add, replace, remove, move,
  redesign, or style words (modern, luxury, cozy…) that make a model restyle the
  room (:data:`FORBIDDEN`);
* the prompt names a material or colour the parent prompt did not name
  ("marble", "beige"…): the room's materials and colours are not the prompt's to
  choose;
* a preservation term of the parent is dropped: in the prompt, the layout /
  geometry / perspective terms and "keep the exact colours and materials"; in the
  negative prompt, the design-change terms (changed layout, moved furniture,
  changed colours, different materials…);
* a text is empty or too long (1000 characters), or nothing changed.

All problems are returned at once, as sentences the LLM can act on when asked again.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

MAX_PROMPT_CHARS = 1000

FORBIDDEN = re.compile(
    r"\b(add|adds|adding|added|replace\w*|remove\w*|move|moves|moving|moved|rearrang\w*|"
    r"redesign\w*|redecorat\w*|renovat\w*|remodel\w*|restyl\w*|repaint\w*|refurnish\w*|"
    r"change|changes|changing|changed|different|new furniture|more furniture|"
    r"modern|contemporary|luxur\w*|cozy|cosy|minimalis\w*|scandinavian|industrial|rustic|"
    r"boho|bohemian|vintage|elegant|stylish|glamorous|mid-century|"
    r"plants?|flowers?|people|person|persons|decor|decoration\w*|accessor\w*|"
    r"colou?r schemes?|colou?r palettes?)\b",
    re.IGNORECASE,
)

MATERIALS_AND_COLOURS = frozenset("""
marble granite travertine terrazzo concrete oak walnut pine teak bamboo mahogany cherry
velvet leather linen silk wool cotton jute rattan wicker brass gold golden silver copper chrome
bronze steel glass mirror ceramic porcelain terracotta tile tiles parquet laminate vinyl
red blue green yellow orange purple violet pink beige brown black grey gray teal navy turquoise
cream ivory pastel emerald burgundy mustard olive sage charcoal
""".split())

SAFE_PHRASES = ("white balance", "black point", "black level")

PROMPT_PRESERVATION: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("the exact room layout", re.compile(r"\blayout\b", re.I)),
    ("the geometry", re.compile(r"\bgeometr", re.I)),
    ("the camera perspective", re.compile(r"\bperspective\b", re.I)),
    ("the original position and shape of every element",
     re.compile(r"original position|exact position|same position", re.I)),
    ("keeping the exact colours", re.compile(r"(keep|preserv|exact|original)[^,]*colou?rs", re.I)),
    ("keeping the exact materials", re.compile(r"(keep|preserv|exact|original)[^,]*materials",
                                               re.I)),
)

NEGATIVE_PRESERVATION = (
    "changed layout", "moved furniture", "extra objects", "missing objects",
    "deformed geometry", "warped perspective", "changed colours", "changed colors",
    "different materials",
)


def _words(text: str) -> set[str]:
    lowered = text.lower()
    for phrase in SAFE_PHRASES:
        lowered = lowered.replace(phrase, " ")
    return set(re.findall(r"[a-z]+", lowered))


def violations(prompt: str, negative_prompt: str, parent_prompt: str,
               parent_negative: str) -> list[str]:
    """Every broken hard rule, as an English sentence (empty list: the texts are acceptable)."""
    problems: list[str] = []
    if not prompt.strip():
        problems.append("the improved prompt is empty")
    if len(prompt) > MAX_PROMPT_CHARS:
        problems.append(f"the improved prompt has {len(prompt)} characters; the limit is "
                        f"{MAX_PROMPT_CHARS}")
    if len(negative_prompt) > MAX_PROMPT_CHARS:
        problems.append(f"the negative prompt has {len(negative_prompt)} characters; the limit "
                        f"is {MAX_PROMPT_CHARS}")
    forbidden = sorted({m.group(0).lower() for m in FORBIDDEN.finditer(prompt)}
                       - {m.group(0).lower() for m in FORBIDDEN.finditer(parent_prompt)})
    if forbidden:
        problems.append("the prompt asks for a design change or a style ("
                        + ", ".join(repr(w) for w in forbidden)
                        + "); only rendering quality may change")
    new_design = sorted((_words(prompt) & MATERIALS_AND_COLOURS) - _words(parent_prompt))
    if new_design:
        problems.append("the prompt names materials or colours the room may not have ("
                        + ", ".join(repr(w) for w in new_design)
                        + "); never name or change materials or colours")
    for label, pattern in PROMPT_PRESERVATION:
        if pattern.search(parent_prompt) and not pattern.search(prompt):
            problems.append(f"the prompt dropped the preservation of {label}; keep it")
    for term in NEGATIVE_PRESERVATION:
        if term in parent_negative.lower() and term not in negative_prompt.lower():
            problems.append(f"the negative prompt dropped {term!r}; keep it")
    unchanged = (prompt.strip() == parent_prompt.strip()
                 and negative_prompt.strip() == parent_negative.strip())
    if unchanged:
        problems.append("nothing changed: the prompt and the negative prompt equal the current "
                        "ones")
    return problems


def hard_rules_text() -> Sequence[str]:
    """The hard rules as sent to the LLM (in the request, besides the system prompt)."""
    return (
        "Photorealism is the first priority.",
        "Never change the layout, the shape or position of any element, any material or any "
        "colour; never add, remove, move or restyle anything.",
        "Never name materials, colours, objects, furniture, decoration, plants, people or "
        "styles that the current prompt does not already name.",
        "Keep every preservation term of the current prompt (layout, geometry, perspective, "
        "exact colours and materials) and every design-change term of the negative prompt "
        "(changed layout, moved furniture, extra or missing objects, changed colours, "
        "different materials).",
        f"Each prompt at most {MAX_PROMPT_CHARS} characters, comma-separated English terms.",
    )
