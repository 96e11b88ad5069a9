"""The operator's smoke command (scripts/provider_smoke.py) against the local fakes."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scripts.provider_smoke import main
from services.gateway.providers.fakes import FakeServer, Scenario
from services.gateway.settings import GatewaySettings
from services.gateway.tests._provider_support import RENDER, looks_inverted

SECRET = "sk-smoke-secret-0123456789"


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeServer]]:
    with FakeServer("leonardo") as leonardo, FakeServer("replicate") as replicate:
        yield {"leonardo": leonardo, "replicate": replicate}


def settings_for(tmp_path: Path, fakes: dict[str, FakeServer], **extra: Any) -> GatewaySettings:
    return GatewaySettings(
        data_dir=tmp_path, leonardo_api_key=SECRET, replicate_api_token=SECRET,
        leonardo_base_url=fakes["leonardo"].base_url,
        replicate_base_url=fakes["replicate"].base_url, replicate_wait_seconds=0,
        provider_poll_interval_seconds=0.01, provider_backoff_seconds=0.01, **extra)


def run(argv: list[str], settings: GatewaySettings) -> tuple[int, str]:
    out = io.StringIO()
    code = main(argv, settings, out)
    return code, out.getvalue()


def summary(text: str) -> dict[str, Any]:
    return dict(json.loads(text[text.index("\n{") + 1:]))


@pytest.mark.parametrize("kind", ["leonardo", "replicate"])
def test_one_generation_prints_the_request_and_cost_and_saves_it(
        kind: str, fakes: dict[str, FakeServer], tmp_path: Path) -> None:
    fake = fakes[kind]
    fake.reset(Scenario(api_key=SECRET, pending_polls=1))
    render = tmp_path / "render.jpg"
    render.write_bytes(RENDER)
    code, text = run([kind, "--image", str(render)], settings_for(tmp_path, fakes))
    assert code == 0, text
    assert SECRET not in text  # the key is never printed
    assert "model check: " in text and "generating" in text
    [create] = fake.state.calls("create")  # exactly one generation
    printed = summary(text)
    if kind == "leonardo":
        assert printed["request"] == create["json"]
        assert printed["cost"]["reported_api_credits"] == 12
        assert isinstance(printed["request"]["guidance_scale"], int)
        assert printed["request"]["alchemy"] is False
    else:
        assert printed["request"]["version"] == create["json"]["version"]
        assert printed["request"]["input"]["prompt_strength"] == 0.3
        assert printed["cost"]["reported_predict_time_s"] == 4.2
        assert create["cancel_after"]
    assert printed["cost"]["estimated_usd"] > 0
    saved = Path(printed["saved"])
    assert saved.parent == tmp_path and looks_inverted(saved.read_bytes(), RENDER)


def test_a_provider_without_key_is_reported_not_called(fakes: dict[str, FakeServer],
                                                       tmp_path: Path) -> None:
    render = tmp_path / "render.jpg"
    render.write_bytes(RENDER)
    settings = settings_for(tmp_path, fakes).model_copy(update={"replicate_api_token": ""})
    fakes["replicate"].reset(Scenario(api_key=SECRET))
    code, text = run(["replicate", "--image", str(render)], settings)
    assert code == 2 and "REPLICATE_API_TOKEN" in text
    assert fakes["replicate"].state.requests == []


def test_an_unknown_replicate_version_fails_the_model_check(fakes: dict[str, FakeServer],
                                                            tmp_path: Path) -> None:
    render = tmp_path / "render.jpg"
    render.write_bytes(RENDER)
    fake = fakes["replicate"]
    fake.reset(Scenario(api_key=SECRET))
    settings = settings_for(tmp_path, fakes, replicate_version="f" * 64)
    code, text = run(["replicate", "--image", str(render)], settings)
    assert code == 2 and "HTTP 404" in text
    assert not fake.state.calls("create")  # nothing paid for


def test_a_refused_generation_exits_1_with_both_languages(fakes: dict[str, FakeServer],
                                                          tmp_path: Path) -> None:
    render = tmp_path / "render.jpg"
    render.write_bytes(RENDER)
    fake = fakes["leonardo"]
    fake.reset(Scenario(api_key=SECRET))
    settings = settings_for(tmp_path, fakes, leonardo_controlnet_preprocessor_id=19)
    code, text = run(["leonardo", "--image", str(render)], settings)
    assert code == 1 and "FAILED" in text
    assert "rechazó" in text and "refused" in text and "preprocessorId" in text
