"""The prompts page in the page's language: change lists, A/B statistics in words,
audit reasons, and a diff that covers every enabled provider.

The evolution service writes its change lists and automatic decision reasons in
English, in a few fixed forms (``offline.py``'s operators, ``ab_test.decide``).
Those forms are recognised here and written in Spanish; anything else (an LLM's
free text, a person's reason) is shown as written. Category names come from the
evolution service's own issue report (``label_en`` → ``label_es``), so the two
never drift apart.

The diff: prompt documents hold prompts for ``leonardo`` and ``stablediffusion``;
the ``local`` provider uses Stable Diffusion's prompt (``prompts.for_provider``).
:func:`diff_for_providers` adds an entry for each enabled provider the document
lacks, copied from the provider whose prompt it uses, with a note saying so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from services.gateway.charts import format_number, format_percent
from services.gateway.i18n import Translator

FALLBACK_PROVIDER = "stablediffusion"

_CHANGE = [
    (re.compile(r"^added '(?P<a>.+?)' to the negative prompt(?: \((?P<why>.*)\))?$"),
     "prompts.change.added_negative"),
    (re.compile(r"^added '(?P<a>.+?)' to the prompt(?: \((?P<why>.*)\))?$"),
     "prompts.change.added"),
    (re.compile(r"^replaced '(?P<a>.+?)' with '(?P<b>.+?)' in the prompt(?: \((?P<why>.*)\))?$"),
     "prompts.change.replaced"),
    (re.compile(r"^moved '(?P<a>.+?)' forward in the prompt for more weight"
                r"(?: \((?P<why>.*)\))?$"), "prompts.change.moved"),
    (re.compile(r"^removed '(?P<a>.+?)' from the prompt(?: \((?P<why>.*)\))?$"),
     "prompts.change.removed"),
    (re.compile(r"^added '(?P<a>.+?)'$"), "prompts.change.added_short"),
]
_WHY_GENERAL = "no specific complaint: general photo realism"
_WHY = re.compile(r"^(?P<label>.+): (?P<n>\d+) comment\(s\)(?:, mean rating (?P<mean>[\d.]+))?$")


def category_labels(issue_report: Mapping[str, Any] | None) -> dict[str, str]:
    """``label_en`` (lower case) → ``label_es`` (lower case) from ``/prompts/issues``."""
    out: dict[str, str] = {}
    for issue in (issue_report or {}).get("issues") or []:
        if issue.get("label_en") and issue.get("label_es"):
            out[str(issue["label_en"]).lower()] = str(issue["label_es"]).lower()
    return out


def _why(text: str | None, t: Translator, labels: Mapping[str, str]) -> str:
    if not text:
        return ""
    if text == _WHY_GENERAL:
        return t("prompts.why.general")
    found = _WHY.match(text)
    if found is None:
        return text
    label = found["label"]
    label = labels.get(label.lower(), label) if t.lang == "es" else label
    n = int(found["n"])
    if found["mean"] is not None:
        return t("prompts.why.comments_mean", label=label, n=n,
                 mean=format_number(float(found["mean"]), t.lang, 1))
    return t("prompts.why.comments", label=label, n=n)


def change_in_words(text: str, t: Translator, labels: Mapping[str, str]) -> dict[str, Any]:
    """One change-list line in the page's language; ``translated`` is False when the
    line is free text (an LLM's or a person's) shown as written."""
    prefix = ""
    mode = re.match(r"^(?P<mode>structure|surfaces): (?P<rest>.*)$", text.strip())
    if mode:
        prefix, text = t("prompts.mode." + mode["mode"]) + ": ", mode["rest"]
    for pattern, key in _CHANGE:
        found = pattern.match(text.strip())
        if found:
            values = found.groupdict()
            why = _why(values.get("why"), t, labels)
            sentence = t(key, a=values.get("a") or "", b=values.get("b") or "")
            sentence = f"{sentence} ({why})" if why else sentence
            return {"text": prefix + sentence, "translated": True}
    return {"text": prefix + text, "translated": False}


def changes_in_words(lines: Iterable[str], t: Translator, labels: Mapping[str, str]
                     ) -> list[dict[str, Any]]:
    return [change_in_words(str(line), t, labels) for line in lines]


def ab_in_words(test: Mapping[str, Any] | None, rule: Mapping[str, Any], t: Translator
                ) -> str:
    """"La versión nueva gana con un 77 % de probabilidad; se decide al llegar a 15 pares"."""
    if not test:
        return t("prompts.ab.none")
    pairs = int(test.get("n_pairs") or 0)
    p_better = test.get("p_better")
    looks = [int(x) for x in rule.get("looks") or []]
    max_pairs = int(rule.get("max_pairs") or 20)
    min_pairs = int(rule.get("min_pairs") or 10)
    next_look = next((n for n in looks if n > pairs), max_pairs)
    status = test.get("status")
    if status != "running":
        return t("prompts.words.decided", challenger=test.get("challenger"),
                 status=t(f"prompts.ab.status.{status}"), pairs=pairs,
                 pct=format_percent(p_better, t.lang) if p_better is not None else "—")
    if pairs == 0 or p_better is None:
        return t("prompts.words.no_pairs", min=min_pairs, look=next_look)
    key = "prompts.words.winning" if p_better >= 0.5 else "prompts.words.losing"
    pct = format_percent(p_better if p_better >= 0.5 else 1 - p_better, t.lang)
    diff = test.get("mean_diff")
    return t(key, pct=pct, look=next_look, pairs=pairs,
             diff=format_number(abs(diff), t.lang, 2) if diff is not None else "—")


_REASONS = [
    (re.compile(r"^P\(challenger better\) = (?P<p>[\d.]+) >= (?P<thr>[\d.]+) after (?P<n>\d+) "
                r"pairs \(mean difference (?P<d>[-+\d.]+) stars\)$"), "prompts.reason.promote"),
    (re.compile(r"^P\(challenger worse\) = (?P<p>[\d.]+) >= (?P<thr>[\d.]+) after (?P<n>\d+) "
                r"pairs \(mean difference (?P<d>[-+\d.]+) stars\)$"), "prompts.reason.worse"),
    (re.compile(r"^(?P<n>\d+) pairs \(maximum (?P<max>\d+)\) without a promotion: "
                r"P\(challenger better\) = (?P<p>[\d.]+)$"), "prompts.reason.max_pairs"),
]


def reason_in_words(reason: str, t: Translator) -> str:
    """An automatic A/B decision reason in words; other reasons as written."""
    trigger = re.match(r"^(?P<name>[a-z_]+) trigger$", reason.strip())
    if trigger:
        return t("prompts.trigger." + trigger["name"])
    for pattern, key in _REASONS:
        found = pattern.match(reason.strip())
        if found:
            values = found.groupdict()
            return t(key, n=values["n"], max=values.get("max") or "",
                     pct=format_percent(float(values["p"]), t.lang),
                     thr=format_percent(float(values.get("thr") or 0), t.lang),
                     diff=format_number(float(values.get("d") or 0), t.lang, 2))
    return reason


def diff_for_providers(diff: dict[str, Any], enabled: Iterable[str]) -> dict[str, Any]:
    """The diff with an entry for every enabled provider: a provider without its own
    prompt in the documents (``local``) shows the prompt it uses, marked ``uses``."""
    entries = list(diff.get("entries") or [])
    present = {e["provider"] for e in entries}
    for provider in enabled:
        if provider in present:
            continue
        source = FALLBACK_PROVIDER if FALLBACK_PROVIDER in present else None
        if source is None:
            continue
        entries += [{**e, "provider": provider, "uses": source}
                    for e in entries if e["provider"] == source]
    order = {p: i for i, p in enumerate(sorted({e["provider"] for e in entries}))}
    entries.sort(key=lambda e: order[e["provider"]])
    return {**diff, "entries": entries}
