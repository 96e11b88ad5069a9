"""The status page's content: where learning stands, in words and charts.

Everything shown comes from ``/api/train/status`` (:func:`reports.training_status`,
so page and API cannot disagree) plus the gateway's own ratings and three optional
sources that degrade to "sin datos" when absent:

``GET {optimizer}/ml/recommendations?limit=N`` (how the recommendation moved; the
optimizer's ``RecommendationHistoryResponse``)::

    {"total": 30, "items": [
        {"created_at": "2026-11-30T10:00:00Z", "observations_seen": 12,
         "values": {"strength": 0.28, "guidance": 7.5, "structure": 0.85},
         "parameters": {"api": "local", ...},
         "predicted_rating": 3.9, "predicted_rating_interval": [3.4, 4.3], ...},
        ...]}                                     # oldest first

``GET {optimizer}/ml/partial_dependence?providers=local&points=25`` (each
parameter's effect on the predicted rating, the others averaged over the space;
``PartialDependenceResponse``)::

    {"available": true, "providers": ["local"],
     "parameters": [
        {"name": "strength", "label_es": "Intensidad", "label_en": "Strength",
         "low": 0.1, "high": 0.5,
         "curves": [{"provider": "local", "native_name": "strength",
                     "points": [{"value": 0.1, "mean": 3.1, "low": 2.6, "high": 3.6}, ...]}]},
        ...]}

An earlier draft shape (``{"recommendations": [... "samples_seen" ...]}`` and
``{"dimensions": [{"name", "x", "mean", "lower", "upper"}]}``) is still read.

``GET {evolution}/prompts/abtests`` (existing): the tests and the decision rule;
the probability over pairs is recomputed here from the gateway's own pairs with the
rule's prior (the same conjugate Student-t as ``services/evolution/ab_test.py``).
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from markupsafe import Markup
from scipy import stats
from sqlalchemy import select

from services.common.errors import ServiceUnavailable
from services.common.parameter_space import DIMENSIONS, from_native
from services.gateway import charts
from services.gateway.charts import Band, Interval, RefLine, Series, format_number
from services.gateway.context import Context
from services.gateway.i18n import Translator
from services.gateway.models import Experiment, Rating, Variant
from services.gateway.reports import training_status

log = logging.getLogger(__name__)

DIGITS = {"strength": 2, "guidance": 1, "structure": 2}


async def _optional(coro: Any, what: str) -> dict[str, Any] | None:
    """A sibling's answer, or None when it is down or lacks the endpoint."""
    try:
        return dict(await asyncio.wait_for(coro, 5.0))
    except httpx.HTTPStatusError as exc:
        log.info("status page: %s answered %s", what, exc.response.status_code)
    except (ServiceUnavailable, TimeoutError, OSError) as exc:
        log.info("status page: %s unavailable: %s", what, exc)
    except Exception:
        log.exception("status page: unexpected answer from %s", what)
    return None


def readable_parameters(parameters: dict[str, Any] | None, t: Translator
                        ) -> list[dict[str, Any]]:
    """Native parameters → ``[{"name", "label", "level", "value", "text"}]`` where text
    reads "intensidad media 0,28": the level is the third of the range it falls in."""
    if not parameters:
        return []
    try:
        _, values = from_native(parameters)
    except Exception:
        return []
    out = []
    for dim in DIMENSIONS:
        value = values[dim.name]
        third = (value - dim.low) / (dim.high - dim.low)
        level = "low" if third < 1 / 3 else "high" if third > 2 / 3 else "mid"
        label = dim.label_en if t.lang == "en" else dim.label_es
        number = format_number(value, t.lang, DIGITS[dim.name])
        out.append({"name": dim.name, "label": label, "level": level, "value": value,
                    "number": number,
                    "text": t("insight.param.text", label=label.lower(),
                              level=t(f"insight.level.{level}"), value=number)})
    return out


@dataclass
class Chart:
    """One chart with its text alternative (a table: header row + rows)."""

    key: str
    title: str
    svg: Markup | None
    summary: str
    table_head: list[str] = field(default_factory=list)
    table_rows: list[list[str]] = field(default_factory=list)
    points: int = 0


@dataclass
class StatusView:
    status: dict[str, Any]
    story: dict[str, Any]
    recommended: list[dict[str, Any]]
    providers: list[dict[str, Any]]
    ab: dict[str, Any] | None
    charts: list[Chart]
    pending_total: int
    rejected_total: int
    optimizer_extras: dict[str, bool]


def _story(status: dict[str, Any], t: Translator) -> dict[str, Any]:
    """One convergence story: the posterior's certainty that the recommendation is
    within ``tolerance`` stars of the best, in a stage a designer can read."""
    p1 = status["phase_1"]
    samples = p1["samples_collected"]
    conv = p1.get("posterior_convergence") or {}
    certainty = conv.get("probability_within")
    if samples == 0:
        stage = "empty"
    elif not status["services"].get("optimizer"):
        stage = "unknown"
    elif certainty is None:
        stage = "starting"
    elif certainty >= 0.9:
        stage = "converged"
    elif certainty >= 0.5:
        stage = "converging"
    else:
        stage = "exploring"
    return {
        "stage": stage,
        "certainty": certainty,
        "tolerance": conv.get("tolerance"),
        "expected_regret": conv.get("expected_regret"),
        "text": t(f"insight.story.{stage}", n=samples,
                  pct=charts.format_percent(certainty, t.lang) if certainty is not None else "",
                  tol=format_number(conv.get("tolerance"), t.lang, 1)),
    }


async def _ratings(ctx: Context) -> list[tuple[Rating, Variant, Experiment]]:
    async with ctx.sessions() as session:
        rows = (await session.execute(
            select(Rating, Variant, Experiment).join(Variant, Variant.id == Rating.variant_id)
            .join(Experiment, Experiment.id == Rating.experiment_id)
            .where(Rating.rating.is_not(None))  # "could not judge" has no stars
            .order_by(Rating.created_at, Rating.id))).all()
    return [(r, v, e) for r, v, e in rows]


async def _successful_images(ctx: Context) -> dict[str, int]:
    from sqlalchemy import func

    async with ctx.sessions() as session:
        rows = (await session.execute(
            select(Variant.provider, func.count(Variant.id))
            .where(Variant.status == "succeeded").group_by(Variant.provider))).all()
    return {p: int(n) for p, n in rows}


def ab_probabilities(diffs: list[float], rule: dict[str, Any]) -> list[float]:
    """P(challenger better) after each pair, by the evolution service's conjugate model."""
    k0 = float(rule.get("prior_pairs", 3.0))
    a0 = float(rule.get("prior_sd_weight", 2.0))
    s0 = float(rule.get("prior_sd", 1.0))
    out = []
    for n in range(1, len(diffs) + 1):
        d = diffs[:n]
        mean = sum(d) / n
        ss = sum((x - mean) ** 2 for x in d)
        k_n = k0 + n
        m_n = n * mean / k_n
        a_n = a0 + n / 2
        b_n = a0 * s0 * s0 + ss / 2 + k0 * n * mean * mean / (2 * k_n)
        scale = math.sqrt(b_n / (a_n * k_n))
        out.append(float(stats.t.cdf(m_n / scale, df=2 * a_n)))
    return out


def ab_pairs(rows: list[tuple[Rating, Variant, Experiment]], champion: str, challenger: str,
             since: datetime | None) -> list[float]:
    """rating(challenger) - rating(champion) per experiment with both rated, in order."""
    per_experiment: dict[str, dict[str, int]] = {}
    order: list[str] = []
    for rating, variant, experiment in rows:
        if since is not None and experiment.created_at < since:
            continue
        if experiment.repeat_of is not None:
            continue
        arm = ("challenger" if variant.prompt_version == challenger and
               variant.prompt_arm != "champion" else
               "champion" if variant.prompt_version == champion else None)
        if arm is None or rating.rating is None:
            continue
        slot = per_experiment.setdefault(experiment.id, {})
        slot[arm] = rating.rating
        if len(slot) == 2 and experiment.id not in order:
            order.append(experiment.id)
    return [float(per_experiment[e]["challenger"] - per_experiment[e]["champion"])
            for e in order]


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


async def build_status_view(ctx: Context, t: Translator) -> StatusView:
    enabled = sorted(ctx.providers)
    status_model, rows, successes, history, pd, abtests = await asyncio.gather(
        training_status(ctx), _ratings(ctx), _successful_images(ctx),
        _optional(ctx.clients.recommendation_history(), "optimizer recommendations"),
        _optional(ctx.clients.partial_dependence(enabled), "optimizer partial dependence"),
        _optional(ctx.clients.ab_tests(), "evolution A/B tests"))
    status = status_model.model_dump()
    lang = t.lang
    story = _story(status, t)
    recommended = readable_parameters(status.get("recommended_parameters"), t)

    posterior = status.get("provider_posterior") or {}
    seen = status.get("api_performance") or {}
    providers = []
    for name in sorted(set(enabled) | set(posterior) | set(seen)):
        post = posterior.get(name) or {}
        has_data = successes.get(name, 0) > 0
        providers.append({
            "name": name, "label": ctx.provider_label(name, lang), "enabled": name in enabled,
            "images": successes.get(name, 0), "has_data": has_data,
            "probability_best": post.get("probability_best") if has_data else None,
            "predicted_rating": post.get("predicted_rating") if has_data else None,
            "ratings": (seen.get(name) or {}).get("count", 0),
            "avg_rating": (seen.get(name) or {}).get("avg_rating"),
        })

    chart_list = [
        _rating_chart(rows, status, history, t),
        _group_chart("providers", [ctx.provider_label(v.provider, lang) for _, v, _ in rows],
                     [r.rating for r, _, _ in rows], t),
        _group_chart("versions", [v.prompt_version for _, v, _ in rows],
                     [r.rating for r, _, _ in rows], t),
        *_recommendation_charts(history, t),
        *_pd_charts(pd, t, (status.get("recommended_parameters") or {}).get("api")),
    ]
    ab = _ab_view(abtests, rows, t)
    if ab is not None and ab.get("chart") is not None:
        chart_list.append(ab["chart"])

    pending = status.get("pending_deliveries") or {}
    rejected = status.get("rejected_deliveries") or {}
    return StatusView(
        status=status, story=story, recommended=recommended, providers=providers, ab=ab,
        charts=chart_list, pending_total=sum(pending.values()),
        rejected_total=sum(rejected.values()) if isinstance(rejected, dict) else 0,
        optimizer_extras={"recommendations": history is not None, "partial_dependence":
                          pd is not None})


def recommendation_items(history: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The recommendation history's rows, oldest first, each with ``samples_seen``."""
    rows = (history or {}).get("items") or (history or {}).get("recommendations") or []
    out = []
    for index, row in enumerate(rows):
        seen = row.get("observations_seen", row.get("samples_seen", index + 1))
        out.append({**row, "samples_seen": seen})
    return out


def pd_dimensions(pd: dict[str, Any] | None, provider: str | None = None
                  ) -> list[dict[str, Any]]:
    """Partial dependence as ``[{"name", "x", "mean", "lower", "upper", "provider"}]``:
    per parameter, the curve of ``provider`` (the recommended one) or the first."""
    if not pd:
        return []
    if "parameters" not in pd:
        return list(pd.get("dimensions") or [])
    if not pd.get("available", True):
        return []
    out = []
    for parameter in pd.get("parameters") or []:
        curves = parameter.get("curves") or []
        curve = next((c for c in curves if c.get("provider") == provider),
                     curves[0] if curves else None)
        if curve is None:
            continue
        points = curve.get("points") or []
        out.append({"name": parameter.get("name"), "provider": curve.get("provider"),
                    "x": [p["value"] for p in points], "mean": [p["mean"] for p in points],
                    "lower": [p["low"] for p in points], "upper": [p["high"] for p in points]})
    return out


def _rating_chart(rows: list[tuple[Rating, Variant, Experiment]], status: dict[str, Any],
                  history: dict[str, Any] | None, t: Translator) -> Chart:
    lang = t.lang
    rows = [row for row in rows if row[0].rating is not None]  # not "could not judge"
    ratings = [float(r.rating) for r, _, _ in rows if r.rating is not None]
    xs = list(range(1, len(ratings) + 1))
    title = t("insight.chart.ratings.title")
    if not ratings:
        return Chart("ratings", title, None, t("insight.no_data"))
    average = charts.moving_average(ratings, 10)
    labels = [t("insight.chart.ratings.point", n=i, rating=int(v),
                provider=variant.provider, version=variant.prompt_version)
              for i, (v, (_, variant, _)) in enumerate(zip(ratings, rows, strict=True), 1)]
    series = [Series("ratings", t("insight.chart.ratings.series"), xs, ratings, "points",
                     labels),
              Series("average", t("insight.chart.ratings.average"), xs, average, "line")]
    bands: list[Band] = []
    refs: list[RefLine] = []
    recs = [r for r in recommendation_items(history) if r.get("predicted_rating") is not None]
    if recs:
        rx = [float(r.get("samples_seen", i + 1)) for i, r in enumerate(recs)]
        series.append(Series("predicted", t("insight.chart.ratings.predicted"), rx,
                             [float(r["predicted_rating"]) for r in recs], "line"))
        intervals: list[Any] = [r.get("predicted_rating_interval") for r in recs]
        if all(isinstance(i, list | tuple) and len(i) == 2 for i in intervals):
            bands.append(Band("predicted", t("insight.chart.band90"), rx,
                              [float(i[0]) for i in intervals],
                              [float(i[1]) for i in intervals]))
    elif status["phase_1"].get("predicted_rating") is not None:
        refs.append(RefLine(float(status["phase_1"]["predicted_rating"]),
                            t("insight.chart.ratings.predicted_now", value=format_number(
                                status["phase_1"]["predicted_rating"], lang, 1))))
    svg = charts.line_chart(chart_id="chart-ratings", title=title,
                            x_label=t("insight.chart.ratings.x"), y_label=t("insight.stars"),
                            series=series, bands=bands, refs=refs, y_range=(1, 5),
                            x_range=(1, max(len(ratings), 2)), lang=lang)
    summary = t("insight.chart.ratings.summary", n=len(ratings),
                first=format_number(sum(ratings[:10]) / len(ratings[:10]), lang, 1),
                last=format_number(average[-1], lang, 1))
    table = [[str(i), str(int(v)), format_number(a, lang, 2)]
             for i, v, a in zip(xs, ratings, average, strict=True)]
    return Chart("ratings", title, svg, summary,
                 [t("insight.chart.ratings.x"), t("insight.stars"),
                  t("insight.chart.ratings.average")], table, points=len(ratings))


def _group_chart(key: str, groups: list[str], values: list[int], t: Translator) -> Chart:
    lang = t.lang
    title = t(f"insight.chart.{key}.title")
    by: dict[str, list[float]] = {}
    for g, v in zip(groups, values, strict=True):
        by.setdefault(g, []).append(float(v))
    if not by:
        return Chart(key, title, None, t("insight.no_data"))
    rows = []
    table = []
    for name, vals in sorted(by.items(), key=lambda kv: -sum(kv[1]) / len(kv[1])):
        mean, low, high = charts.mean_interval(vals)
        rows.append(Interval(name, mean, low, high, len(vals)))
        table.append([name, format_number(mean, lang, 2),
                      f"{format_number(max(low, 1), lang, 2)} – "
                      f"{format_number(min(high, 5), lang, 2)}", str(len(vals))])
    svg = charts.interval_chart(chart_id=f"chart-{key}", title=title,
                                x_label=t("insight.stars"), rows=rows, lang=lang,
                                count_label=t("insight.count"))
    best = rows[0]
    summary = t(f"insight.chart.{key}.summary", best=best.label,
                mean=format_number(best.mean, lang, 1), n=best.count, groups=len(rows))
    return Chart(key, title, svg, summary,
                 [t(f"insight.chart.{key}.group"), t("insight.mean"), t("insight.interval95"),
                  t("insight.ratings")], table, points=len(rows))


def _recommendation_charts(history: dict[str, Any] | None, t: Translator) -> list[Chart]:
    title = t("insight.chart.moves.title")
    recs = recommendation_items(history)
    if not recs:
        reason = "insight.optimizer_lacks" if history is None else "insight.no_data"
        return [Chart("moves", title, None, t(reason))]
    out = []
    for dim in DIMENSIONS:
        xs, ys = [], []
        for i, r in enumerate(recs):
            value = (r.get("values") or {}).get(dim.name)
            if value is None and r.get("parameters"):
                try:
                    value = from_native(r["parameters"])[1][dim.name]
                except Exception:
                    value = None
            if value is not None:
                xs.append(float(r.get("samples_seen", i + 1)))
                ys.append(float(value))
        label = dim.label_en if t.lang == "en" else dim.label_es
        if not xs:
            continue
        svg = charts.line_chart(
            chart_id=f"chart-moves-{dim.name}", title=f"{title}: {label}",
            x_label=t("insight.chart.ratings.x"), y_label=label,
            series=[Series(f"move-{dim.name}", label, xs, ys, "line+points")],
            y_range=(dim.low, dim.high), lang=t.lang, y_digits=DIGITS[dim.name], height=200)
        out.append(Chart(f"moves-{dim.name}", f"{title}: {label}", svg,
                         t("insight.chart.moves.summary", label=label.lower(),
                           first=format_number(ys[0], t.lang, DIGITS[dim.name]),
                           last=format_number(ys[-1], t.lang, DIGITS[dim.name]), n=len(xs)),
                         [t("insight.chart.ratings.x"), label],
                         [[format_number(x, t.lang, 0), format_number(y, t.lang,
                                                                      DIGITS[dim.name])]
                          for x, y in zip(xs, ys, strict=True)], points=len(xs)))
    return out or [Chart("moves", title, None, t("insight.no_data"))]


def _pd_charts(pd: dict[str, Any] | None, t: Translator, provider: str | None = None
               ) -> list[Chart]:
    title = t("insight.chart.pd.title")
    dims = pd_dimensions(pd, provider)
    if not dims:
        reason = "insight.optimizer_lacks" if pd is None else "insight.no_data"
        return [Chart("pd", title, None, t(reason))]
    known = {d.name: d for d in DIMENSIONS}
    out = []
    for entry in dims:
        dim = known.get(str(entry.get("name")))
        xs = [float(v) for v in entry.get("x") or []]
        mean = [float(v) for v in entry.get("mean") or []]
        lower = [float(v) for v in entry.get("lower") or entry.get("low") or []]
        upper = [float(v) for v in entry.get("upper") or entry.get("high") or []]
        if dim is None or not xs or len(mean) != len(xs):
            continue
        label = dim.label_en if t.lang == "en" else dim.label_es
        bands = ([Band(f"pd-{dim.name}", t("insight.chart.band90"), xs, lower, upper)]
                 if len(lower) == len(xs) == len(upper) else [])
        svg = charts.line_chart(
            chart_id=f"chart-pd-{dim.name}", title=f"{title}: {label}", x_label=label,
            y_label=t("insight.chart.pd.y"),
            series=[Series(f"pd-{dim.name}", t("insight.chart.pd.series"), xs, mean, "line")],
            bands=bands, x_range=(dim.low, dim.high), lang=t.lang,
            x_digits=DIGITS[dim.name], y_digits=1, height=200)
        best = max(range(len(xs)), key=lambda i: mean[i])
        out.append(Chart(
            f"pd-{dim.name}", f"{title}: {label}", svg,
            t("insight.chart.pd.summary", label=label.lower(),
              best=format_number(xs[best], t.lang, DIGITS[dim.name]),
              rating=format_number(mean[best], t.lang, 1),
              spread=format_number(max(mean) - min(mean), t.lang, 1)),
            [label, t("insight.chart.pd.y"), t("insight.interval90")],
            [[format_number(x, t.lang, DIGITS[dim.name]), format_number(m, t.lang, 2),
              (f"{format_number(lower[i], t.lang, 2)} – {format_number(upper[i], t.lang, 2)}"
               if bands else "—")]
             for i, (x, m) in enumerate(zip(xs, mean, strict=True))]))
    return out or [Chart("pd", title, None, t("insight.no_data"))]


def _ab_view(abtests: dict[str, Any] | None, rows: list[tuple[Rating, Variant, Experiment]],
             t: Translator) -> dict[str, Any] | None:
    if abtests is None:
        return None
    tests = abtests.get("tests") or []
    rule = abtests.get("rule") or {}
    test = next((x for x in tests if x.get("status") == "running"), tests[0] if tests else None)
    if test is None:
        return {"test": None, "rule": rule, "chart": None,
                "text": t("insight.ab.none")}
    diffs = ab_pairs(rows, test["champion"], test["challenger"],
                     _parse_time(test.get("started_at")))
    probs = ab_probabilities(diffs, rule)
    lang = t.lang
    promote = float(rule.get("promote_probability", 0.95))
    rollback = float(rule.get("rollback_probability", 0.90))
    looks = rule.get("looks") or []
    next_look = next((n for n in looks if n > len(diffs)), rule.get("max_pairs"))
    p_now = probs[-1] if probs else test.get("p_better")
    running = test.get("status") == "running"
    losing = running and p_now is not None and p_now < 0.5
    key = "running_losing" if losing else "running" if running else "done"
    shown = (1 - p_now) if losing and p_now is not None else p_now
    text = t("insight.ab.text." + key,
             challenger=test["challenger"], champion=test["champion"],
             pct=charts.format_percent(shown, lang) if shown is not None else "—",
             pairs=len(diffs), look=next_look or "—",
             status=t("insight.ab.status." + str(test.get("status"))))
    title = t("insight.chart.ab.title", challenger=test["challenger"],
              champion=test["champion"])
    chart: Chart | None
    if probs:
        xs = list(range(1, len(probs) + 1))
        svg = charts.line_chart(
            chart_id="chart-ab", title=title, x_label=t("insight.chart.ab.x"),
            y_label=t("insight.chart.ab.y"),
            series=[Series("ab", t("insight.chart.ab.y"), xs, probs, "line+points")],
            refs=[RefLine(promote, t("insight.chart.ab.promote",
                                     pct=charts.format_percent(promote, lang))),
                  RefLine(1 - rollback, t("insight.chart.ab.rollback",
                                          pct=charts.format_percent(1 - rollback, lang)))],
            y_range=(0, 1), x_range=(1, max(len(xs), int(rule.get("max_pairs", 20)))),
            lang=lang, y_digits=2)
        chart = Chart("ab", title, svg, text, [t("insight.chart.ab.x"), t("insight.chart.ab.y"),
                                              t("insight.chart.ab.diff")],
                      [[str(x), charts.format_percent(p, lang), format_number(d, lang, 0)]
                       for x, p, d in zip(xs, probs, diffs, strict=True)], points=len(probs))
    else:
        chart = Chart("ab", title, None, t("insight.ab.no_pairs"))
    return {"test": test, "rule": rule, "chart": chart, "text": text, "pairs": len(diffs),
            "p_better": p_now}


def history_chart(ratings: list[tuple[int, str, str]], t: Translator) -> Chart:
    """The filtered ratings in the order given, with their moving average; ``ratings``
    holds (stars, provider, prompt version) per rating."""
    lang = t.lang
    title = t("insight.chart.filtered.title")
    if not ratings:
        return Chart("filtered", title, None, t("insight.no_data"))
    values = [float(r) for r, _, _ in ratings]
    xs = list(range(1, len(values) + 1))
    average = charts.moving_average(values, 10)
    labels = [t("insight.chart.ratings.point", n=i, rating=r, provider=p, version=v)
              for i, (r, p, v) in enumerate(ratings, 1)]
    svg = charts.line_chart(
        chart_id="chart-filtered", title=title, x_label=t("insight.chart.ratings.x"),
        y_label=t("insight.stars"),
        series=[Series("ratings", t("insight.chart.ratings.series"), xs, values, "points",
                       labels),
                Series("average", t("insight.chart.ratings.average"), xs, average, "line")],
        y_range=(1, 5), x_range=(1, max(len(values), 2)), lang=lang)
    summary = t("insight.chart.filtered.summary", n=len(values),
                mean=format_number(sum(values) / len(values), lang, 2),
                last=format_number(average[-1], lang, 1))
    return Chart("filtered", title, svg, summary,
                 [t("insight.chart.ratings.x"), t("insight.stars"),
                  t("insight.chart.ratings.average")],
                 [[str(i), str(int(v)), format_number(a, lang, 2)]
                  for i, v, a in zip(xs, values, average, strict=True)], points=len(values))
