"""The Prometheus alert rules in infra/prometheus/ parse, are complete, and name only
metrics the services really export (collected from the registry the code fills) or
series Prometheus writes itself, with job names the scrape configuration defines.

There is no promtool on the development machine, so PromQL is not evaluated here;
what can silently break (a renamed metric, a job renamed in the scrape config, a
rule without severity) is checked.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import services.common.metrics  # noqa: F401  (defines every metric in the registry)

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_DIR = ROOT / "infra" / "prometheus"
WRITTEN_BY_PROMETHEUS = {"up"}
"""Series Prometheus records for every scrape target (not exported by the code)."""
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
            "group_right", "offset", "bool", "inf", "nan"}
SEED_004_ALERTS = {"ModelPerformanceDegradation", "LowDataCollectionRate", "MLServiceDown"}
SERVICES = ("gateway", "optimizer", "evolution", "reward")
SUFFIXES = {"counter": ("_total", "_created"), "gauge": (),
            "histogram": ("_bucket", "_sum", "_count", "_created"),
            "summary": ("_sum", "_count", "_created"), "info": ("_info",)}
DURATION = re.compile(r"^\d+(ms|s|m|h|d|w|y)$")


def exported_series() -> set[str]:
    """Every series name the process's registry can expose, labelled or not."""
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ()))
        names.update(sample.name for sample in family.samples)
    return names


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (functions, keywords, labels removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\boffset\s+\w+", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        if text[match.end():].lstrip().startswith("(") or match.group() in KEYWORDS:
            continue
        names.add(match.group())
    return names


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def scrape_jobs() -> set[str]:
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    assert "alerts.yml" in config["rule_files"]
    return {job["job_name"] for job in config["scrape_configs"]}


def test_the_extractor_finds_metrics_and_skips_functions() -> None:
    expr = ('sum by (target) (rate(a_total{status=~"5.."}[5m] offset 1d)) / '
            "on() b_count > 0 and up == 1 or vector(0)")
    assert metric_names(expr) == {"a_total", "b_count", "up"}


def test_rules_are_complete_and_cover_seed_004_and_the_outbox() -> None:
    seen = set()
    for rule in rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert rule["labels"]["severity"] in {"critical", "high", "medium", "warning"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert "for" not in rule or DURATION.match(rule["for"])
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]
        seen.add(rule["alert"])
    assert len(seen) == len(rules())
    assert SEED_004_ALERTS <= seen
    assert any(name.startswith("Outbox") for name in seen)


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule["alert"])
def test_every_expression_names_exported_metrics(rule: dict[str, Any]) -> None:
    names = metric_names(rule["expr"])
    assert names, f"{rule['alert']} selects no metric"
    unknown = names - exported_series() - WRITTEN_BY_PROMETHEUS
    assert not unknown, f"{rule['alert']} names metrics no service exports: {sorted(unknown)}"


def test_job_selectors_match_the_scrape_configuration() -> None:
    jobs = scrape_jobs()
    assert jobs == {f"afinador-{service}" for service in SERVICES}
    covered: dict[str, set[str]] = {}
    for rule in rules():
        for pattern in re.findall(r'job=~"([^"]+)"', rule["expr"]):
            selected = {job for job in jobs if re.fullmatch(pattern, job)}
            assert selected, f"{rule['alert']}: {pattern!r} selects no scrape job"
            covered[rule["alert"]] = selected
    assert covered["ServiceDown"] == jobs
    assert covered["MLServiceDown"] == {"afinador-optimizer", "afinador-evolution",
                                        "afinador-reward"}
