"""LLM evolution through the openai SDK against a local fake OpenAI-compatible server."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from services.common.settings import REPO_ROOT
from services.evolution.errors import EvolutionFailed
from services.evolution.evolver import ModeRequest
from services.evolution.guardrails import hard_rules_text
from services.evolution.issues import RatedComment, analyse
from services.evolution.llm import LLMEvolver
from services.evolution.llm_fake import GOOD_TERMS, FakeLLMServer
from services.evolution.offline import OfflineEvolver

BASELINE = json.loads((REPO_ROOT / "prompts/versions/v1.0.0.json").read_text())
HISTORY = [{"version": "v1.0.0", "avg_rating": 2.5, "sample_count": 4, "created_by": "system"}]


def _request() -> ModeRequest:
    pair = BASELINE["providers"]["stablediffusion"]["modes"]["structure"]
    report = analyse([RatedComment(2, "se ve plano, faltan sombras", "structure"),
                      RatedComment(1, "muy plano", "structure"),
                      RatedComment(4, "bien", "structure")])
    return ModeRequest("structure", pair["prompt"], pair["negative_prompt"], "v1.0.0",
                       report.mean_rating, report.samples, HISTORY, report,
                       tuple(hard_rules_text()))


def _evolver(server: FakeLLMServer, attempts: int = 3, timeout: float = 5.0,
             fallback: bool = False) -> LLMEvolver:
    prompts = REPO_ROOT / "prompts"
    return LLMEvolver(
        base_url=server.base_url, api_key="test-key", model="fake-model", timeout=timeout,
        max_attempts=attempts, temperature=0.2,
        system_prompt=(prompts / "evolution-system-prompt.txt").read_text(),
        answer_schema=json.loads((prompts / "evolution-answer.schema.json").read_text()),
        fallback=OfflineEvolver() if fallback else None,
    )


async def _run(script: Sequence[str], **kwargs: Any) -> tuple[Any, list[dict[str, Any]]]:
    server = FakeLLMServer(script, slow_seconds=1.5)
    with server.running():
        try:
            evolver = _evolver(server, **kwargs)
            return await evolver.propose(_request()), server.requests
        except EvolutionFailed as exc:
            return exc, server.requests


async def test_good_answer_is_accepted_and_the_request_carries_everything() -> None:
    proposal, requests = await _run(["good"])
    assert not isinstance(proposal, Exception)
    assert proposal.engine == "llm" and proposal.attempts == 1
    assert proposal.prompt.endswith(GOOD_TERMS)
    assert "missing shadows" in proposal.negative_prompt
    assert len(proposal.changes) == 3 and proposal.reasoning
    body = requests[0]
    assert body["model"] == "fake-model"
    assert body["response_format"] == {"type": "json_object"}
    system, user = body["messages"][0], json.loads(body["messages"][1]["content"])
    assert "NEVER change the design" in system["content"]
    assert user["version_history"] == HISTORY
    assert {i["issue"] for i in user["common_issues"]} == {"Flat / no depth", "Shadows"}
    assert user["comments"] == ["se ve plano, faltan sombras", "muy plano"]
    assert user["hard_rules"] == list(hard_rules_text())
    assert user["avg_rating"] == pytest.approx(7 / 3, abs=1e-3)


@pytest.mark.parametrize("bad", ["invalid_json", "schema", "refusal", "rule_breaking", "error",
                                 "fenced"])
async def test_a_bad_answer_is_rejected_and_retried(bad: str) -> None:
    proposal, requests = await _run([bad, "good"])
    assert not isinstance(proposal, Exception)
    if bad == "fenced":  # a fenced JSON block is fine: accepted at once
        assert proposal.attempts == 1 and len(requests) == 1
        return
    assert proposal.attempts == 2 and len(requests) == 2
    assert proposal.notes and proposal.notes[0].startswith("attempt 1:")
    if bad in ("invalid_json", "schema", "rule_breaking"):
        retry = requests[1]["messages"]
        assert retry[2]["role"] == "assistant" and "rejected" in retry[3]["content"]


@pytest.mark.parametrize(
    ("mode", "reason"),
    [("refusal", "refused"), ("rule_breaking", "hard rules"), ("invalid_json", "not JSON"),
     ("schema", "schema")],
)
async def test_bounded_retries_then_failure_with_reasons(mode: str, reason: str) -> None:
    failure, requests = await _run([mode], attempts=3)
    assert isinstance(failure, EvolutionFailed)
    assert len(requests) == 3
    assert reason in failure.message_en and "3 attempts" in failure.message_en
    if mode == "rule_breaking":
        assert "'luxury'" in failure.message_en and "'marble'" in failure.message_en


async def test_timeout_is_rejected_and_retried() -> None:
    proposal, requests = await _run(["slow", "good"], timeout=0.3)
    assert not isinstance(proposal, Exception)
    assert proposal.attempts == 2 and "timed out" in proposal.notes[0]


async def test_fallback_to_offline_says_why() -> None:
    proposal, requests = await _run(["refusal"], attempts=2, fallback=True)
    assert not isinstance(proposal, Exception)
    assert proposal.engine == "offline" and len(requests) == 2
    assert any("evolved offline instead" in note for note in proposal.notes)
