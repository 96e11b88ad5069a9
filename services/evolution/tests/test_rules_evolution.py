"""Triggers, hard rules, the phrase bank and the offline evolver."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from services.common.settings import REPO_ROOT
from services.evolution.evolver import ModeRequest
from services.evolution.guardrails import violations
from services.evolution.issues import RatedComment, analyse
from services.evolution.offline import OfflineEvolver
from services.evolution.phrase_bank import BANK, GENERIC
from services.evolution.triggers import TriggerRules, TriggerState, due_trigger

BASELINE = json.loads((REPO_ROOT / "prompts/versions/v1.0.0.json").read_text())
RULES = TriggerRules()


def pair(mode: str) -> dict[str, str]:
    return dict(BASELINE["providers"]["stablediffusion"]["modes"][mode])


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (TriggerState(total=9, best=3.0, last=None, improved=0), None),
        (TriggerState(total=10, best=3.0, last=None, improved=0), "periodic"),
        (TriggerState(total=10, best=None, last=None, improved=0), "periodic"),
        (TriggerState(total=19, best=3.0, last=10, improved=0), None),
        (TriggerState(total=20, best=4.2, last=10, improved=0), "periodic"),
        (TriggerState(total=10, best=3.0, last=None, improved=0, blocked=True), None),
        (TriggerState(total=20, best=4.6, last=10, improved=0), None),  # converged
        (TriggerState(total=25, best=4.6, last=10, improved=0), "plateau"),
        (TriggerState(total=25, best=4.6, last=10, improved=12), None),  # improved recently
        (TriggerState(total=23, best=3.5, last=18, improved=0), "low_performance"),
        (TriggerState(total=24, best=3.5, last=21, improved=0), None),  # low_gap not reached
        (TriggerState(total=19, best=2.0, last=10, improved=0), None),  # not after 20 yet
        (TriggerState(total=30, best=3.0, last=30, improved=0), None),  # already ran here
    ],
)
def test_triggers(state: TriggerState, expected: str | None) -> None:
    assert due_trigger(state, RULES) == expected


@pytest.mark.parametrize("mode", ["structure", "surfaces"])
def test_baseline_and_every_bank_phrase_respect_the_hard_rules(mode: str) -> None:
    base = pair(mode)
    for bank in [*BANK.values(), GENERIC]:
        for phrase in (*bank.add, *(new for _, new in bank.replace)):
            prompt = f"{base['prompt']}, {phrase}"
            assert violations(prompt, base["negative_prompt"] + ", x", base["prompt"],
                              base["negative_prompt"]) == [], phrase


@pytest.mark.parametrize(
    ("prompt_edit", "negative_edit", "expected"),
    [
        (lambda p: "modern luxury room, " + p, None, "design change or a style"),
        (lambda p: p + ", marble floor", None, "materials or colours"),
        (lambda p: p + ", add plants", None, "design change"),
        (lambda p: p.replace("layout", "look"), None, "room layout"),
        (None, lambda n: n.replace("moved furniture, ", ""), "'moved furniture'"),
        (lambda p: p + ", " + "x" * 1000, None, "characters"),
        (None, None, "nothing changed"),
    ],
)
def test_rule_breaking_texts_are_rejected_with_the_reason(prompt_edit: Any, negative_edit: Any,
                                                          expected: str) -> None:
    base = pair("structure")
    prompt = prompt_edit(base["prompt"]) if prompt_edit else base["prompt"]
    negative = negative_edit(base["negative_prompt"]) if negative_edit else base["negative_prompt"]
    problems = violations(prompt, negative, base["prompt"], base["negative_prompt"])
    assert any(expected in p for p in problems), problems


def _request(mode: str, comments: list[tuple[int, str]], seed: int = 0) -> ModeRequest:
    base = pair(mode)
    report = analyse([RatedComment(r, c, mode) for r, c in comments])
    return ModeRequest(mode, base["prompt"], base["negative_prompt"], "v1.0.0",
                       report.mean_rating, report.samples, [], report, (), seed)


FLAT = [(2, "se ve plano"), (2, "sin profundidad"), (1, "plano, parece un montaje"),
        (4, "bien")]


def test_offline_evolution_is_deterministic_and_targets_the_top_issue() -> None:
    evolver = OfflineEvolver(seed=7)
    first = asyncio.run(evolver.propose(_request("structure", FLAT)))
    again = asyncio.run(OfflineEvolver(seed=7).propose(_request("structure", FLAT)))
    assert first == again
    assert first.engine == "offline"
    assert 2 <= len(first.changes) <= 3
    assert "flat / no depth: 3 comment(s)" in first.changes[0]
    assert any("negative prompt" in c for c in first.changes)
    assert "flat / no depth" in first.reasoning and "v1.0.0 averages 2.25" in first.reasoning
    base = pair("structure")
    assert violations(first.prompt, first.negative_prompt, base["prompt"],
                      base["negative_prompt"]) == []
    flat_terms = set(BANK["flat"].add) | set(BANK["flat"].negative) | {
        new for _, new in BANK["flat"].replace} | set(BANK["flat"].emphasise)
    assert any(term in first.prompt + first.negative_prompt for term in flat_terms)


@pytest.mark.parametrize(
    "comment",
    ["luz quemada", "colores lavados", "textura de plástico", "faltan sombras",
     "movieron la silla", "mucho ruido", ""],
)
@pytest.mark.parametrize("mode", ["structure", "surfaces"])
def test_offline_evolution_always_respects_the_rules(comment: str, mode: str) -> None:
    proposal = OfflineEvolver().propose_sync(_request(mode, [(2, comment)] if comment else []))
    base = pair(mode)
    assert violations(proposal.prompt, proposal.negative_prompt, base["prompt"],
                      base["negative_prompt"]) == []
    assert proposal.changes and proposal.reasoning


def test_different_seeds_explore_different_variants() -> None:
    variants = {OfflineEvolver(seed=s).propose_sync(_request("structure", FLAT)).prompt
                for s in range(8)}
    assert len(variants) > 1


def test_when_every_bank_term_is_present_the_top_issue_gets_a_reorder() -> None:
    base = pair("structure")
    saturated = base["prompt"] + ", " + ", ".join(BANK["flat"].add)
    report = analyse([RatedComment(2, "muy plano", "structure")])
    request = ModeRequest("structure", saturated, base["negative_prompt"], "v1.0.0", 2.0, 1,
                          [], report, (), 0)
    proposal = OfflineEvolver().propose_sync(request)
    assert proposal.changes[0].startswith("moved '")
    assert proposal.changes[0].endswith("(flat / no depth: 1 comment(s), mean rating 2.0)")
    assert violations(proposal.prompt, proposal.negative_prompt, saturated,
                      base["negative_prompt"]) == []
