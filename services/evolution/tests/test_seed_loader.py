"""Loading prompts/ at start-up: idempotent, strict about broken files, v1.0.0 active."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.evolution.errors import InvalidPromptVersion, NoActiveVersion
from services.evolution.main import create_app
from services.evolution.settings import EvolutionSettings


def _versions(client: TestClient) -> list[dict[str, Any]]:
    response = client.get("/prompts/versions")
    assert response.status_code == 200, response.text
    return response.json()["versions"]


def _write_version(prompts_dir: Path, version: str, parent: str | None, **changes: Any) -> None:
    doc = json.loads((prompts_dir / "versions" / "v1.0.0.json").read_text(encoding="utf-8"))
    doc.update(
        version=version,
        parent_version=parent,
        created_by="human",
        created_at="2025-02-01T09:30:00+01:00",
        changes=["added 'contact shadows'"],
        **changes,
    )
    doc["providers"]["leonardo"]["modes"]["structure"]["prompt"] += ", contact shadows"
    (prompts_dir / "versions" / f"{version}.json").write_text(json.dumps(doc), encoding="utf-8")


def test_start_up_loads_v1_and_makes_it_current(client: TestClient) -> None:
    versions = _versions(client)
    assert [(v["version"], v["status"], v["created_by"]) for v in versions] == [
        ("v1.0.0", "active", "system")
    ]
    assert versions[0]["created_at"].startswith("2025-01-19T10:00:00")
    assert client.get("/prompts/current").json()["version"] == "v1.0.0"


def test_loading_twice_keeps_one_row_per_version(
    settings: EvolutionSettings, auth: dict[str, str], evolution_logs: pytest.LogCaptureFixture
) -> None:
    with TestClient(create_app(settings), headers=auth) as first:
        assert len(_versions(first)) == 1
        promoted_at = first.get("/prompts/versions/v1.0.0").json()["promoted_at"]
    evolution_logs.clear()
    with (
        evolution_logs.at_level(logging.INFO),
        TestClient(create_app(settings), headers=auth) as again,
    ):
        versions = _versions(again)
        detail = again.get("/prompts/versions/v1.0.0").json()
    assert [(v["version"], v["status"]) for v in versions] == [("v1.0.0", "active")]
    assert detail["promoted_at"] == promoted_at  # not re-activated
    assert "already present ['v1.0.0']" in evolution_logs.text
    assert "differs from the stored one" not in evolution_logs.text  # round-trips unchanged


def test_new_version_file_is_added_as_candidate_and_current_stays(
    settings: EvolutionSettings, auth: dict[str, str], prompts_dir: Path
) -> None:
    with TestClient(create_app(settings), headers=auth) as first:
        assert len(_versions(first)) == 1
    _write_version(prompts_dir, "v1.0.1", "v1.0.0")
    _write_version(prompts_dir, "v1.0.10", "v1.0.1")
    with TestClient(create_app(settings), headers=auth) as client:
        versions = _versions(client)
        current = client.get("/prompts/current").json()
        detail = client.get("/prompts/versions/v1.0.1").json()
    assert [(v["version"], v["status"], v["parent_version"]) for v in versions] == [
        ("v1.0.0", "active", None),
        ("v1.0.1", "candidate", "v1.0.0"),
        ("v1.0.10", "candidate", "v1.0.1"),
    ]
    assert current["version"] == "v1.0.0"
    assert detail["created_by"] == "human"
    assert detail["document"]["changes"] == ["added 'contact shadows'"]
    assert detail["document"]["providers"]["leonardo"]["modes"]["structure"]["prompt"].endswith(
        ", contact shadows"
    )


def test_edited_loaded_file_is_ignored_with_a_warning(
    settings: EvolutionSettings,
    auth: dict[str, str],
    prompts_dir: Path,
    evolution_logs: pytest.LogCaptureFixture,
) -> None:
    with TestClient(create_app(settings), headers=auth) as first:
        original = first.get("/prompts/current").json()["document"]
    path = prompts_dir / "versions" / "v1.0.0.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["reasoning"] = "edited after loading"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with (
        evolution_logs.at_level(logging.WARNING),
        TestClient(create_app(settings), headers=auth) as c,
    ):
        assert c.get("/prompts/current").json()["document"] == original
    assert "v1.0.0 in the files differs from the stored one" in evolution_logs.text


@pytest.mark.parametrize(
    ("file_name", "content", "message"),
    [
        ("v1.0.1.json", "{not json", "Cannot read the prompt version"),
        ("v1.0.1.json", json.dumps({"version": "v1.0.1"}), "is not valid"),
        ("v9.9.9.json", None, "must be named v1.0.1.json"),
    ],
)
def test_broken_file_fails_start_up_naming_the_file(
    settings: EvolutionSettings,
    prompts_dir: Path,
    evolution_logs: pytest.LogCaptureFixture,
    file_name: str,
    content: str | None,
    message: str,
) -> None:
    if content is None:  # a valid v1.0.1 document stored under the wrong name
        _write_version(prompts_dir, "v1.0.1", "v1.0.0")
        (prompts_dir / "versions" / "v1.0.1.json").rename(prompts_dir / "versions" / file_name)
    else:
        (prompts_dir / "versions" / file_name).write_text(content, encoding="utf-8")
    with evolution_logs.at_level(logging.ERROR), pytest.raises(InvalidPromptVersion) as info:
        with TestClient(create_app(settings)):
            pass
    assert file_name in info.value.message_en
    assert message in info.value.message_en
    assert "cannot load prompt versions" in evolution_logs.text
    assert file_name in evolution_logs.text


def test_broken_file_loads_nothing(settings: EvolutionSettings, prompts_dir: Path) -> None:
    (prompts_dir / "versions" / "v1.0.1.json").write_text("{}", encoding="utf-8")
    with pytest.raises(InvalidPromptVersion), TestClient(create_app(settings)):
        pass
    # Had v1.0.0 been stored before the broken file stopped the load, it would be
    # active now and a start-up without any version files would succeed.
    for path in (prompts_dir / "versions").glob("*.json"):
        path.unlink()
    with pytest.raises(NoActiveVersion), TestClient(create_app(settings)):
        pass


def test_unknown_parent_fails_start_up(settings: EvolutionSettings, prompts_dir: Path) -> None:
    _write_version(prompts_dir, "v1.1.0", "v1.0.7")
    with pytest.raises(InvalidPromptVersion) as info, TestClient(create_app(settings)):
        pass
    assert "v1.0.7, which does not exist" in info.value.message_en


def test_no_baseline_and_nothing_active_fails_start_up(
    settings: EvolutionSettings, prompts_dir: Path
) -> None:
    (prompts_dir / "versions" / "v1.0.0.json").unlink()
    with pytest.raises(NoActiveVersion), TestClient(create_app(settings)):
        pass
