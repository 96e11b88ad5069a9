"""The prompt-version schema, the baseline v1.0.0 and the evolution system prompt."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from services.common.settings import REPO_ROOT
from services.evolution.documents import (
    load_validator,
    prompts_for,
    validate_document,
    version_key,
)
from services.evolution.errors import InvalidPromptVersion

PROMPTS = REPO_ROOT / "prompts"


@pytest.fixture(scope="module")
def validator() -> Any:
    return load_validator(PROMPTS / "schema.json")


@pytest.fixture
def baseline() -> dict[str, Any]:
    return json.loads((PROMPTS / "versions" / "v1.0.0.json").read_text(encoding="utf-8"))


def test_baseline_is_valid(validator: Any, baseline: dict[str, Any]) -> None:
    assert validate_document(baseline, validator, "v1.0.0.json") == baseline
    assert baseline["version"] == "v1.0.0"
    assert baseline["parent_version"] is None
    assert baseline["created_by"] == "system"


def test_baseline_defaults_come_from_the_seeds(baseline: dict[str, Any]) -> None:
    providers = baseline["providers"]
    assert providers["leonardo"]["defaults"] == {
        "init_strength": 0.25,
        "guidance_scale": 7.0,
        "controlnet_weight": 0.92,
    }
    assert providers["stablediffusion"]["defaults"] == {
        "strength": 0.2,
        "guidance_scale": 7.5,
        "controlnet_conditioning_scale": 0.95,
    }


@pytest.mark.parametrize("provider", ["leonardo", "stablediffusion"])
@pytest.mark.parametrize("mode", ["structure", "surfaces"])
def test_baseline_prompts_keep_seed_words_and_enhancer_terms(
    baseline: dict[str, Any], provider: str, mode: str
) -> None:
    pair = baseline["providers"][provider]["modes"][mode]
    assert pair["prompt"].startswith(
        "ultra-realistic, photorealistic interior design render, 8k, sharp focus, "
        "realistic textures on all surfaces"
    )
    assert pair["negative_prompt"].startswith(
        "drawn, sketch, illustration, cartoon, blurry, distorted, warped, ugly, noisy, "
        "grainy, unreal"
    )
    for term in ("natural light", "soft shadows", "high contrast", "detail"):
        assert term in pair["prompt"]
    assert "..." not in pair["prompt"] + pair["negative_prompt"]


def test_structure_mode_stresses_layout_and_surfaces_mode_materials(
    baseline: dict[str, Any],
) -> None:
    modes = baseline["providers"]["leonardo"]["modes"]
    assert "layout" in modes["structure"]["prompt"]
    assert "changed layout" in modes["structure"]["negative_prompt"]
    assert "colours and materials" in modes["surfaces"]["prompt"]
    assert "changed colours" in modes["surfaces"]["negative_prompt"]


def _broken(baseline: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(baseline)
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node[key]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return doc


@pytest.mark.parametrize(
    ("path", "value", "reported"),
    [
        ("version", "1.0.0", "version"),
        ("version", "v1.0", "version"),
        ("created_by", "system_init", "created_by"),
        ("parent_version", "latest", "parent_version"),
        ("parent_version", "v1.0.0", "own parent"),
        ("created_at", "2025-01-19T10:00:00", "time zone"),
        ("created_at", "yesterday", "created_at"),
        ("providers.leonardo.modes.structure.prompt", "", "prompt"),
        ("providers.leonardo.modes.surfaces", KeyError, "surfaces"),
        ("providers.stablediffusion.defaults.strength", 0.9, "strength"),
        ("providers.leonardo.defaults.controlnet_weight", 0.5, "controlnet_weight"),
        ("providers.local", {"modes": {}}, "local"),
        ("changes", "added x", "changes"),
    ],
)
def test_broken_documents_are_rejected_with_the_reason(
    validator: Any, baseline: dict[str, Any], path: str, value: Any, reported: str
) -> None:
    doc = _broken(baseline, path, value)
    with pytest.raises(InvalidPromptVersion) as info:
        validate_document(doc, validator, "broken.json")
    assert "broken.json" in info.value.message_en
    assert reported in info.value.message_en


def test_local_provider_uses_the_stablediffusion_prompts(baseline: dict[str, Any]) -> None:
    for mode in ("structure", "surfaces"):
        prompts = prompts_for(baseline, mode)
        assert set(prompts) == {"leonardo", "stablediffusion", "local"}
        assert prompts["local"] == prompts["stablediffusion"]
        sd = baseline["providers"]["stablediffusion"]["modes"][mode]
        assert prompts["stablediffusion"] == sd


def test_versions_sort_numerically() -> None:
    versions = ["v1.10.0", "v1.2.0", "v1.0.0", "v2.0.0", "v1.2.10", "v1.2.9"]
    ordered = sorted(versions, key=version_key)
    assert ordered == ["v1.0.0", "v1.2.0", "v1.2.9", "v1.2.10", "v1.10.0", "v2.0.0"]
    with pytest.raises(ValueError):
        version_key("1.0.0")


def test_system_prompt_protects_the_design_and_asks_for_json() -> None:
    text = (PROMPTS / "evolution-system-prompt.txt").read_text(encoding="utf-8")
    assert "NEVER change the design" in text
    for key in ("improved_prompt", "negative_prompt", "changes", "reasoning"):
        assert f'"{key}"' in text
