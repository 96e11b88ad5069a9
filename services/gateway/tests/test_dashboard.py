"""The status page's pieces with known answers: number formats, chart points, readable
parameters, the A/B probability (against the evolution service's own code) and the
optimizer's optional endpoints in the shape the gateway expects."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from services.gateway import charts, dashboard
from services.gateway.i18n import Translator

LOCALES = Path(__file__).resolve().parents[3] / "web" / "locales"


@pytest.fixture(params=["es", "en"])
def t(request: pytest.FixtureRequest) -> Translator:
    return Translator(LOCALES, request.param)


def test_numbers_follow_the_page_language() -> None:
    assert charts.format_number(0.28, "es", 2) == "0,28"
    assert charts.format_number(0.28, "en", 2) == "0.28"
    assert charts.format_number(1234.5, "es", 1) == "1234,5"  # RAE: no grouping at 4 digits
    assert charts.format_number(12345.5, "es", 1) == "12\u202f345,5"
    assert charts.format_number(12345.5, "en", 1) == "12,345.5"
    assert charts.format_number(None, "es") == "—"
    assert charts.format_percent(0.771, "es") == "77\u00a0%"
    assert charts.format_percent(0.771, "en") == "77%"


def test_moving_average_and_mean_interval_by_hand() -> None:
    assert charts.moving_average([1, 3, 5, 1], 2) == [1.0, 2.0, 4.0, 3.0]
    mean, low, high = charts.mean_interval([2.0, 4.0])
    # sd = sqrt(2) ≈ 1.414; half width = 1.96 · 1.414 / sqrt(2) = 1.96
    assert mean == 3.0 and low == pytest.approx(1.04) and high == pytest.approx(4.96)


def test_line_chart_draws_one_titled_point_per_value() -> None:
    svg = charts.line_chart(
        chart_id="c", title="Título", x_label="x", y_label="y", lang="es",
        series=[charts.Series("a", "A", [1, 2, 3], [1.5, 2.5, 3.5], "points"),
                charts.Series("b", "B", [1, 3], [2, 2], "line")],
        bands=[charts.Band("band", "90 %", [1, 3], [1, 2], [3, 4])],
        refs=[charts.RefLine(4.0, "objetivo")])
    assert svg.startswith('<svg class="chart" id="c"') and 'role="img"' in svg
    assert len(re.findall(r'<circle class="pt', svg)) == 3  # lines add no points
    assert "<title>A: 2, 2,5</title>" in svg  # Spanish decimal comma in tooltips
    assert "<polygon" in svg and "objetivo" in svg


def test_interval_chart_has_one_point_per_group() -> None:
    rows = [charts.Interval("local", 3.2, 2.8, 3.6, 10), charts.Interval("leonardo", 2.0, 1.0,
                                                                         3.0, 1)]
    svg = charts.interval_chart(chart_id="g", title="T", x_label="Estrellas", rows=rows,
                                lang="es", count_label="n = {n}")
    assert len(re.findall(r'data-series="mean"', svg)) == 2
    assert "n = 10" in svg and "3,20 (2,80–3,60)" in svg


def test_readable_parameters(t: Translator) -> None:
    params = {"api": "local", "strength": 0.28, "guidance_scale": 11.5,
              "controlnet_conditioning_scale": 0.72}
    readable = dashboard.readable_parameters(params, t)
    assert [p["level"] for p in readable] == ["mid", "high", "low"]
    if t.lang == "es":
        assert readable[0]["text"] == "intensidad media: 0,28"
        assert readable[1]["text"] == "guía del prompt alta: 11,5"
    else:
        assert readable[0]["text"] == "strength medium: 0.28"
    assert dashboard.readable_parameters(None, t) == []
    assert dashboard.readable_parameters({"api": "nope"}, t) == []


def test_ab_probability_matches_the_evolution_service() -> None:
    from services.evolution.ab_test import DecisionRule, p_better_batch

    rule = DecisionRule()
    diffs = [1.0, 0.0, 2.0, -1.0, 1.0, 1.0, 0.0, 3.0, -2.0, 1.0, 1.0, 0.0]
    ours = dashboard.ab_probabilities(diffs, {"prior_pairs": rule.prior_pairs,
                                              "prior_sd": rule.prior_sd,
                                              "prior_sd_weight": rule.prior_sd_weight})
    d = np.array(diffs)
    n = np.arange(1, len(d) + 1, dtype=float)
    theirs = p_better_batch(n, np.cumsum(d), np.cumsum(d * d), rule)
    assert ours == pytest.approx(theirs.tolist(), abs=1e-9)
    assert ours[-1] > 0.5


def test_optimizer_extras_in_the_expected_shape_become_charts(t: Translator) -> None:
    history = {"recommendations": [
        {"samples_seen": n, "provider": "local",
         "values": {"strength": s, "guidance": 7.0 + n / 10, "structure": 0.85},
         "predicted_rating": 3.0 + n / 20, "predicted_rating_interval": [2.5, 3.8 + n / 20]}
        for n, s in ((5, 0.4), (10, 0.3), (15, 0.28))]}
    moves = dashboard._recommendation_charts(history, t)
    assert [c.key for c in moves] == ["moves-strength", "moves-guidance", "moves-structure"]
    assert all(c.svg is not None and c.points == 3 for c in moves)
    grid = [0.1, 0.2, 0.3, 0.4, 0.5]
    pd = {"provider": "local", "dimensions": [
        {"name": "strength", "x": grid, "mean": [3.0, 3.5, 3.8, 3.4, 2.9],
         "lower": [2.5, 3.1, 3.4, 3.0, 2.3], "upper": [3.5, 3.9, 4.2, 3.8, 3.5]}]}
    pd_charts = dashboard._pd_charts(pd, t)
    assert len(pd_charts) == 1 and pd_charts[0].svg is not None
    assert "<polygon" in pd_charts[0].svg  # the uncertainty band
    assert ("0,30" if t.lang == "es" else "0.30") in pd_charts[0].summary  # best strength
    # The optimizer's own shapes (RecommendationHistoryResponse, PartialDependenceResponse).
    items = {"total": 2, "items": [
        {"created_at": "2026-11-30T10:00:00Z", "observations_seen": n, "observations_used": n,
         "parameters": {"api": "local", "strength": s, "guidance_scale": 8.0,
                        "controlnet_conditioning_scale": 0.9},
         "values": {"strength": s, "guidance": 8.0, "structure": 0.9},
         "predicted_rating": 3.5, "predicted_rating_interval": [3.0, 4.0]}
        for n, s in ((6, 0.3), (8, 0.25))]}
    assert [c.points for c in dashboard._recommendation_charts(items, t)] == [2, 2, 2]
    points = [{"value": v, "mean": m, "low": m - 0.4, "high": m + 0.4}
              for v, m in zip(grid, [3.0, 3.5, 3.8, 3.4, 2.9], strict=True)]
    curve = {"provider": "local", "native_name": "strength", "points": points}
    other = {**curve, "provider": "leonardo", "points": [{**p, "mean": 1.0} for p in points]}
    real_pd = {"available": True, "method": "average", "providers": ["leonardo", "local"],
               "parameters": [{"name": "strength", "label_es": "Intensidad",
                               "label_en": "Strength", "low": 0.1, "high": 0.5,
                               "curves": [other, curve]}]}
    chosen = dashboard._pd_charts(real_pd, t, "local")
    assert chosen[0].svg is not None and chosen[0].table_rows[2][1] == (
        "3,80" if t.lang == "es" else "3.80")  # the recommended provider's curve
    not_fitted = dashboard._pd_charts({**real_pd, "available": False}, t)
    assert not_fitted[0].svg is None and not_fitted[0].summary == t("insight.no_data")
    # An optimizer without the endpoints: "no data" said plainly, no chart.
    missing = dashboard._pd_charts(None, t) + dashboard._recommendation_charts(None, t)
    assert all(c.svg is None for c in missing)
    assert all(c.summary == t("insight.optimizer_lacks") for c in missing)


def test_every_insight_text_exists_in_both_languages() -> None:
    import json

    es = json.loads((LOCALES / "insight.es.json").read_text(encoding="utf-8"))
    en = json.loads((LOCALES / "insight.en.json").read_text(encoding="utf-8"))
    assert set(es) == set(en)
    templates = Path(__file__).resolve().parents[3] / "web" / "templates"
    used = set()
    for name in ("status.html", "history.html", "quality.html", "partials/chart.html"):
        used |= set(re.findall(r"t\('((?:insight|hist|quality)\.[a-z_.]+[a-z_])'",
                               (templates / name).read_text(encoding="utf-8")))
    assert used and used <= set(es), sorted(used - set(es))
