"""Offline prompt evolution: deterministic operators over the curated phrase bank.

Given a mode's prompt pair and the issue analysis, the evolver picks the most
pressing issues (count x severity; the generic photo-realism entry when nobody
commented) and applies a few operators, so each version changes little and its
effect can be measured:

* for the top issue: **add** a bank term to the prompt and **edit the negative
  prompt** (add a bank term);
* for the second issue (or the first again): one of **replace** a weaker term with
  a stronger one, **reorder** (move a relevant term to the front), **remove** a
  term known to cause the issue, or **add** another term.

Choices among candidates are drawn from ``random.Random`` seeded with the
configured seed, the parent version and the mode, so the same inputs give the
same version. Every result is checked against the hard rules; a candidate that
would break them, exceed the length limit or change nothing is skipped.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

from services.evolution.errors import EvolutionFailed
from services.evolution.evolver import ModeRequest, Proposal
from services.evolution.guardrails import MAX_PROMPT_CHARS, violations
from services.evolution.issues import CATEGORY_BY_KEY, IssueStat
from services.evolution.phrase_bank import BANK, GENERIC, Phrases

HEAD_TERMS = 2
"""Reordered terms go right after the first two (the photorealism head of the prompt)."""


def split_terms(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def join_terms(terms: list[str]) -> str:
    return ", ".join(terms)


def _has(terms: list[str], phrase: str) -> bool:
    lowered = phrase.lower()
    return any(lowered == t.lower() for t in terms)


@dataclass
class _Draft:
    prompt: list[str]
    negative: list[str]
    changes: list[str]
    added: set[str] = field(default_factory=set)


class OfflineEvolver:
    """Evolver with no network; see the module docstring."""

    name = "offline"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def _rng(self, request: ModeRequest) -> random.Random:
        key = f"{self.seed}:{request.seed}:{request.parent_version}:{request.mode}:{request.prompt}"
        return random.Random(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big"))

    async def propose(self, request: ModeRequest) -> Proposal:
        return self.propose_sync(request)

    def propose_sync(self, request: ModeRequest) -> Proposal:
        rng = self._rng(request)
        top = request.issues.top(2)
        targets: list[tuple[str, Phrases, IssueStat | None]] = [
            (issue.key, BANK[issue.key], issue) for issue in top
        ] or [("generic", GENERIC, None)]
        draft = _Draft(split_terms(request.prompt), split_terms(request.negative_prompt), [])
        first_key, first_bank, first_issue = targets[0]
        why = self._why(first_key, first_issue)
        self._add(draft, first_bank, rng, why) or self._reorder(draft, first_bank, rng, why)
        self._negative(draft, first_bank, rng, why)
        second_key, second_bank, second_issue = targets[1] if len(targets) > 1 else targets[0]
        why2 = self._why(second_key, second_issue)
        operators = [self._replace, self._reorder, self._remove, self._add_op]
        rng.shuffle(operators)
        for operator in operators:
            if operator(draft, second_bank, rng, why2):
                break
        prompt, negative = join_terms(draft.prompt), join_terms(draft.negative)
        problems = violations(prompt, negative, request.prompt, request.negative_prompt)
        if problems:
            raise EvolutionFailed.because("offline", problems="; ".join(problems))
        return Proposal(prompt, negative, draft.changes,
                        self._reasoning(request, targets), "offline")

    # --- operators ---------------------------------------------------------------

    @staticmethod
    def _why(key: str, issue: IssueStat | None) -> str:
        if issue is None:
            return "no specific complaint: general photo realism"
        mean = f", mean rating {issue.mean_rating:.1f}" if issue.mean_rating is not None else ""
        return f"{CATEGORY_BY_KEY[key].label_en.lower()}: {issue.count} comment(s){mean}"

    @staticmethod
    def _fits(terms: list[str]) -> bool:
        return len(join_terms(terms)) <= MAX_PROMPT_CHARS

    def _add(self, draft: _Draft, bank: Phrases, rng: random.Random, why: str) -> bool:
        options = [p for p in bank.add if not _has(draft.prompt, p)]
        rng.shuffle(options)
        for phrase in options:
            candidate = [*draft.prompt, phrase]
            if self._fits(candidate):
                draft.prompt = candidate
                draft.added.add(phrase.lower())
                draft.changes.append(f"added '{phrase}' to the prompt ({why})")
                return True
        return False

    def _add_op(self, draft: _Draft, bank: Phrases, rng: random.Random, why: str) -> bool:
        return self._add(draft, bank, rng, why)

    def _negative(self, draft: _Draft, bank: Phrases, rng: random.Random, why: str) -> bool:
        options = [p for p in bank.negative if not _has(draft.negative, p)]
        rng.shuffle(options)
        for phrase in options:
            candidate = [*draft.negative, phrase]
            if self._fits(candidate):
                draft.negative = candidate
                draft.changes.append(f"added '{phrase}' to the negative prompt ({why})")
                return True
        return False

    def _replace(self, draft: _Draft, bank: Phrases, rng: random.Random, why: str) -> bool:
        options = [(old, new) for old, new in bank.replace
                   if _has(draft.prompt, old) and not _has(draft.prompt, new)]
        if not options:
            return False
        old, new = rng.choice(options)
        candidate = [new if t.lower() == old.lower() else t for t in draft.prompt]
        if not self._fits(candidate):
            return False
        draft.prompt = candidate
        draft.changes.append(f"replaced '{old}' with '{new}' in the prompt ({why})")
        return True

    def _reorder(self, draft: _Draft, bank: Phrases, rng: random.Random | None = None,
                 why: str = "") -> bool:
        lowered = [t.lower() for t in draft.prompt]
        for phrase in (*bank.emphasise, *bank.add):
            if phrase.lower() in lowered and phrase.lower() not in draft.added:
                index = lowered.index(phrase.lower())
                if index <= HEAD_TERMS:
                    continue
                term = draft.prompt.pop(index)
                draft.prompt.insert(HEAD_TERMS, term)
                draft.changes.append(f"moved '{term}' forward in the prompt for more weight "
                                     f"({why})")
                return True
        return False

    def _remove(self, draft: _Draft, bank: Phrases, rng: random.Random, why: str) -> bool:
        for phrase in bank.remove:
            if _has(draft.prompt, phrase) and len(draft.prompt) > 3:
                draft.prompt = [t for t in draft.prompt if t.lower() != phrase.lower()]
                draft.changes.append(f"removed '{phrase}' from the prompt ({why})")
                return True
        return False

    @staticmethod
    def _reasoning(request: ModeRequest,
                   targets: list[tuple[str, Phrases, IssueStat | None]]) -> str:
        if targets[0][2] is None:
            focus = "No trainer comment named a specific problem, so this version pushes " \
                    "general photographic realism (camera and lens terms, no CGI look)."
        else:
            named = "; ".join(
                f"{CATEGORY_BY_KEY[key].label_en.lower()} ({issue.count} comment(s), variants "
                f"mentioning it average {issue.mean_rating:.1f} stars)"
                for key, _, issue in targets if issue is not None and issue.mean_rating is not None
            )
            focus = f"Trainers' comments point at {named}."
        score = (f"{request.parent_version} averages {request.avg_rating:.2f} stars over "
                 f"{request.sample_count} ratings in {request.mode} mode. "
                 if request.avg_rating is not None else
                 f"{request.parent_version} has no ratings yet in {request.mode} mode. ")
        return (score + focus + " The changes add or strengthen rendering terms only (light, "
                "shadows, depth, surface detail) and put the matching faults in the negative "
                "prompt; layout, shapes, materials and colours are untouched, and every "
                "preservation term is kept.")
