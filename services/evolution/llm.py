"""Prompt evolution through an OpenAI-compatible chat endpoint (the ``openai`` SDK).

Works with OpenAI, a local Ollama (``EVOLUTION_LLM_BASE_URL=http://localhost:11434/v1``)
or vLLM: base URL, model and key come from settings. One request per mode:

* system message: ``prompts/evolution-system-prompt.txt``;
* user message: a JSON object with the mode, the current prompt pair, its average
  rating and sample count, the **history of versions with their scores**, the
  issue analysis (counts, severity, examples), the **raw comments of low-rated
  variants** and the hard rules.

The answer must be one JSON object valid against
``prompts/evolution-answer.schema.json`` (``improved_prompt``, ``negative_prompt``,
``changes``, ``reasoning``) whose texts pass the hard rules
(:mod:`services.evolution.guardrails`). Timeouts, connection and HTTP errors,
refusals, non-JSON or schema-invalid answers and rule-breaking texts are each
rejected; the next attempt (at most ``EVOLUTION_LLM_MAX_ATTEMPTS``) tells the
model what was wrong. After the last attempt :class:`EvolutionFailed` is raised,
or, when a fallback is configured, the offline evolver answers instead and the
proposal notes why.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import jsonschema

from services.evolution.errors import EvolutionFailed
from services.evolution.evolver import Evolver, ModeRequest, Proposal
from services.evolution.guardrails import violations
from services.evolution.settings import EvolutionSettings

log = logging.getLogger(__name__)

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)
_REFUSAL = re.compile(r"\b(i can(?:no|')t|i am unable|i'm unable|i'm sorry|i am sorry|"
                      r"cannot (?:help|assist|comply))\b", re.I)


def build_user_message(request: ModeRequest) -> dict[str, Any]:
    """The JSON object sent as the user message (also what the fake server inspects)."""
    issues = request.issues
    return {
        "mode": request.mode,
        "current_version": request.parent_version,
        "current_prompt": request.prompt,
        "current_negative_prompt": request.negative_prompt,
        "avg_rating": request.avg_rating,
        "sample_count": request.sample_count,
        "version_history": request.history,
        "common_issues": [
            {"issue": i.label_en, "issue_es": i.label_es, "count": i.count,
             "share_of_comments": i.share, "mean_rating_of_mentions": i.mean_rating,
             "severity": i.severity, "examples": i.examples}
            for i in issues.issues if i.count > 0
        ],
        "comments": [c["comment"] for c in issues.low_rated_comments],
        "low_rated_comments": issues.low_rated_comments,
        "hard_rules": list(request.hard_rules),
    }


class _Rejected(Exception):
    """One attempt's answer was not acceptable; ``feedback`` goes back to the model."""

    def __init__(self, problem: str, feedback: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.feedback = feedback


class LLMEvolver:
    """Evolver backed by an OpenAI-compatible endpoint; see the module docstring."""

    name = "llm"

    def __init__(self, *, base_url: str | None, api_key: str, model: str, timeout: float,
                 max_attempts: int, temperature: float, system_prompt: str,
                 answer_schema: dict[str, Any], fallback: Evolver | None = None) -> None:
        self.base_url = base_url
        self.api_key = api_key
        self.model = model
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.temperature = temperature
        self.system_prompt = system_prompt
        self.validator = jsonschema.Draft202012Validator(answer_schema)
        self.fallback = fallback

    @classmethod
    def from_settings(cls, settings: EvolutionSettings,
                      fallback: Evolver | None = None) -> LLMEvolver:
        prompts: Path = settings.prompts_dir
        return cls(
            base_url=settings.llm_base_url or None,
            api_key=settings.llm_api_key or "not-needed",
            model=settings.llm_model,
            timeout=settings.llm_timeout_seconds,
            max_attempts=settings.llm_max_attempts,
            temperature=settings.llm_temperature,
            system_prompt=(prompts / "evolution-system-prompt.txt").read_text(encoding="utf-8"),
            answer_schema=json.loads(
                (prompts / "evolution-answer.schema.json").read_text(encoding="utf-8")),
            fallback=fallback,
        )

    async def propose(self, request: ModeRequest) -> Proposal:
        try:
            return await self._propose(request)
        except EvolutionFailed as exc:
            if self.fallback is None:
                raise
            log.warning("LLM evolution failed for %s/%s, evolving offline: %s",
                        request.parent_version, request.mode, exc.message_en)
            proposal = await self.fallback.propose(request)
            proposal.notes.append(f"LLM gave no acceptable answer ({exc.message_en}); "
                                  "evolved offline instead")
            return proposal

    async def _propose(self, request: ModeRequest) -> Proposal:
        import openai

        messages: list[dict[str, str]] = [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": json.dumps(build_user_message(request),
                                                   ensure_ascii=False)},
        ]
        problems: list[str] = []
        async with openai.AsyncOpenAI(base_url=self.base_url, api_key=self.api_key,
                                      timeout=self.timeout, max_retries=0) as client:
            for attempt in range(1, self.max_attempts + 1):
                try:
                    content = await self._ask(client, messages)
                    proposal = self._accept(content, request, attempt)
                except _Rejected as rejected:
                    problems.append(f"attempt {attempt}: {rejected.problem}")
                    log.info("LLM answer rejected (%s/%s attempt %d): %s",
                             request.parent_version, request.mode, attempt, rejected.problem)
                    if rejected.feedback is not None:
                        messages = [*messages[:2],
                                    {"role": "assistant", "content": rejected.feedback[0:4000]},
                                    {"role": "user", "content": (
                                        "Your answer was rejected: " + rejected.problem
                                        + ". Answer again with only the JSON object "
                                        "{improved_prompt, negative_prompt, changes, reasoning}, "
                                        "following every hard rule.")}]
                    continue
                proposal.notes.extend(problems)
                return proposal
        raise EvolutionFailed.because("llm", attempts=self.max_attempts,
                                      problems="; ".join(problems),
                                      details={"attempts": problems})

    async def _ask(self, client: Any, messages: list[dict[str, str]]) -> str:
        import openai

        try:
            completion = await client.chat.completions.create(
                model=self.model, messages=messages, temperature=self.temperature,
                response_format={"type": "json_object"},
            )
        except openai.APITimeoutError as exc:
            raise _Rejected(f"timed out after {self.timeout:g}s") from exc
        except openai.APIConnectionError as exc:
            raise _Rejected(f"could not connect: {exc}") from exc
        except openai.APIStatusError as exc:
            raise _Rejected(f"HTTP {exc.status_code}: {str(exc)[:200]}") from exc
        if not completion.choices:
            raise _Rejected("the answer has no choices")
        choice = completion.choices[0]
        message = choice.message
        if getattr(message, "refusal", None):
            raise _Rejected(f"refused: {message.refusal[:200]}")
        if choice.finish_reason == "content_filter":
            raise _Rejected("refused (content filter)")
        return str(message.content or "")

    def _accept(self, content: str, request: ModeRequest, attempt: int) -> Proposal:
        text = content.strip()
        fenced = _FENCE.match(text)
        if fenced:
            text = fenced.group(1)
        try:
            answer = json.loads(text)
        except json.JSONDecodeError as exc:
            if _REFUSAL.search(text) or not text:
                raise _Rejected(f"refused or empty answer: {text[:200]!r}") from exc
            raise _Rejected(f"the answer is not JSON ({exc.msg})", content) from exc
        errors = sorted(self.validator.iter_errors(answer), key=lambda e: list(e.absolute_path))
        if errors:
            detail = "; ".join(
                f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
                for e in errors[:5])
            raise _Rejected(f"the answer does not match the schema ({detail})", content)
        broken = violations(answer["improved_prompt"], answer["negative_prompt"],
                            request.prompt, request.negative_prompt)
        if broken:
            raise _Rejected("the texts break the hard rules: " + "; ".join(broken), content)
        return Proposal(
            prompt=answer["improved_prompt"].strip(),
            negative_prompt=answer["negative_prompt"].strip(),
            changes=[str(c).strip() for c in answer["changes"]],
            reasoning=answer["reasoning"].strip(),
            engine="llm",
            attempts=attempt,
        )
