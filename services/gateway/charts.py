"""Charts drawn on the server as accessible SVG (no JavaScript, nothing inline to run).

Why server-side SVG rather than a chart library in the browser: the pages are
server-rendered HTMX, the content security policy forbids inline script, every
figure must also exist as text (a table beside the chart), and numbers must be
written in the page's locale (``0,28`` in Spanish). Drawing the few chart kinds
the studio needs here keeps one source of truth for the numbers, works without
JavaScript and lets the browser tests count the drawn points.

Two kinds:

* :func:`line_chart`: numeric x, numeric y; series drawn as points, lines or both,
  optional shaded bands (uncertainty) and horizontal reference lines (targets).
* :func:`interval_chart`: one row per category with the mean as a dot, its
  interval as a whisker and the count written beside it.

Every data point is a ``<circle class="pt" data-series="…">`` with a ``<title>``
(the tooltip and the accessible name), so tests can compare the number of
points with the API's count. The SVG has ``role="img"`` and an ``aria-label``;
the caller puts a table with the same numbers next to it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape

from markupsafe import Markup

WIDTH = 640
HEIGHT = 260
MARGIN_LEFT = 56
MARGIN_RIGHT = 16
MARGIN_TOP = 34
MARGIN_BOTTOM = 42

Formatter = Callable[[float], str]


def format_number(value: float | None, lang: str, digits: int = 1) -> str:
    """``0.28`` → ``"0,28"`` in Spanish, ``"0.28"`` in English; thousands grouped."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    text = f"{value:,.{digits}f}"
    if lang == "es":
        # Spanish: decimal comma; a thin no-break space groups thousands from 10 000 on
        # (RAE), and four-digit numbers stay ungrouped.
        integer = abs(value) >= 10_000
        text = text.replace(",", "\u202f" if integer else "").replace(".", ",")
    return text


def format_percent(value: float | None, lang: str, digits: int = 0) -> str:
    if value is None:
        return "—"
    number = format_number(value * 100, lang, digits)
    return f"{number}\u00a0%" if lang == "es" else f"{number}%"


@dataclass(frozen=True)
class Series:
    """Points ``(x, y)`` drawn as ``kind``; ``labels`` are the points' tooltips."""

    key: str
    label: str
    xs: Sequence[float]
    ys: Sequence[float]
    kind: str = "points"  # points | line | line+points
    labels: Sequence[str] = ()


@dataclass(frozen=True)
class Band:
    key: str
    label: str
    xs: Sequence[float]
    lows: Sequence[float]
    highs: Sequence[float]


@dataclass(frozen=True)
class RefLine:
    y: float
    label: str


@dataclass(frozen=True)
class Interval:
    label: str
    mean: float
    low: float
    high: float
    count: int
    note: str = ""


@dataclass
class Axes:
    x_min: float
    x_max: float
    y_min: float
    y_max: float
    width: int = WIDTH
    height: int = HEIGHT
    left: int = MARGIN_LEFT
    plot: tuple[float, float, float, float] = field(init=False)

    def __post_init__(self) -> None:
        if self.x_max <= self.x_min:
            self.x_max = self.x_min + 1
        if self.y_max <= self.y_min:
            self.y_max = self.y_min + 1
        self.plot = (self.left, MARGIN_TOP, self.width - MARGIN_RIGHT,
                     self.height - MARGIN_BOTTOM)

    def x(self, value: float) -> float:
        x0, _, x1, _ = self.plot
        return x0 + (value - self.x_min) / (self.x_max - self.x_min) * (x1 - x0)

    def y(self, value: float) -> float:
        _, y0, _, y1 = self.plot
        return y1 - (value - self.y_min) / (self.y_max - self.y_min) * (y1 - y0)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering [low, high]."""
    if high <= low:
        return [low]
    raw = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step - 1e-9) * step
    ticks = []
    value = first
    while value <= high + step * 1e-6:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _f(value: float) -> str:
    return f"{value:.1f}"


def _open(title: str, chart_id: str, width: int, height: int) -> list[str]:
    return [
        f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}" preserveAspectRatio="xMidYMid meet" '
        f'xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]


def _legend(items: Sequence[tuple[str, str, str]], axes: Axes) -> list[str]:
    """One row of legend entries above the plot: (css key, label, shape)."""
    parts = []
    x = float(axes.plot[0])
    for key, label, shape in items:
        if shape == "band":
            parts.append(f'<rect class="band band-{escape(key)}" x="{_f(x)}" y="8" '
                         'width="14" height="10"/>')
        elif shape == "line":
            parts.append(f'<line class="line line-{escape(key)}" x1="{_f(x)}" y1="13" '
                         f'x2="{_f(x + 14)}" y2="13"/>')
        else:
            parts.append(f'<circle class="dot dot-{escape(key)}" cx="{_f(x + 7)}" cy="13" '
                         'r="4"/>')
        parts.append(f'<text class="legend" x="{_f(x + 19)}" y="17">{escape(label)}</text>')
        x += 19 + 6.6 * len(label) + 18
    return parts


def _axes(axes: Axes, x_ticks: Sequence[tuple[float, str]],
          y_ticks: Sequence[tuple[float, str]], x_label: str, y_label: str) -> list[str]:
    x0, y0, x1, y1 = axes.plot
    parts = ['<g class="axes" aria-hidden="true">']
    for value, text in y_ticks:
        y = axes.y(value)
        parts.append(f'<line class="grid" x1="{_f(x0)}" y1="{_f(y)}" x2="{_f(x1)}" '
                     f'y2="{_f(y)}"/>')
        parts.append(f'<text class="tick" x="{_f(x0 - 6)}" y="{_f(y + 4)}" '
                     f'text-anchor="end">{escape(text)}</text>')
    for value, text in x_ticks:
        x = axes.x(value)
        parts.append(f'<line class="tickmark" x1="{_f(x)}" y1="{_f(y1)}" x2="{_f(x)}" '
                     f'y2="{_f(y1 + 4)}"/>')
        parts.append(f'<text class="tick" x="{_f(x)}" y="{_f(y1 + 16)}" '
                     f'text-anchor="middle">{escape(text)}</text>')
    parts.append(f'<line class="axis" x1="{_f(x0)}" y1="{_f(y1)}" x2="{_f(x1)}" '
                 f'y2="{_f(y1)}"/>')
    parts.append(f'<text class="axis-label" x="{_f((x0 + x1) / 2)}" '
                 f'y="{_f(axes.height - 6)}" text-anchor="middle">{escape(x_label)}</text>')
    parts.append(f'<text class="axis-label" transform="translate(13 {_f((y0 + y1) / 2)}) '
                 f'rotate(-90)" text-anchor="middle">{escape(y_label)}</text>')
    parts.append("</g>")
    return parts


def line_chart(*, chart_id: str, title: str, x_label: str, y_label: str,
               series: Sequence[Series], bands: Sequence[Band] = (),
               refs: Sequence[RefLine] = (), y_range: tuple[float, float] | None = None,
               x_range: tuple[float, float] | None = None, lang: str = "es",
               x_digits: int = 0, y_digits: int = 1, width: int = WIDTH,
               height: int = HEIGHT) -> Markup:
    """A numeric line/point chart with optional uncertainty bands and reference lines."""
    xs = [x for s in series for x in s.xs] + [x for b in bands for x in b.xs]
    ys = ([y for s in series for y in s.ys] + [v for b in bands for v in (*b.lows, *b.highs)]
          + [r.y for r in refs])
    x_min, x_max = x_range or ((min(xs), max(xs)) if xs else (0.0, 1.0))
    y_min, y_max = y_range or ((min(ys), max(ys)) if ys else (0.0, 1.0))
    axes = Axes(x_min, x_max, y_min, y_max, width=width, height=height)
    x_ticks = [(v, format_number(v, lang, x_digits)) for v in nice_ticks(axes.x_min, axes.x_max)]
    y_ticks = [(v, format_number(v, lang, y_digits)) for v in nice_ticks(axes.y_min, axes.y_max)]
    parts = _open(title, chart_id, width, height)
    legend: list[tuple[str, str, str]] = [(b.key, b.label, "band") for b in bands]
    legend += [(s.key, s.label, "line" if s.kind == "line" else "point") for s in series]
    parts += _legend(legend, axes)
    parts += _axes(axes, x_ticks, y_ticks, x_label, y_label)
    for band in bands:
        if not band.xs:
            continue
        upper = " ".join(f"{_f(axes.x(x))},{_f(axes.y(h))}" for x, h in zip(band.xs, band.highs,
                                                                           strict=True))
        lower = " ".join(f"{_f(axes.x(x))},{_f(axes.y(lo))}" for x, lo in
                         reversed(list(zip(band.xs, band.lows, strict=True))))
        parts.append(f'<polygon class="band band-{escape(band.key)}" points="{upper} {lower}">'
                     f"<title>{escape(band.label)}</title></polygon>")
    for ref in refs:
        y = axes.y(ref.y)
        parts.append(f'<line class="ref" x1="{_f(axes.plot[0])}" y1="{_f(y)}" '
                     f'x2="{_f(axes.plot[2])}" y2="{_f(y)}"/>')
        parts.append(f'<text class="ref-label" x="{_f(axes.plot[2] - 4)}" y="{_f(y - 4)}" '
                     f'text-anchor="end">{escape(ref.label)}</text>')
    for s in series:
        points = list(zip(s.xs, s.ys, strict=True))
        if "line" in s.kind and len(points) > 1:
            path = " ".join(f"{_f(axes.x(x))},{_f(axes.y(y))}" for x, y in points)
            parts.append(f'<polyline class="line line-{escape(s.key)}" points="{path}"/>')
        if s.kind != "line":
            for index, (x, y) in enumerate(points):
                label = (s.labels[index] if index < len(s.labels) else
                         f"{s.label}: {format_number(x, lang, x_digits)}, "
                         f"{format_number(y, lang, y_digits)}")
                parts.append(f'<circle class="pt dot-{escape(s.key)}" data-series="'
                             f'{escape(s.key)}" cx="{_f(axes.x(x))}" cy="{_f(axes.y(y))}" '
                             f'r="3.5"><title>{escape(label)}</title></circle>')
    parts.append("</svg>")
    return Markup("".join(parts))


def interval_chart(*, chart_id: str, title: str, x_label: str, rows: Sequence[Interval],
                   lang: str = "es", x_range: tuple[float, float] = (1.0, 5.0),
                   count_label: str = "n = {n}", width: int = WIDTH) -> Markup:
    """One row per category: the mean (dot), its interval (whisker) and the count."""
    row_height = 30
    height = MARGIN_TOP + MARGIN_BOTTOM + row_height * max(len(rows), 1)
    left = 200
    axes = Axes(x_range[0], x_range[1], 0, max(len(rows), 1), width=width - 60,
                height=height, left=left)
    parts = _open(title, chart_id, width, height)
    x_ticks = [(v, format_number(v, lang, 0)) for v in nice_ticks(*x_range, count=4)]
    parts += _axes(axes, x_ticks, [], x_label, "")
    for index, row in enumerate(rows):
        y = MARGIN_TOP + row_height * index + row_height / 2
        name = row.label if len(row.label) <= 30 else row.label[:29] + "\u2026"
        parts.append(f'<text class="row-label" x="{left - 8}" y="{_f(y + 4)}" '
                     f'text-anchor="end">{escape(name)}</text>')
        low, high = max(row.low, x_range[0]), min(row.high, x_range[1])
        parts.append(f'<line class="whisker" x1="{_f(axes.x(low))}" y1="{_f(y)}" '
                     f'x2="{_f(axes.x(high))}" y2="{_f(y)}"/>')
        tip = (f"{row.label}: {format_number(row.mean, lang, 2)} "
               f"({format_number(row.low, lang, 2)}–{format_number(row.high, lang, 2)}), "
               f"{count_label.format(n=row.count)}")
        parts.append(f'<circle class="pt dot-mean" data-series="mean" '
                     f'cx="{_f(axes.x(row.mean))}" cy="{_f(y)}" r="5">'
                     f"<title>{escape(tip)}</title></circle>")
        parts.append(f'<text class="count" x="{_f(axes.plot[2] + 8)}" y="{_f(y + 4)}">'
                     f"{escape(count_label.format(n=row.count))}</text>")
    parts.append("</svg>")
    return Markup("".join(parts))


def mean_interval(values: Sequence[float], z: float = 1.96) -> tuple[float, float, float]:
    """Mean and its approximate 95 % interval (normal, sample SD; a single value gets
    the full rating range's SD so one lucky rating does not look certain)."""
    n = len(values)
    mean = sum(values) / n
    if n > 1:
        sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
        sd = max(sd, 0.5)  # integer stars: a run of equal ratings is not zero spread
    else:
        sd = 2.0
    half = z * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def moving_average(values: Sequence[float], window: int = 10) -> list[float]:
    """Trailing mean of the last ``window`` values at each position."""
    out = []
    total = 0.0
    for index, value in enumerate(values):
        total += value
        if index >= window:
            total -= values[index - window]
        out.append(total / min(index + 1, window))
    return out
