"""Evolution, paired A/B tests, monitoring, manual promotion/rollback and exports over
HTTP, on SQLite and PostgreSQL. Background work runs inside the TestClient call, so
each request returns after the A/B review and any evolution it triggered."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.common.settings import REPO_ROOT
from services.evolution.llm_fake import GOOD_TERMS, FakeLLMServer
from services.evolution.main import create_app
from services.evolution.settings import EvolutionSettings

_counter = iter(range(10**9))


def _result(version: str, rating: int, experiment: str, option: str = "A",
            comments: str | None = None, mode: str = "structure") -> dict[str, Any]:
    return {"rating_id": f"r{next(_counter)}", "experiment_id": experiment, "option": option,
            "version": version, "mode": mode, "rating": rating, "comments": comments,
            "rater": "trainer-1"}


def _post(client: TestClient, results: list[dict[str, Any]]) -> None:
    response = client.post("/prompts/results", json={"results": results})
    assert response.status_code == 200, response.text


def _evolve_by_ratings(client: TestClient, comment: str = "se ve plano, sin profundidad") -> str:
    """Ten low ratings on the champion: the periodic trigger creates a challenger."""
    champion = client.get("/prompts/current").json()["version"]
    _post(client, [_result(champion, 2, f"seed-{i}", "AB"[i % 2], comment) for i in range(10)])
    test = client.get("/prompts/status").json()["ab_test"]
    assert test is not None and test["champion"] == champion
    return str(test["challenger"])


def _play_pairs(client: TestClient, n: int, challenger_rating: int, champion_rating: int,
                prefix: str) -> None:
    """``n`` experiments assigned during the test, both options rated, one request each."""
    for i in range(n):
        experiment = f"{prefix}-{i}"
        assigned = client.post("/prompts/assign", json={
            "experiment_id": experiment, "mode": "structure", "options": ["A", "B"]}).json()
        _post(client, [
            _result(a["version"], challenger_rating if a["arm"] == "challenger"
                    else champion_rating, experiment, a["option"])
            for a in assigned["assignments"]
        ])


def test_ten_ratings_evolve_a_challenger_offline_and_export_it(
    client: TestClient, settings: EvolutionSettings
) -> None:
    challenger = _evolve_by_ratings(client)
    assert challenger == "v1.0.1"
    detail = client.get("/prompts/versions/v1.0.1").json()
    assert (detail["status"], detail["parent_version"], detail["created_by"]) == (
        "candidate", "v1.0.0", "offline")
    document = detail["document"]
    assert document["changes"] and all(
        c.startswith(("structure", "surfaces")) for c in document["changes"])
    assert any("flat / no depth" in c for c in document["changes"])
    assert "flat / no depth" in detail["reasoning"]
    base = client.get("/prompts/versions/v1.0.0").json()["document"]
    new_pair = document["providers"]["leonardo"]["modes"]["structure"]
    assert new_pair != base["providers"]["leonardo"]["modes"]["structure"]
    # surfaces had no ratings: still evolved (generic realism), and providers stay in step
    assert document["providers"]["stablediffusion"]["modes"] == \
        document["providers"]["leonardo"]["modes"]

    runs = client.get("/prompts/runs").json()["runs"]
    assert [(r["trigger"], r["status"], r["version"], r["engine"]) for r in runs] == [
        ("periodic", "created", "v1.0.1", "offline")]
    audit = client.get("/prompts/audit").json()["entries"]
    assert [(e["action"], e["version"], e["actor"]) for e in audit] == [
        ("evolve", "v1.0.1", "system")]

    exported = settings.exports_to / "versions"
    assert json.loads((exported / "v1.0.1.json").read_text()) == document
    pointer = json.loads((exported / "current.json").read_text())
    assert pointer["current"] == "v1.0.0"
    assert pointer["statuses"] == {"v1.0.0": "active", "v1.0.1": "candidate"}
    # the seed folder is never written to
    assert sorted(p.name for p in (settings.prompts_dir / "versions").iterdir()) == [
        "v1.0.0.json"]

    # during the test each experiment is a pair: one option per arm, stable per experiment
    seen = set()
    for i in range(20):
        body = {"experiment_id": f"e{i}", "mode": "structure", "options": ["A", "B"]}
        assigned = client.post("/prompts/assign", json=body).json()["assignments"]
        arms = {a["arm"]: a for a in assigned}
        assert set(arms) == {"champion", "challenger"}
        assert arms["challenger"]["version"] == "v1.0.1"
        assert arms["challenger"]["prompts"]["local"] == new_pair
        seen.add(arms["challenger"]["option"])
        assert client.post("/prompts/assign", json=body).json()["assignments"] == assigned
    assert seen == {"A", "B"}


def test_a_better_challenger_is_promoted_then_monitored(client: TestClient) -> None:
    challenger = _evolve_by_ratings(client)
    _play_pairs(client, 14, 4, 3, "p")
    status = client.get("/prompts/status").json()
    assert status["ab_test"]["n_pairs"] == 14 and status["current_version"] == "v1.0.0"
    assert status["ab_test"]["p_better"] > 0.95  # convincing, but 15 pairs is the first look
    manual = client.post("/prompts/evolve", json={"actor": "ana"})
    assert manual.status_code == 409 and "prueba A/B" in manual.json()["detail"]
    _play_pairs(client, 1, 5, 3, "p-last")
    status = client.get("/prompts/status").json()
    assert status["current_version"] == challenger and status["ab_test"] is None
    assert status["monitor"]["monitor_status"] == "watching"
    test = client.get("/prompts/abtests").json()["tests"][0]
    assert (test["status"], test["n_pairs"]) == ("promoted", 15)
    assert test["p_better"] >= 0.95 and test["mean_diff"] == pytest.approx(16 / 15, abs=1e-3)
    audit = client.get("/prompts/audit").json()["entries"][0]
    assert (audit["action"], audit["from_version"], audit["to_version"]) == (
        "ab_promote", "v1.0.0", challenger)
    assert client.get("/prompts/versions/v1.0.0").json()["status"] == "retired"
    # the new champion holds up: ratings like the old reference end the monitoring
    _post(client, [_result(challenger, 4, f"m{i}", "AB"[i % 2]) for i in range(20)])
    status = client.get("/prompts/status").json()
    assert status["monitor"] is None and status["current_version"] == challenger
    actions = [e["action"] for e in client.get("/prompts/audit").json()["entries"]]
    assert "monitor_passed" in actions and "auto_rollback" not in actions


def test_a_worse_challenger_is_rolled_back(client: TestClient) -> None:
    challenger = _evolve_by_ratings(client)
    _play_pairs(client, 10, 2, 4, "w")
    assert client.get("/prompts/current").json()["version"] == "v1.0.0"
    assert client.get(f"/prompts/versions/{challenger}").json()["status"] == "retired"
    tests = client.get("/prompts/abtests").json()["tests"]
    decided = next(t for t in tests if t["challenger"] == challenger)
    assert decided["status"] == "rolled_back" and decided["p_worse"] >= 0.9
    actions = [e["action"] for e in client.get("/prompts/audit").json()["entries"]]
    assert "ab_rollback" in actions


def test_a_promoted_version_that_degrades_is_rolled_back_automatically(client: TestClient
                                                                       ) -> None:
    challenger = _evolve_by_ratings(client)
    _play_pairs(client, 15, 5, 3, "g")
    assert client.get("/prompts/current").json()["version"] == challenger
    _post(client, [_result(challenger, 1, f"bad{i}", "AB"[i % 2]) for i in range(10)])
    assert client.get("/prompts/current").json()["version"] == "v1.0.0"
    entry = next(e for e in client.get("/prompts/audit").json()["entries"]
                 if e["action"] == "auto_rollback")
    assert (entry["from_version"], entry["to_version"], entry["actor"]) == (
        challenger, "v1.0.0", "system")
    assert entry["details"]["p_degraded"] >= 0.95
    tests = client.get("/prompts/abtests").json()["tests"]
    assert next(t for t in tests if t["challenger"] == challenger)["monitor_status"] == \
        "rolled_back"


def test_manual_evolve_promote_and_rollback_are_audited(client: TestClient) -> None:
    response = client.post("/prompts/evolve", json={"actor": "ana", "reason": "probar"})
    assert response.status_code == 202, response.text
    run = client.get(f"/prompts/runs/{response.json()['id']}").json()
    assert (run["trigger"], run["status"], run["actor"], run["version"]) == (
        "manual", "created", "ana", "v1.0.1")
    bad = client.post("/prompts/v1.0.1/promote", json={"actor": "ana", "reason": ""})
    assert bad.status_code == 422
    promoted = client.post("/prompts/v1.0.1/promote",
                           json={"actor": "ana", "reason": "se ve mejor a ojo"})
    assert promoted.json() == {"action": "promote", "active": "v1.0.1",
                               "previous": "v1.0.0", "audit_id": promoted.json()["audit_id"]}
    assert client.get("/prompts/abtests").json()["tests"][0]["status"] == "stopped"
    again = client.post("/prompts/v1.0.1/promote", json={"actor": "ana", "reason": "otra vez"})
    assert again.status_code == 409
    back = client.post("/prompts/v1.0.1/rollback",
                       json={"actor": "luis", "reason": "peor en producción"})
    assert back.status_code == 200, back.text
    assert back.json()["active"] == "v1.0.0"
    base = client.post("/prompts/v1.0.0/rollback", json={"actor": "luis", "reason": "nada"})
    assert base.status_code == 409 and "anterior" in base.json()["detail"]
    entries = client.get("/prompts/audit").json()["entries"]
    assert [(e["action"], e["actor"], e["reason"]) for e in entries[:3]] == [
        ("rollback", "luis", "peor en producción"),
        ("promote", "ana", "se ve mejor a ojo"),
        ("evolve", "ana", "probar"),
    ]
    assert client.post("/prompts/v9.9.9/promote",
                       json={"actor": "a", "reason": "xyz"}).status_code == 404


def test_rolling_back_a_challenger_ends_its_test(client: TestClient) -> None:
    challenger = _evolve_by_ratings(client)
    response = client.post(f"/prompts/{challenger}/rollback",
                           json={"actor": "ana", "reason": "rompe la estructura"})
    assert response.status_code == 200
    assert client.get("/prompts/status").json()["ab_test"] is None
    assert client.get(f"/prompts/versions/{challenger}").json()["status"] == "retired"


def test_review_endpoints_issues_ratings_lineage_and_diff(client: TestClient) -> None:
    _post(client, [_result("v1.0.0", 2, "x1", "A", "plano"),
                   _result("v1.0.0", 4, "x1", "B", "buena luz pero sin sombras")])
    issues = client.get("/prompts/issues").json()
    counts = {i["key"]: i["count"] for i in issues["issues"]}
    assert counts["flat"] == 1 and counts["shadows"] == 1 and issues["version"] == "v1.0.0"
    ratings = client.get("/prompts/versions/v1.0.0/ratings").json()
    assert ratings["histogram"] == {"1": 0, "2": 1, "3": 0, "4": 1, "5": 0}
    assert ratings["by_mode"] == {"structure": {"sample_count": 2, "avg_rating": 3.0}}
    assert sorted(r["comments"] for r in ratings["recent"]) == [
        "buena luz pero sin sombras", "plano"]
    challenger = _evolve_by_ratings(client)
    lineage = client.get("/prompts/lineage").json()["versions"]
    assert [(v["version"], v["parent_version"]) for v in lineage] == [
        ("v1.0.0", None), (challenger, "v1.0.0")]
    assert lineage[1]["changes"] and lineage[1]["reasoning"]
    diff = client.get("/prompts/diff", params={"from": "v1.0.0", "to": challenger}).json()
    assert diff["changed"] is True
    structure = next(e for e in diff["entries"] if e["provider"] == "leonardo"
                     and e["mode"] == "structure" and e["field"] == "prompt")
    assert structure["added"] or structure["moved"]
    assert client.get("/prompts/diff", params={"from": "v1.0.0", "to": "v7.0.0"}
                      ).status_code == 404


@pytest.fixture
def llm_client(database_url: str, prompts_dir: Path) -> Iterator[tuple[TestClient,
                                                                      FakeLLMServer]]:
    server = FakeLLMServer(["invalid_json", "good"])
    settings = EvolutionSettings(database_url=database_url, prompts_dir=prompts_dir,
                                 export_dir=prompts_dir.parent / "export",
                                 data_dir=prompts_dir.parent / "data", engine="auto",
                                 llm_api_key="test", llm_base_url=server.base_url,
                                 llm_model="fake", llm_timeout_seconds=5)
    auth = {"Authorization": f"Bearer {settings.service_token}"}
    with server.running(), TestClient(create_app(settings), headers=auth) as client:
        yield client, server


def test_llm_evolution_end_to_end(llm_client: tuple[TestClient, FakeLLMServer]) -> None:
    client, server = llm_client
    assert client.get("/prompts/status").json()["evolution_engine"] == "llm"
    response = client.post("/prompts/evolve", json={"actor": "ana"})
    run = client.get(f"/prompts/runs/{response.json()['id']}").json()
    assert run["status"] == "created" and run["engine"] == "llm", run
    detail = client.get(f"/prompts/versions/{run['version']}").json()
    assert detail["created_by"] == "llm"
    assert detail["document"]["providers"]["leonardo"]["modes"]["surfaces"]["prompt"].endswith(
        GOOD_TERMS)
    # one rejected answer, then one good answer per mode
    assert len(server.requests) == 3
    assert any("not JSON" in note for note in run["details"]["notes"])


def test_repository_prompts_folder_holds_only_seed_files() -> None:
    names = sorted(p.name for p in (REPO_ROOT / "prompts" / "versions").iterdir())
    assert names == ["v1.0.0.json"]
