"""The prompts page's words: the evolution service's fixed English forms in Spanish."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.gateway import prompt_words
from services.gateway.i18n import Translator

LOCALES = Path(__file__).resolve().parents[3] / "web" / "locales"
ES = Translator(LOCALES, "es")
EN = Translator(LOCALES, "en")
LABELS = prompt_words.category_labels({"issues": [
    {"label_en": "Flat / no depth", "label_es": "Plano / sin profundidad"}]})


@pytest.mark.parametrize(("english", "spanish"), [
    ("added 'soft shadows' to the prompt (flat / no depth: 3 comment(s), mean rating 2.0)",
     "se añadió «soft shadows» al prompt (plano / sin profundidad: 3 comentario(s), "
     "media 2,0 estrellas)"),
    ("added 'cartoon' to the negative prompt (no specific complaint: general photo realism)",
     "se añadió «cartoon» al prompt negativo (sin una queja concreta: realismo fotográfico "
     "en general)"),
    ("replaced 'render' with 'photograph' in the prompt (flat / no depth: 1 comment(s))",
     "se cambió «render» por «photograph» en el prompt (plano / sin profundidad: "
     "1 comentario(s))"),
    ("moved 'ray tracing' forward in the prompt for more weight (unknown thing)",
     "se adelantó «ray tracing» en el prompt para darle más peso (unknown thing)"),
    ("removed 'hdr' from the prompt", "se quitó «hdr» del prompt"),
    ("surfaces: removed 'hdr' from the prompt", "superficies: se quitó «hdr» del prompt"),
])
def test_known_change_forms_read_in_spanish(english: str, spanish: str) -> None:
    words = prompt_words.change_in_words(english, ES, LABELS)
    assert words == {"text": spanish, "translated": True}


def test_free_text_stays_as_written() -> None:
    text = "Strengthened the daylight wording after comments about dull light"
    assert prompt_words.change_in_words(text, ES, LABELS) == {"text": text,
                                                             "translated": False}


def test_ab_in_words() -> None:
    rule = {"looks": [15, 20], "min_pairs": 10, "max_pairs": 20}
    running = {"status": "running", "n_pairs": 12, "p_better": 0.77, "mean_diff": 0.4,
               "challenger": "v1.0.1", "champion": "v1.0.0"}
    assert prompt_words.ab_in_words(running, rule, ES) == (
        "La versión nueva gana con un 77\u00a0% de probabilidad tras 12 pares (de media, "
        "0,40 estrellas de diferencia); se decide al llegar a 15 pares.")
    losing = {**running, "p_better": 0.2, "n_pairs": 16, "mean_diff": -0.5}
    assert prompt_words.ab_in_words(losing, rule, EN).startswith(
        "The current version is winning with 80% probability after 16 pairs")
    assert "se decide al llegar a 20" in prompt_words.ab_in_words(losing, rule, ES)
    assert prompt_words.ab_in_words(None, rule, ES) == ES("prompts.ab.none")


def test_automatic_reasons_in_words() -> None:
    reason = "P(challenger better) = 0.961 >= 0.95 after 15 pairs (mean difference +0.60 stars)"
    assert prompt_words.reason_in_words(reason, ES) == (
        "La versión nueva era mejor con un 96\u00a0% de probabilidad (el umbral es 95\u00a0%) "
        "tras 15 pares; diferencia media 0,60 estrellas.")
    assert prompt_words.reason_in_words("low_performance trigger", ES) == \
        "automático: puntuaciones bajas"
    assert prompt_words.reason_in_words("mejor a ojo", ES) == "mejor a ojo"


def test_the_diff_covers_every_enabled_provider() -> None:
    diff: dict[str, Any] = {"from": "v1", "to": "v2", "changed": True, "defaults": [], "entries": [
        {"provider": p, "mode": "structure", "field": f, "changed": True, "terms": []}
        for p in ("leonardo", "stablediffusion") for f in ("prompt", "negative_prompt")]}
    out = prompt_words.diff_for_providers(diff, ["leonardo", "local"])
    local = [e for e in out["entries"] if e["provider"] == "local"]
    assert [e["field"] for e in local] == ["prompt", "negative_prompt"]
    assert all(e["uses"] == "stablediffusion" for e in local)
    assert len(out["entries"]) == 6 and len(diff["entries"]) == 4  # the input is untouched
